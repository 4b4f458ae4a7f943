"""The Kubo RPC subset of `greenbench serve`: what Kubo clients and greenbench's own Kubo publisher call."""

from __future__ import annotations

import io
import json
import os

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from greenbench.cli import app
from greenbench.server.app import ServerConfig, create_app
from greenbench.server.runner import BackgroundServer
from greenbench.store import dagpb, multiformats as mf
from greenbench.store.car import read_car, write_car
from greenbench.store.cid import cid_for
from greenbench.store.local import CHUNK_SIZE, LocalStore

TOKEN = "kubo-token"


@pytest.fixture()
def rpc(tmp_path):
    store = LocalStore(tmp_path / "store")
    client = TestClient(create_app(ServerConfig(store=store)))
    client.store = store
    return client


def car(roots, blocks) -> bytes:
    buf = io.BytesIO()
    write_car(buf, roots, blocks)
    return buf.getvalue()


def lines(resp) -> list:
    return [json.loads(line) for line in resp.text.splitlines() if line.strip()]


def kubo_error(resp, status: int, code: int, fragment: str) -> None:
    body = resp.json()
    assert resp.status_code == status and body["Type"] == "error" and body["Code"] == code, (resp.status_code, body)
    assert fragment in body["Message"], body


def test_version_and_id(rpc):
    v = rpc.post("/api/v0/version").json()
    assert v["Version"] and v["Greenbench"] == v["Version"]
    ident = rpc.post("/api/v0/id").json()
    assert ident["ID"].startswith("12D3KooW") and ident["Addresses"] == []
    raw = mf.b58decode(ident["ID"])
    assert raw[:2] == b"\x00\x24" and raw[2:6] == b"\x08\x01\x12\x20"  # identity multihash of an Ed25519 key
    kubo_error(rpc.post("/api/v0/id?arg=12D3KooWother"), 500, 0, "no peer network")


def test_methods_and_unknown_commands(rpc):
    r = rpc.get("/api/v0/version")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert rpc.post("/api/v0/swarm/peers").status_code == 404


def test_block_put_get_stat(rpc):
    r = rpc.post("/api/v0/block/put", files=[("file", ("a", b"one")), ("file", ("b", b"two"))])
    assert lines(r) == [{"Key": str(cid_for(b"one")), "Size": 3}, {"Key": str(cid_for(b"two")), "Size": 3}]
    got = rpc.post(f"/api/v0/block/get?arg={cid_for(b'one')}")
    assert got.status_code == 200 and got.content == b"one"
    assert rpc.post(f"/api/v0/block/stat?arg=/ipfs/{cid_for(b'two')}").json() == {"Key": str(cid_for(b"two")), "Size": 3}
    missing = cid_for(b"absent")
    kubo_error(rpc.post(f"/api/v0/block/get?arg={missing}"), 500, 0, f"could not find {missing}")
    kubo_error(rpc.post(f"/api/v0/block/stat?arg={missing}"), 500, 0, "not found locally")
    kubo_error(rpc.post("/api/v0/block/get"), 400, 1, "argument")
    kubo_error(rpc.post("/api/v0/block/get?arg=notacid"), 400, 1, "CID")


def test_block_put_validates_dag_pb(rpc):
    kubo_error(rpc.post("/api/v0/block/put?cid-codec=dag-pb", files={"file": ("x", b"hello")}), 400, 1, "DAG-PB")
    assert not rpc.store.has(cid_for(b"hello", "dag-pb"))
    good = dagpb.encode(dagpb.PBNode((dagpb.PBLink(cid_for(b"child"), "", 5),), b"\x08\x01"))
    r = rpc.post("/api/v0/block/put?cid-codec=dag-pb&pin=true", files={"file": ("x", good)})
    assert lines(r)[0]["Key"] == str(cid_for(good, "dag-pb"))
    assert rpc.post("/api/v0/pin/ls?type=direct").json()["Keys"] == {str(cid_for(good, "dag-pb")): {"Type": "direct"}}


def test_dag_import_several_cars_then_pins(rpc):
    a = [(cid_for(b"a%d" % i), b"a%d" % i) for i in range(3)]
    leaf = rpc.store.put_block(b"shared leaf")
    parent = dagpb.encode(dagpb.PBNode((dagpb.PBLink(leaf, "", 11),), b"\x08\x01"))
    b_root = cid_for(parent, "dag-pb")
    files = [("file", ("a.car", car([a[0][0]], a))), ("file", ("b.car", car([b_root], [(b_root, parent)])))]
    r = rpc.post("/api/v0/dag/import?stats=true", files=files)
    assert r.status_code == 200, r.text
    got = lines(r)
    assert [x["Root"]["Cid"]["/"] for x in got[:2]] == [str(a[0][0]), str(b_root)]
    assert got[2] == {"Stats": {"BlockCount": 4, "BlockBytesCount": 6 + len(parent)}}
    keys = rpc.post("/api/v0/pin/ls").json()["Keys"]
    assert keys[str(a[0][0])] == {"Type": "recursive"} and keys[str(b_root)] == {"Type": "recursive"}
    assert keys[str(leaf)] == {"Type": "indirect"}
    streamed = lines(rpc.post("/api/v0/pin/ls?type=recursive&stream=true"))
    assert sorted(x["Cid"] for x in streamed) == sorted([str(a[0][0]), str(b_root)])
    unpinned = rpc.post("/api/v0/dag/import?pin-roots=false", files={"file": ("c.car", car([cid_for(b"c")], [(cid_for(b"c"), b"c")]))})
    assert lines(unpinned)[0]["Root"]["Cid"]["/"] == str(cid_for(b"c"))
    assert str(cid_for(b"c")) not in rpc.post("/api/v0/pin/ls").json()["Keys"]


