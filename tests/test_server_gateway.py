"""The trustless gateway against https://specs.ipfs.tech/http-gateways/trustless-gateway/: formats and
negotiation, CAR parameters, dag-scope, entity-bytes, paths through UnixFS directories, Range, caching."""

from __future__ import annotations

import io
import os

import pytest
from starlette.testclient import TestClient

from greenbench.server.app import ServerConfig, create_app
from greenbench.store import dagjson, dagpb, unixfs
from greenbench.store.car import read_car, write_car
from greenbench.store.cid import cid_for
from greenbench.store.local import CHUNK_SIZE, LocalStore

CAR = "application/vnd.ipld.car"
RAW = "application/vnd.ipld.raw"


@pytest.fixture()
def gw(tmp_path):
    store = LocalStore(tmp_path / "store")
    client = TestClient(create_app(ServerConfig(store=store)))
    client.store = store
    return client


def blocks_of(resp) -> list:
    roots, blocks = read_car(io.BytesIO(resp.content))
    out = list(blocks)
    assert all(c.verify(d) for c, d in out)
    return out


def put_file(store, data: bytes):
    return store.put_file(io.BytesIO(data))


def directory(store, entries: dict) -> object:
    """A UnixFS directory node over ``entries`` (name -> CID), stored; returns its CID."""
    links = tuple(dagpb.PBLink(cid, name, store.block_size(cid)) for name, cid in sorted(entries.items()))
    node = dagpb.encode(dagpb.PBNode(links, unixfs.encode_data(unixfs.UnixFSData(unixfs.DIRECTORY))))
    return store.put_block(node, "dag-pb")


# ----------------------------------------------------------------------------- formats


def test_format_wins_over_accept_and_content_location_only_for_accept(gw):
    cid = gw.store.put_block(b"block")
    r = gw.get(f"/ipfs/{cid}?format=raw", headers={"Accept": CAR})
    assert r.status_code == 200 and r.content == b"block" and "content-location" not in r.headers
    r = gw.get(f"/ipfs/{cid}", headers={"Accept": RAW})
    assert r.headers["content-location"] == f"/ipfs/{cid}?format=raw"
    r = gw.get(f"/ipfs/{cid}", headers={"Accept": f"{CAR}; version=1; dups=y"})
    assert r.headers["content-location"] == f"/ipfs/{cid}?car-dups=y&format=car"
    assert r.headers["content-type"] == f"{CAR}; version=1; order=dfs; dups=y"


@pytest.mark.parametrize(
    "accept,status",
    [
        (f"{CAR}; version=2", 406),
        (f"{CAR}; order=random", 406),
        (f"{CAR}; dups=maybe", 406),
        (f"{CAR}; version=2, {RAW}; q=0.5", 200),  # the second choice is one we have
        ("text/html, */*", 400),
        ("", 400),
    ],
)
def test_accept_negotiation(gw, accept, status):
    cid = gw.store.put_block(b"x")
    assert gw.get(f"/ipfs/{cid}", headers={"Accept": accept}).status_code == status


def test_car_query_parameters_win_and_bad_ones_are_400(gw):
    cid = gw.store.put_block(b"x")
    r = gw.get(f"/ipfs/{cid}?format=car&car-dups=y", headers={"Accept": f"{CAR}; dups=n"})
    assert r.headers["content-type"].endswith("dups=y")
    assert gw.get(f"/ipfs/{cid}?format=car&car-version=2").status_code == 400


def test_car_content_type_always_says_order_and_dups(gw):
    cid = gw.store.put_block(b"x")
    r = gw.get(f"/ipfs/{cid}?format=car")
    assert r.headers["content-type"] == f"{CAR}; version=1; order=dfs; dups=n"


def test_raw_with_a_path_is_400(gw):
    cid = gw.store.put_block(b"x")
    assert gw.get(f"/ipfs/{cid}/a?format=raw").status_code == 400


# ----------------------------------------------------------------------------- scopes and bytes


@pytest.fixture()
def big_file(gw):
    data = os.urandom(5 * CHUNK_SIZE + 100)
    root = put_file(gw.store, data)
    leaves = [cid_for(data[i : i + CHUNK_SIZE]) for i in range(0, len(data), CHUNK_SIZE)]
    return root, data, leaves


def test_dag_scopes_on_a_file(gw, big_file):
    root, data, leaves = big_file
    full = blocks_of(gw.get(f"/ipfs/{root}?format=car"))
    assert [c for c, _ in full] == [root, *leaves]  # depth first: root, then leaves in order
    assert b"".join(d for c, d in full[1:]) == data
    assert [c for c, _ in blocks_of(gw.get(f"/ipfs/{root}?format=car&dag-scope=block"))] == [root]
    assert [c for c, _ in blocks_of(gw.get(f"/ipfs/{root}?format=car&dag-scope=entity"))] == [root, *leaves]
    assert gw.get(f"/ipfs/{root}?format=car&dag-scope=most").status_code == 400


