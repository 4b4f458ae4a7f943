"""DAG-PB (strict decoding, canonical encoding) and UnixFS (Kubo's file layout; reading files and directories)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from greenbench.errors import StoreError, VerificationError
from greenbench.store import dagjson, dagpb, unixfs
from greenbench.store.cid import CID, cid_for

DATA = Path(__file__).parent / "data"
PB_FIXTURES = sorted((DATA / "ipld-codec-fixtures" / "fixtures").glob("dagpb_*"))
PB_NEGATIVE = json.loads((DATA / "ipld-codec-fixtures" / "negative-fixtures" / "dag-pb" / "decode" / "edges.json").read_text())
KUBO = json.loads((DATA / "kubo-unixfs" / "cid-profiles.json").read_text())


# ----------------------------------------------------------------------------- dag-pb


def test_dag_pb_fixture_count():
    assert len(PB_FIXTURES) == 17 and len(PB_NEGATIVE) == 9


@pytest.mark.parametrize("d", PB_FIXTURES, ids=lambda d: d.name)
def test_dag_pb_fixture(d):
    (path,) = d.glob("*.dag-pb")
    data = path.read_bytes()
    cid = CID.decode(path.name.rsplit(".", 1)[0])
    assert cid.verify(data)
    node = dagpb.decode(data)
    assert dagpb.encode(node) == data  # canonical bytes round-trip
    (twin,) = d.glob("*.dag-json")
    model = dagjson.decode(twin.read_bytes())
    assert [link.hash for link in node.links] == [link["Hash"] for link in model["Links"]]
    assert [link.name for link in node.links] == [link.get("Name") for link in model["Links"]]
    assert [link.tsize for link in node.links] == [link.get("Tsize") for link in model["Links"]]
    assert node.data == model.get("Data")


@pytest.mark.parametrize("case", PB_NEGATIVE, ids=lambda c: c["name"])
def test_dag_pb_negative_fixture(case):
    with pytest.raises(StoreError, match="bad DAG-PB"):
        dagpb.decode(bytes.fromhex(case["hex"]))


@pytest.mark.parametrize(
    "raw",
    [b"hello", b"\x0a\x05hello\x0a\x01x", b"\x0a\x05hell", b"\x12\x03\x0a\x01\x00", b"\x22\x00", b"\x0d\x00\x00\x00\x00"],
    ids=["not protobuf", "Data twice", "truncated", "Hash not a CID", "unknown field", "fixed32 wire type"],
)
def test_dag_pb_garbage_is_refused(raw):
    with pytest.raises(StoreError, match="bad DAG-PB"):
        dagpb.decode(raw)


# ----------------------------------------------------------------------------- building files


def _deterministic(size: int, seed: str) -> bytes:
    """Kubo's test generator: the ChaCha20 keystream, key sha256(seed), nonce (and counter) zero."""
    encryptor = Cipher(algorithms.ChaCha20(hashlib.sha256(seed.encode()).digest(), bytes(16)), mode=None).encryptor()
    return encryptor.update(bytes(size))


@pytest.mark.parametrize("v", KUBO["vectors"], ids=lambda v: f"{v['profile']}-{v.get('size', v.get('text'))}")
def test_kubo_published_cids(v):
    data = v["text"].encode() if "text" in v else _deterministic(v["size"], v["seed"])
    root, blocks = unixfs.build_file(data, **KUBO["profiles"][v["profile"]])
    assert str(root) == v["cid"]
    assert all(cid.verify(block) for cid, block in blocks)


def test_kubo_defaults_are_the_module_defaults():
    assert (unixfs.CHUNK_SIZE, unixfs.MAX_LINKS) == (262144, 174)
    data = b"x" * (unixfs.CHUNK_SIZE + 1)
    root, blocks = unixfs.build_file(data)
    assert root.version == 1 and root.codec_name == "dag-pb"
    assert [c.codec_name for c, _ in blocks] == ["raw", "raw", "dag-pb"]  # raw leaves, then the root


