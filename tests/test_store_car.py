"""CAR reading and writing: the CARv1 spec fixture, round trips, CARv2, and every malformed class."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pytest

from greenbench.errors import StoreError
from greenbench.store import dagcbor, dagpb
from greenbench.store import multiformats as mf
from greenbench.store.car import CARV2_PRAGMA, CarReader, inspect_car, read_car, write_car
from greenbench.store.cid import cid_for

DATA = Path(__file__).parent / "data" / "ipld-car-spec"
BASIC = DATA / "carv1-basic.car"
BASIC_JSON = json.loads((DATA / "carv1-basic.json").read_text())


def test_spec_fixture_layout():
    with CarReader(BASIC) as reader:
        assert reader.version == 1
        assert [str(r) for r in reader.roots] == [r["/"] for r in BASIC_JSON["header"]["roots"]]
        sections = list(reader)
    assert len(sections) == len(BASIC_JSON["blocks"])
    for section, want in zip(sections, BASIC_JSON["blocks"]):
        assert str(section.cid) == want["cid"]["/"]
        assert section.offset == want["offset"]
        assert len(section.data) == want["blockLength"]
        assert section.cid.verify(section.data)
        if section.cid.codec_name == "dag-cbor":
            content = dagcbor.decode(section.data)
            assert content["name"] == want["content"]["name"]
        if section.cid.codec_name == "dag-pb":
            assert [str(c) for c in dagpb.links(section.data)] == [link["Hash"]["/"] for link in want["content"]["Links"]]


def test_inspect_fixture():
    summary = inspect_car(BASIC)
    assert summary.to_json() == {
        "version": 1,
        "roots": [r["/"] for r in BASIC_JSON["header"]["roots"]],
        "blocks": 8,
        "block_bytes": sum(b["blockLength"] for b in BASIC_JSON["blocks"]),
        "codecs": {"dag-cbor": 2, "dag-pb": 3, "raw": 3},
        "multihashes": {"sha2-256": 8},
        "verified": True,
        "failed": [],
        "unverifiable": [],
    }


def test_round_trip_is_byte_identical():
    roots, blocks = read_car(BASIC.read_bytes())
    out = io.BytesIO()
    n = write_car(out, roots, blocks)
    assert out.getvalue() == BASIC.read_bytes() and n == len(out.getvalue())


def test_write_then_read_own_blocks():
    blocks = [(cid_for(d), d) for d in (b"", b"a", bytes(range(256)) * 100)]
    out = io.BytesIO()
    write_car(out, [blocks[1][0]], blocks)
    roots, it = read_car(out.getvalue())
    assert roots == [blocks[1][0]] and list(it) == blocks


def _carv2(inner: bytes, pad: int = 7) -> bytes:
    header = bytes(16) + struct.pack("<QQQ", 11 + 40 + pad, len(inner), 0)
    return CARV2_PRAGMA + header + bytes(pad) + inner + b"index-bytes-ignored"


def test_carv2_reads_inner_v1():
    car = _carv2(BASIC.read_bytes())
    summary = inspect_car(car)
    assert summary.version == 2 and summary.blocks == 8 and summary.verified
    with CarReader(car) as reader:
        assert reader.data_offset == 58
        assert list(s.cid for s in reader) == list(s.cid for s in CarReader(BASIC))


def test_carv2_truncated_inner():
    car = _carv2(BASIC.read_bytes())
    with pytest.raises(StoreError, match="truncated"):
        inspect_car(car[:200])


def test_failed_block_is_reported_not_raised():
    raw = bytearray(BASIC.read_bytes())
    last = BASIC_JSON["blocks"][-1]
    raw[last["blockOffset"]] ^= 0x01
    summary = inspect_car(bytes(raw))
    assert not summary.verified and [str(c) for c in summary.failed] == [last["cid"]["/"]]


def _header(obj) -> bytes:
    h = dagcbor.encode(obj)
    return mf.encode_varint(len(h)) + h


GOOD_HEADER = _header({"roots": [cid_for(b"a")], "version": 1})
GOOD_SECTION = mf.encode_varint(len(cid_for(b"a").to_bytes()) + 1) + cid_for(b"a").to_bytes() + b"a"

MALFORMED = {
    "empty file": (b"", "empty file"),
    "bad header varint (overlong)": (b"\xff" * 10, "bad varint"),
    "bad header varint (non-minimal)": (b"\x80\x00", "bad varint"),
    "header length zero": (b"\x00", "header length is 0"),
    "header not cbor": (b"\x02\xff\xff", "bad header"),
    "header not a map": (_header([1]), "not a map"),
    "header version 3": (_header({"roots": [], "version": 3}), "version 3"),
    "header roots not cids": (_header({"roots": ["x"], "version": 1}), "roots"),
    "header extra field": (_header({"roots": [], "version": 1, "x": 1}), "unknown field"),
    "header too long": (mf.encode_varint(2 << 20), "exceeds"),
    "truncated header": (GOOD_HEADER[:-3], "truncated header"),
    "bad section varint": (GOOD_HEADER + b"\xff" * 10, "bad varint"),
    "truncated section varint": (GOOD_HEADER + b"\xff", "truncated section length"),
    "section length zero": (GOOD_HEADER + b"\x00", "bad section length"),
    "section length too big": (GOOD_HEADER + mf.encode_varint(1 << 30), "bad section length"),
    "truncated section": (GOOD_HEADER + GOOD_SECTION[:-1], "truncated section"),
    "section shorter than its cid": (GOOD_HEADER + b"\x03\x01\x55\x12", "bad CID"),
    "bad cid in section": (GOOD_HEADER + b"\x05\x07\x55\x12\x00\x00", "bad CID"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_cars(name):
    raw, fragment = MALFORMED[name]
    with pytest.raises(StoreError, match=fragment) as info:
        inspect_car(raw, name="x.car")
    assert "x.car" in info.value.message
    assert "offset" in info.value.message or name in ("empty file",)


def test_error_names_section_offset():
    raw = GOOD_HEADER + GOOD_SECTION + GOOD_SECTION[:-1]
    with pytest.raises(StoreError, match=f"byte offset {len(GOOD_HEADER) + len(GOOD_SECTION)}"):
        inspect_car(raw)


def test_reads_from_unbuffered_stream(tmp_path):
    path = tmp_path / "b.car"
    path.write_bytes(BASIC.read_bytes())
    with open(path, "rb", buffering=0) as fh:
        roots, it = read_car(fh)
        assert len(list(it)) == 8