def test_dag_import_refuses_bad_cars_with_kubo_errors(rpc):
    liar = car([cid_for(b"x")], [(cid_for(b"x"), b"y")])
    kubo_error(rpc.post("/api/v0/dag/import", files={"file": ("bad.car", liar)}), 400, 1, "does not match")
    hello = car([cid_for(b"hello", "dag-pb")], [(cid_for(b"hello", "dag-pb"), b"hello")])
    kubo_error(rpc.post("/api/v0/dag/import", files={"file": ("pb.car", hello)}), 400, 1, "not valid dag-pb")
    incomplete_root = dagpb.encode(dagpb.PBNode((dagpb.PBLink(cid_for(b"never sent"), "", 10),), b"\x08\x01"))
    root = cid_for(incomplete_root, "dag-pb")
    r = rpc.post("/api/v0/dag/import", files={"file": ("i.car", car([root], [(root, incomplete_root)]))})
    kubo_error(r, 500, 0, "pinning the roots")
    assert rpc.post("/api/v0/dag/import?pin-roots=false", files={"file": ("i.car", car([root], [(root, incomplete_root)]))}).status_code == 200


def test_dag_export(rpc):
    data = os.urandom(2 * CHUNK_SIZE + 1)
    root = rpc.store.put_file(io.BytesIO(data))
    r = rpc.post(f"/api/v0/dag/export?arg={root}")
    roots, blocks = read_car(io.BytesIO(r.content))
    blocks = list(blocks)
    assert roots == [root] and [c for c, _ in blocks][0] == root and len(blocks) == 4
    assert all(c.verify(d) for c, d in blocks)
    kubo_error(rpc.post(f"/api/v0/dag/export?arg={cid_for(b'nope')}"), 500, 0, "not")


def test_pin_add_rm_and_gc(rpc):
    keep = rpc.store.put_block(b"keep")
    drop = rpc.store.put_block(b"drop")
    assert rpc.post(f"/api/v0/pin/add?arg={keep}").json() == {"Pins": [str(keep)]}
    kubo_error(rpc.post(f"/api/v0/pin/add?arg={cid_for(b'absent')}"), 500, 0, "not in the store")
    kubo_error(rpc.post(f"/api/v0/pin/ls?arg={drop}"), 500, 0, "is not pinned")
    rpc.store.gc(unpinned=True)
    assert rpc.store.has(keep) and not rpc.store.has(drop)  # a pin keeps data from `store gc`
    assert rpc.post(f"/api/v0/pin/rm?arg={keep}").json() == {"Pins": [str(keep)]}
    kubo_error(rpc.post(f"/api/v0/pin/rm?arg={keep}"), 500, 0, "not pinned")
    kubo_error(rpc.post("/api/v0/pin/ls?type=sideways"), 400, 1, "invalid type")


def test_token_guards_kubo_writes_only(tmp_path):
    client = TestClient(create_app(ServerConfig(store=LocalStore(tmp_path / "s"), token=TOKEN)))
    for path, kw in (
        ("/api/v0/block/put", {"files": {"file": ("x", b"x")}}),
        ("/api/v0/dag/import", {"files": {"file": ("x.car", car([cid_for(b"x")], [(cid_for(b"x"), b"x")]))}}),
        (f"/api/v0/pin/add?arg={cid_for(b'x')}", {}),
        (f"/api/v0/pin/rm?arg={cid_for(b'x')}", {}),
    ):
        kubo_error(client.post(path, **kw), 401, 1, "bearer token")
    assert client.post("/api/v0/version").status_code == 200
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/api/v0/block/put", files={"file": ("x", b"x")}, headers=auth).status_code == 200


def test_publish_to_kubo_url_at_a_greenbench_server(tmp_path, monkeypatch):
    """`publish --to kubo+URL` runs dag/import, then pin/add, against `greenbench serve`."""
    monkeypatch.setenv("GREENBENCH_CONFIG_DIR", str(tmp_path / "cfg"))
    result = {"schema": "greenbench.result/1", "profile": {"name": "p"}, "metrics": {"decode": {"j_per_token": 1.0}}}
    (tmp_path / "r.json").write_text(json.dumps(result))
    server_store = LocalStore(tmp_path / "server")
    with BackgroundServer(create_app(ServerConfig(store=server_store, token=TOKEN))) as srv:
        monkeypatch.setenv("GREENBENCH_SERVER_TOKEN", TOKEN)
        out = CliRunner().invoke(
            app, ["publish", str(tmp_path / "r.json"), "--to", f"kubo+{srv.url}", "--store", str(tmp_path / "local"), "--json"]
        )
        assert out.exit_code == 0, out.stderr
        doc = json.loads(out.stdout)
        assert doc["destination"] == "kubo"
        assert [str(c) for c, rec in server_store.pins()] == [doc["cid"]]
        # the same server at its plain URL still takes results through the results API (and indexes them)
        again = CliRunner().invoke(app, ["publish", str(tmp_path / "r.json"), "--to", srv.url, "--store", str(tmp_path / "local"), "--json"])
        assert again.exit_code == 0 and json.loads(again.stdout)["destination"] == "server"
        assert [r["cid"] for r in server_store.query_results()] == [doc["cid"]]