def test_streaming_builder_levels():
    """Bottom-up greedy filling gives boxo's balanced layout: a partial last node still gets its own parent."""
    leaves = [cid_for(bytes([i])) for i in range(10)]
    builder = unixfs.FileBuilder(max_links=3)
    made = [m for c in leaves for m in builder.add_leaf(c, 1)]
    root, last = builder.finish()
    node = dagpb.decode(dict(made + last)[root])
    # 10 leaves, 3 per node: 4 nodes (3,3,3,1), then 2 (3,1), then the root (2)
    assert len(made + last) == 7 and len(node.links) == 2
    second = dagpb.decode(dict(made + last)[node.links[1].hash])
    assert len(second.links) == 1 and unixfs.decode_data(second.data).blocksizes == (1,)
    assert unixfs.decode_data(node.data).filesize == 10
    with pytest.raises(StoreError):
        unixfs.FileBuilder().finish()
    with pytest.raises(StoreError):
        unixfs.FileBuilder(max_links=1)


# ----------------------------------------------------------------------------- reading


def _blockstore(blocks):
    store = dict(blocks)

    def get(cid):
        data = store[cid]
        assert cid.verify(data)
        return data

    return store, get


@pytest.mark.parametrize("raw_leaves", [True, False])
def test_iter_file_ranges(raw_leaves):
    data = bytes(range(256)) * 100  # 25,600 bytes in 1,000-byte chunks, 4 links per node: three levels
    root, blocks = unixfs.build_file(data, chunk_size=1000, max_links=4, raw_leaves=raw_leaves)
    store, get = _blockstore(blocks)
    assert b"".join(unixfs.iter_file(get, root)) == data
    for start, end in ((0, 1), (999, 1001), (4000, 4000), (5500, 21000), (25599, None), (30000, None)):
        assert b"".join(unixfs.iter_file(get, root, start, end)) == data[start:end]
    assert unixfs.file_size(root, store[root]) == len(data)
    needed = list(unixfs.file_blocks(get, root, 5500, 7100))
    assert needed[0] == root
    leaves = [c for c in needed if (c.codec_name == "raw" if raw_leaves else not dagpb.decode(store[c]).links)]
    assert len(leaves) == 3  # the chunks holding bytes 5500..7099 (chunks 5, 6 and 7)


def test_iter_file_checks_sizes_against_the_parent():
    data = b"a" * 3000
    root, blocks = unixfs.build_file(data, chunk_size=1000)
    node = dagpb.decode(dict(blocks)[root])
    # A parent that lies about a child's size: the child is a real block, but the sizes do not add up.
    lying = dagpb.encode(
        dagpb.PBNode(node.links, unixfs.encode_data(unixfs.UnixFSData(unixfs.FILE, filesize=3001, blocksizes=(1000, 1000, 1001))))
    )
    bad_root = cid_for(lying, "dag-pb")
    store, get = _blockstore(blocks + [(bad_root, lying)])
    with pytest.raises(VerificationError, match="its parent says 1001"):
        b"".join(unixfs.iter_file(get, bad_root))


def _dir_node(entries: dict[str, CID], kind=unixfs.DIRECTORY, fanout=None) -> bytes:
    links = tuple(dagpb.PBLink(cid, name, 10) for name, cid in sorted(entries.items()))
    return dagpb.encode(dagpb.PBNode(links, unixfs.encode_data(unixfs.UnixFSData(kind, fanout=fanout))))


def test_directories_and_hamt_shards():
    a, b, c = cid_for(b"a"), cid_for(b"b"), cid_for(b"c")
    plain = _dir_node({"a.txt": a, "b.txt": b})
    plain_cid = cid_for(plain, "dag-pb")
    sub = _dir_node({"1Fc.txt": c}, unixfs.HAMT_SHARD, fanout=256)
    sub_cid = cid_for(sub, "dag-pb")
    shard = _dir_node({"0Aa.txt": a, "1F": sub_cid}, unixfs.HAMT_SHARD, fanout=256)
    shard_cid = cid_for(shard, "dag-pb")
    _, get = _blockstore([(plain_cid, plain), (sub_cid, sub), (shard_cid, shard)])
    assert unixfs.lookup(get, plain_cid, "b.txt") == (b, [])
    assert unixfs.lookup(get, plain_cid, "zzz") is None
    assert unixfs.lookup(get, shard_cid, "c.txt") == (c, [sub_cid])  # the sub-shard is on the way
    assert unixfs.lookup(get, shard_cid, "a.txt") == (a, [])
    assert unixfs.node_kind(plain_cid, plain) == "directory" and unixfs.node_kind(shard_cid, shard) == "hamt"
    with pytest.raises(StoreError, match="not a file"):
        unixfs.file_size(plain_cid, plain)
