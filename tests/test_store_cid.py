"""CIDs and multiformats: published vectors, round trips, and malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenbench.errors import StoreError
from greenbench.store import multiformats as mf
from greenbench.store.cid import CID, cid_for

DATA = Path(__file__).parent / "data"
VECTORS = json.loads((DATA / "cid-vectors.json").read_text())["vectors"]


@pytest.mark.parametrize("vec", [v for v in VECTORS if "bytes_hex" in v], ids=lambda v: v["cid"])
def test_published_cids_of_bytes(vec):
    data = bytes.fromhex(vec["bytes_hex"])
    codec = vec["codec"].split()[0]
    hash_name = "identity" if vec["hash"].startswith("identity") else vec["hash"]
    cid = cid_for(data, codec, hash_name)
    assert str(cid) == vec["cid"]
    parsed = CID.decode(vec["cid"])
    assert parsed == cid
    assert parsed.verify(data)
    assert not parsed.verify(data + b"x")
    if "binary_hex" in vec:
        assert cid.to_bytes().hex() == vec["binary_hex"]


def test_published_dag_cids():
    by_cid = {v["cid"]: v for v in VECTORS}
    empty_map_cbor = by_cid["bafyreigbtj4x7ip5legnfznufuopl4sg4knzc2cof6duas4b3q2fy6swua"]
    assert str(cid_for(bytes.fromhex(empty_map_cbor["bytes_hex"]), "dag-cbor")) == empty_map_cbor["cid"]
    assert str(cid_for(b"{}", "dag-json")) == "baguqeeraiqjw7i2vwntyuekgvulpp2det2kpwt6cd7tx5ayqybqpmhfk76fa"
    keysort = by_cid["baguqeeraiqj4qsbirp34qohua5y4veoy7idxot4yh6r2qghoxisadibfwbgq"]
    assert str(cid_for(keysort["bytes_text"].encode(), "dag-json")) == keysort["cid"]


def test_base58_and_v0_vectors():
    cid = CID.decode("zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA")
    assert (cid.version, cid.codec_name, cid.hash_name) == (1, "raw", "sha2-256")
    assert cid.digest.hex() == "6e6ff7950a36187a801613426e858dce686cd7d7e3c0fc42ee0330072d245c95"
    assert cid.encode("base58btc") == "zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA"
    assert str(cid).startswith("bafkrei")
    hello_nl = CID.decode("zb2rhi36Gc9GJWijLEL6zW45MBux5FcFv5gJmjXA7VAMozEXY")
    assert str(hello_nl) == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    v0 = CID.decode("Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD")
    assert (v0.version, v0.codec_name, v0.hash_name) == (0, "dag-pb", "sha2-256")
    assert str(v0) == "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
    assert CID.decode(v0.to_bytes()) == v0
    assert str(v0.to_v1()).startswith("bafybei")


def test_identity_and_blake2b():
    probe = CID.decode("bafkqaaa")
    assert probe.hash_code == 0 and probe.digest == b"" and probe.verify(b"")
    b2 = cid_for(b"hello", "raw", "blake2b-256")
    assert b2.hash_name == "blake2b-256" and len(b2.digest) == 32
    assert CID.decode(str(b2)) == b2 and b2.verify(b"hello") and not b2.verify(b"hellO")


def test_uppercase_and_base16_forms_read():
    cid = cid_for(b"hello world")
    assert CID.decode(str(cid).upper()) == cid  # 'B' + upper-case base32
    assert CID.decode(cid.encode("base16")) == cid


@given(data=st.binary(max_size=300), codec=st.sampled_from(["raw", "dag-json", "dag-cbor"]),
       hash_name=st.sampled_from(["sha2-256", "blake2b-256", "identity"]))
@settings(max_examples=200, deadline=None)
def test_round_trips(data, codec, hash_name):
    cid = cid_for(data, codec, hash_name)
    for text in (str(cid), cid.encode("base58btc"), cid.encode("base16")):
        assert CID.decode(text) == cid
    assert CID.decode(cid.to_bytes()) == cid
    assert cid.verify(data)
    assert set(str(cid)) <= set("abcdefghijklmnopqrstuvwxyz234567")


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_round_trip(n):
    raw = mf.encode_varint(n)
    assert mf.decode_varint(raw) == (n, len(raw))
    assert len(raw) <= 9


@pytest.mark.parametrize(
    "raw,fragment",
    [(b"\x80", "truncated"), (b"\x81\x00", "not minimally"), (b"\xff" * 9 + b"\x01", "longer than 9")],
)
def test_bad_varints(raw, fragment):
    with pytest.raises(StoreError, match=fragment):
        mf.decode_varint(raw)


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("", "empty"),
        ("../../etc/passwd", "cannot occur"),
        ("bafkrei/../x", "cannot occur"),
        ("bafk rei", "cannot occur"),
        ("b" + "a" * 5000, "longer than"),
        ("xafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e", "multibase prefix"),
        ("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5", "impossible length"),  # one char short
        ("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e1", "base32"),
        ("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5eaa", "trailing"),
        ("bAfkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e", "mixed case"),
        ("Qm0000000000000000000000000000000000000000000", "base58"),
        ("bciqaaaa", "version"),
        ("zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA0", "base58"),
    ],
)
def test_malformed_cid_text(text, fragment):
    with pytest.raises(StoreError, match=fragment):
        CID.decode(text)


def test_malformed_cid_bytes():
    good = cid_for(b"x").to_bytes()
    with pytest.raises(StoreError, match="trailing"):
        CID.decode(good + b"\0")
    with pytest.raises(StoreError, match="truncated"):
        CID.decode(good[:-1])
    with pytest.raises(StoreError, match="non-canonical"):
        CID.decode("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5f")
    with pytest.raises(StoreError, match="expected 32"):  # sha2-256 with a 31-byte digest
        CID.decode(b"\x01\x55\x12\x1f" + bytes(31))


def test_unknown_names_and_unverifiable_hash():
    with pytest.raises(StoreError, match="unknown codec"):
        cid_for(b"", "nope")
    with pytest.raises(StoreError, match="unknown hash"):
        cid_for(b"", "raw", "md5")
    murmur = CID(1, 0x55, 0x22, bytes(8))
    assert not murmur.can_verify
    with pytest.raises(StoreError, match="cannot compute"):
        murmur.verify(b"")
