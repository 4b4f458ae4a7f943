"""DAG-JSON and DAG-CBOR against every ipld/codec-fixtures fixture, plus edge cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenbench.errors import StoreError
from greenbench.store import dagcbor, dagjson
from greenbench.store.cid import CID, cid_for

FIXTURES = Path(__file__).parent / "data" / "ipld-codec-fixtures"
FIXTURE_DIRS = sorted(p for p in (FIXTURES / "fixtures").iterdir() if p.is_dir())


def _file(d: Path, ext: str) -> Path:
    (path,) = d.glob(f"*.{ext}")
    return path


def test_fixture_count():
    assert len(FIXTURE_DIRS) >= 80


@pytest.mark.parametrize("d", FIXTURE_DIRS, ids=lambda d: d.name)
def test_dag_json_fixture(d):
    path = _file(d, "dag-json")
    data = path.read_bytes()
    cid = CID.decode(path.name.rsplit(".", 1)[0])
    assert cid.codec_name == "dag-json"
    assert cid.verify(data)
    value = dagjson.decode(data)
    assert dagjson.encode(value) == data
    assert cid_for(dagjson.encode(value), "dag-json") == cid


@pytest.mark.parametrize("d", FIXTURE_DIRS, ids=lambda d: d.name)
def test_dag_cbor_fixture(d):
    path = _file(d, "dag-cbor")
    data = path.read_bytes()
    cid = CID.decode(path.name.rsplit(".", 1)[0])
    assert cid.codec_name == "dag-cbor"
    assert cid.verify(data)
    value = dagcbor.decode(data)
    assert value == dagjson.decode(_file(d, "dag-json").read_bytes())
    assert dagcbor.encode(value) == data


def _negative(codec: str):
    return json.loads((FIXTURES / "negative-fixtures" / codec / "decode" / "duplicate-keys.json").read_text())


@pytest.mark.parametrize("case", _negative("dag-json"), ids=lambda c: c["name"])
def test_dag_json_negative(case):
    with pytest.raises(StoreError, match="repeat map key"):
        dagjson.decode(bytes.fromhex(case["hex"]))


@pytest.mark.parametrize("case", _negative("dag-cbor"), ids=lambda c: c["name"])
def test_dag_cbor_negative(case):
    with pytest.raises(StoreError, match="repeat map key"):
        dagcbor.decode(bytes.fromhex(case["hex"]))


def test_dag_json_canonical_form():
    link = cid_for(b"x")
    doc = {"b": [1, 2.5, -0.0, 1.0, 1e21, None, True], "a": b"\x00\xff", "é": "line\n\"q\"", "aa": link, "Z": {}}
    out = dagjson.encode(doc)
    assert out == (
        '{"Z":{},"a":{"/":{"bytes":"AP8"}},"aa":{"/":"' + str(link) + '"},'
        '"b":[1,2.5,0.0,1.0,1e+21,null,true],"é":"line\\n\\"q\\""}'
    ).encode()
    back = dagjson.decode(out)
    assert back["a"] == b"\x00\xff" and back["aa"] == link and isinstance(back["b"][3], float)
    assert dagjson.links(back) == [link]


@pytest.mark.parametrize(
    "value,fragment",
    [(math.nan, "NaN"), (math.inf, "inf"), ({1: 2}, "not a string"), ({"/": "x"}, "only key"), (2**64, "64-bit"), (object(), "cannot encode")],
)
def test_dag_json_rejects(value, fragment):
    with pytest.raises(StoreError, match=fragment):
        dagjson.encode(value)


@pytest.mark.parametrize(
    "raw,fragment",
    [(b'{"/":"notacid"}', "bad CID"), (b'{"/":{"bytes":"***"}}', "base64"), (b'{"/":5}', "link"), (b"NaN", "NaN"),
     (b"\xff", "UTF-8"), (b"{", "line 1"), (b'{"/":{"bytes":"AA","x":1}}', "link")],
)
def test_dag_json_decode_rejects(raw, fragment):
    with pytest.raises(StoreError, match=fragment):
        dagjson.decode(raw)


@pytest.mark.parametrize(
    "raw,fragment",
    [("9f01ff", "indefinite"), ("c101", "tag 1"), ("a10102", "not a string"), ("d82a4101", "0x00"), ("0102", "trailing"),
     ("5a00000010", "truncated"), ("f7", "simple value"), ("9bffffffffffffffff", "longer than the remaining"),
     ("fb7ff8000000000000", "NaN")],
)
def test_dag_cbor_decode_rejects(raw, fragment):
    with pytest.raises(StoreError, match=fragment):
        dagcbor.decode(bytes.fromhex(raw))


_leaves = st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=20) | st.binary(max_size=20) | st.builds(cid_for, st.binary(max_size=8))
_values = st.recursive(
    _leaves,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4).filter(lambda d: list(d) != ["/"]),
    max_leaves=20,
)


@given(_values)
@settings(max_examples=300, deadline=None)
def test_round_trip_both_codecs(value):
    js = dagjson.encode(value)
    assert dagjson.encode(dagjson.decode(js)) == js
    cb = dagcbor.encode(value)
    assert dagcbor.decode(cb) == dagjson.decode(js)
    assert dagcbor.encode(dagcbor.decode(cb)) == cb
