"""The server's streaming multipart/form-data reader (Kubo-style single-file uploads)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenbench.server.common import MultipartError, parse_multipart_file


def _encode(data: bytes, filename: str = "file.car") -> tuple[bytes, str]:
    """A multipart body exactly as httpx (the client greenbench and many tools use) sends it."""
    req = httpx.Request("POST", "http://x/", files={"file": (filename, data, "application/octet-stream")})
    return req.read(), req.headers["content-type"]


async def _chunks(body: bytes, cuts: list[int]):
    last = 0
    for c in sorted(set(min(max(c, 0), len(body)) for c in cuts)) + [len(body)]:
        yield body[last:c]
        last = c


def _parse(body: bytes, ctype: str, cuts: list[int] = ()) -> tuple[bytes, dict]:
    out = bytearray()
    headers = asyncio.run(parse_multipart_file(_chunks(body, list(cuts)), ctype, out.extend))
    return bytes(out), headers


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 4000), max_size=12))
def test_any_chunking_gives_the_file_back(data, cuts):
    body, ctype = _encode(data)
    got, headers = _parse(body, ctype, cuts)
    assert got == data
    assert 'name="file"' in headers["content-disposition"]


def test_data_that_looks_like_a_boundary():
    body, ctype = _encode(b"x")
    boundary = ctype.split("boundary=")[1].encode()
    tricky = b"--" + boundary[:-1] + b"\r\n--" + boundary[:5] + b"\r\n\r\n--"
    body, ctype = _encode(tricky)
    assert _parse(body, ctype, [7, 50, 51])[0] == tricky


def test_quoted_boundary_and_preamble():
    body = b"preamble\r\n--abc\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nhello\r\n--abc--\r\nepilogue"
    assert _parse(body, 'multipart/form-data; boundary="abc"')[0] == b"hello"


@pytest.mark.parametrize(
    "body,ctype,match",
    [
        (b"--abc\r\n\r\nhello", "multipart/form-data; boundary=abc", "closing boundary"),
        (b"nothing here", "multipart/form-data; boundary=abc", "no file part"),
        (b"--abc\r\n\r\na\r\n--abc\r\n\r\nb\r\n--abc--", "multipart/form-data; boundary=abc", "exactly one"),
        (b"--abcXX", "multipart/form-data; boundary=abc", "malformed"),
        (b"", "multipart/form-data", "boundary"),
    ],
)
def test_malformed(body, ctype, match):
    with pytest.raises(MultipartError, match=match):
        _parse(body, ctype)