@pytest.mark.parametrize(
    "spec,want",
    [
        ("0:*", range(6)),
        ("0:0", [0]),
        (f"{CHUNK_SIZE}:{2 * CHUNK_SIZE}", [1, 2]),  # inclusive end: the first byte of leaf 2 is wanted
        (f"{CHUNK_SIZE}:{2 * CHUNK_SIZE - 1}", [1]),
        ("-100:*", [5]),
        (f"-{CHUNK_SIZE + 100}:-{CHUNK_SIZE + 1}", [4]),
        ("10:-1", range(6)),
        ("100000000:*", []),  # past the end: only the root, as dag-scope=block
    ],
)
def test_entity_bytes(gw, big_file, spec, want):
    root, _, leaves = big_file
    got = [c for c, _ in blocks_of(gw.get(f"/ipfs/{root}?format=car&entity-bytes={spec}"))]
    assert got == [root, *[leaves[i] for i in want]]


@pytest.mark.parametrize("spec", ["x:1", "5", "10:5", "1:y", ""])
def test_bad_entity_bytes_is_400(gw, big_file, spec):
    root, _, _ = big_file
    assert gw.get(f"/ipfs/{root}?format=car&entity-bytes={spec}").status_code == 400


def test_entity_bytes_is_ignored_on_a_non_file(gw):
    leaf = gw.store.put_block(b"leaf")
    node = gw.store.put_block(dagjson.encode({"child": leaf}), "dag-json")
    got = [c for c, _ in blocks_of(gw.get(f"/ipfs/{node}?format=car&entity-bytes=0:10"))]
    assert got == [node]  # entity of a dag-json node: the block itself


def test_dups(gw):
    data = bytes(3 * CHUNK_SIZE)  # three identical leaves
    root = put_file(gw.store, data)
    leaf = cid_for(bytes(CHUNK_SIZE))
    once = blocks_of(gw.get(f"/ipfs/{root}?format=car"))
    assert [c for c, _ in once] == [root, leaf]
    every = gw.get(f"/ipfs/{root}", headers={"Accept": f"{CAR}; dups=y"})
    assert [c for c, _ in blocks_of(every)] == [root, leaf, leaf, leaf]


def test_identity_cids_are_never_in_a_car(gw):
    inline = "bafkqaaa"
    node = gw.store.put_block(dagjson.encode({"empty": cid_for(b"", hash="identity")}), "dag-json")
    r = gw.get(f"/ipfs/{node}?format=car")
    assert [c for c, _ in blocks_of(r)] == [node]
    probe = gw.get(f"/ipfs/{inline}?format=car")
    roots, blocks = read_car(io.BytesIO(probe.content))
    assert probe.status_code == 200 and [str(r) for r in roots] == [inline] and list(blocks) == []


# ----------------------------------------------------------------------------- paths


def test_paths_through_unixfs_directories(gw, big_file):
    root, data, leaves = big_file
    small = gw.store.put_block(b"small file")
    sub = directory(gw.store, {"big.bin": root})
    top = directory(gw.store, {"sub": sub, "small.txt": small})
    r = gw.get(f"/ipfs/{top}/sub/big.bin?format=car")
    got = [c for c, _ in blocks_of(r)]
    assert got == [top, sub, root, *leaves]  # the blocks that prove the path, then the file
    assert r.headers["x-ipfs-roots"] == f"{top},{sub},{root}"
    block_only = [c for c, _ in blocks_of(gw.get(f"/ipfs/{top}/small.txt?format=car&dag-scope=block"))]
    assert block_only == [top, small]
    assert [c for c, _ in blocks_of(gw.get(f"/ipfs/{top}?format=car&dag-scope=entity"))] == [top]
    assert gw.get(f"/ipfs/{top}/nope?format=car").status_code == 404
    assert gw.get(f"/ipfs/{top}/small.txt/deeper?format=car").status_code == 404


def test_paths_through_dag_json_links(gw):
    leaf = gw.store.put_block(b"leaf")
    node = gw.store.put_block(dagjson.encode({"a": {"b": [leaf]}, "n": 1}), "dag-json")
    assert [c for c, _ in blocks_of(gw.get(f"/ipfs/{node}/a/b/0?format=car"))] == [node, leaf]
    assert gw.get(f"/ipfs/{node}/n?format=car").status_code == 404  # a field, not a link
    assert gw.get(f"/ipfs/{node}/zz?format=car").status_code == 404


# ----------------------------------------------------------------------------- HTTP semantics


def test_head_sends_the_content_length_of_get(gw, big_file):
    root, _, _ = big_file
    for url in (f"/ipfs/{root}?format=car", f"/ipfs/{root}?format=raw", f"/ipfs/{root}?format=car&dag-scope=block",
                f"/ipfs/{root}?format=car&entity-bytes=0:1000"):
        g, h = gw.get(url), gw.head(url)
        assert g.status_code == h.status_code == 200 and h.content == b""
        assert h.headers["content-length"] == g.headers["content-length"] == str(len(g.content)), url
        assert h.headers["etag"] == g.headers["etag"] and h.headers["content-type"] == g.headers["content-type"]


def test_head_of_a_dag_with_a_missing_block_sends_no_length(gw):
    present = gw.store.put_block(b"here")
    node = gw.store.put_block(dagjson.encode({"a": present, "b": cid_for(b"never stored")}), "dag-json")
    h = gw.head(f"/ipfs/{node}?format=car")
    assert h.status_code == 200 and "content-length" not in h.headers
    got = gw.get(f"/ipfs/{node}?format=car&dag-scope=block")  # the root alone is all there
    assert got.status_code == 200 and [c for c, _ in blocks_of(got)] == [node]


def test_if_none_match_gives_304_for_raw_and_car(gw, big_file):
    root, _, _ = big_file
    for url in (f"/ipfs/{root}?format=raw", f"/ipfs/{root}?format=car", f"/ipfs/{root}?format=car&dag-scope=block"):
        etag = gw.get(url).headers["etag"]
        r = gw.get(url, headers={"If-None-Match": etag})
        assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
        assert gw.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    etags = {gw.get(f"/ipfs/{root}?format=car&{q}").headers["etag"] for q in ("", "dag-scope=block", "entity-bytes=0:9", "car-dups=y")}
    assert len(etags) == 4  # each variant its own ETag


def test_only_if_cached(gw):
    missing = cid_for(b"not here")
    for method in (gw.get, gw.head):
        r = method(f"/ipfs/{missing}?format=raw", headers={"Cache-Control": "only-if-cached"})
        assert r.status_code == 412 and r.content == b""
        assert method(f"/ipfs/{missing}?format=raw").status_code == 404
    here = gw.store.put_block(b"here")
    assert gw.get(f"/ipfs/{here}?format=raw", headers={"Cache-Control": "only-if-cached"}).status_code == 200


@pytest.mark.parametrize(
    "header,status,body,content_range",
    [
        ("bytes=0-3", 206, b"0123", "bytes 0-3/10"),
        ("bytes=7-", 206, b"789", "bytes 7-9/10"),
        ("bytes=-2", 206, b"89", "bytes 8-9/10"),
        ("bytes=5-100", 206, b"56789", "bytes 5-9/10"),
        ("bytes=10-", 416, b"", "bytes */10"),
        ("bytes=-0", 416, b"", "bytes */10"),
        ("bytes=0-1,4-5", 200, b"0123456789", None),  # several ranges: the whole block
        ("items=0-1", 200, b"0123456789", None),
    ],
)
def test_range_on_raw_blocks(gw, header, status, body, content_range):
    cid = gw.store.put_block(b"0123456789")
    r = gw.get(f"/ipfs/{cid}?format=raw", headers={"Range": header})
    assert r.status_code == status and r.content == body
    assert r.headers.get("content-range") == content_range
    h = gw.head(f"/ipfs/{cid}?format=raw", headers={"Range": header})
    assert h.status_code == status and h.headers.get("content-length") == r.headers.get("content-length")
    assert gw.get(f"/ipfs/{cid}?format=raw", headers={"Range": "bytes=0-3", "If-Range": '"stale"'}).status_code == 200


def test_a_damaged_leaf_stops_the_car_short(tmp_path):
    """The status is sent before the damaged block is reached: the CAR ends early and its length says so."""
    import httpx

    from greenbench.server.runner import BackgroundServer

    store = LocalStore(tmp_path / "store")
    data = os.urandom(3 * CHUNK_SIZE)
    root = put_file(store, data)
    (pack,) = (store.root / "packs").iterdir()
    with open(pack, "r+b") as fh:
        fh.seek(2 * CHUNK_SIZE + 5)
        fh.write(b"!")  # the third leaf
    lines = []
    with BackgroundServer(create_app(ServerConfig(store=store, log=lines.append))) as srv:
        with httpx.Client() as c:
            with pytest.raises(httpx.RemoteProtocolError):
                c.get(f"{srv.url}/ipfs/{root}?format=car")
    assert any("stopped short" in line for line in lines)


def test_a_missing_child_ends_the_car_short_after_what_is_there(tmp_path):
    """Only a missing root is a 404; a CAR whose DAG lacks a block stops there (the spec's streaming rules)."""
    import httpx

    from greenbench.server.runner import BackgroundServer

    store = LocalStore(tmp_path / "store")
    present = store.put_block(b"here")
    absent = cid_for(dagjson.encode({"gone": 1}), "dag-json")
    node = store.put_block(dagjson.encode({"a": present, "b": absent, "c": present}), "dag-json")
    with BackgroundServer(create_app(ServerConfig(store=store))) as srv:
        with httpx.Client() as c:
            got = bytearray()
            with pytest.raises(httpx.RemoteProtocolError):
                with c.stream("GET", f"{srv.url}/ipfs/{node}?format=car") as r:
                    assert r.status_code == 200
                    for chunk in r.iter_raw():
                        got += chunk
    roots, blocks = read_car(io.BytesIO(bytes(got)))
    assert [c for c, _ in blocks] == [node, present]  # up to the missing block, nothing after it
