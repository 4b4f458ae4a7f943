"""The HTTP server: trustless gateway subset, verified result writes, Kubo-style uploads, limits, token."""

from __future__ import annotations

import base64
import io
import json

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.testclient import TestClient

from greenbench import signing
from greenbench.publish import envelope_block
from greenbench.store import dagjson
from greenbench.store.car import read_car, write_car
from greenbench.store.cid import CID, cid_for
from greenbench.server.app import ServerConfig, create_app
from greenbench.server.common import IMMUTABLE
from greenbench.server.runner import BackgroundServer
from greenbench.store.local import LocalStore

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
DID = signing.did_key(KEY)
RESULT = {
    "schema": "greenbench.result/1",
    "created": "2024-05-01T12:00:00Z",
    "profile": {"name": "llama-tiny", "digest": "sha256:ab"},
    "backend": "cpu",
    "metrics": {"decode": {"j_per_token": 0.25, "tokens_per_s": 40.0}, "ttft_s": 0.01},
    "energy": {"method": "estimate"},
    "environment": {"cpu_model": "Test CPU", "gpu_models": []},
}
TOKEN = "s3cret-token"


def make_client(tmp_path, **cfg) -> tuple[TestClient, LocalStore]:
    store = LocalStore(tmp_path / "store")
    app = create_app(ServerConfig(store=store, **cfg))
    return TestClient(app), store


@pytest.fixture()
def client(tmp_path):
    c, store = make_client(tmp_path)
    c.store = store
    return c


def envelope(doc=RESULT, key=KEY):
    return signing.sign_result(doc, key, "r.json")


def post_env(client, env, **kw):
    headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
    return client.post("/api/v1/results", content=json.dumps(env).encode(), headers=headers, **kw)


def car_bytes(roots, blocks) -> bytes:
    buf = io.BytesIO()
    write_car(buf, roots, blocks)
    return buf.getvalue()


# ----------------------------------------------------------------------------- gateway


@pytest.mark.parametrize("how", [{"params": {"format": "raw"}}, {"headers": {"Accept": "application/vnd.ipld.raw"}}])
def test_probe_identity_cid(client, how):
    r = client.get("/ipfs/bafkqaaa", **how)
    assert r.status_code == 200 and r.content == b""
    assert r.headers["cache-control"] == IMMUTABLE
    assert r.headers["etag"] == '"bafkqaaa.raw"'
    assert r.headers["content-type"] == "application/vnd.ipld.raw"
    h = client.head("/ipfs/bafkqaaa", **how)
    assert h.status_code == 200 and h.content == b""


def test_gateway_requires_a_verifiable_format(client):
    assert client.get("/ipfs/bafkqaaa").status_code == 400
    assert client.get("/ipfs/bafkqaaa", params={"format": "html"}).status_code == 400
    assert client.get("/ipfs/bafkqaaa", headers={"Accept": "text/html"}).status_code == 400


def test_unknown_and_malformed_cids(client):
    unknown = cid_for(b"never stored")
    r = client.get(f"/ipfs/{unknown}", params={"format": "raw"})
    assert r.status_code == 404 and "not in this store" in r.json()["error"]
    assert client.head(f"/ipfs/{unknown}", params={"format": "raw"}).status_code == 404
    for bad in ("bafybad!", "Qmnot-a-cid", "bafkrei" + "a" * 5, "zzzz"):
        assert client.get(f"/ipfs/{bad}", params={"format": "raw"}).status_code == 400, bad


@pytest.mark.parametrize(
    "path",
    [
        "/ipfs/../../etc/passwd",
        "/ipfs/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/ipfs/bafkqaaa/../../etc/passwd",
        "/ipfs/..%5c..%5cwindows",
        "/ipfs/bafkqaaa%00",
        "/ipfs/blocks",
        "/ipfs/",
    ],
)
def test_path_traversal_is_rejected(tmp_path, path):
    c, store = make_client(tmp_path)
    (tmp_path / "store").mkdir(exist_ok=True)
    (tmp_path / "secret").write_text("top secret")
    r = c.get(path + "?format=raw")
    assert 400 <= r.status_code < 500 and b"top secret" not in r.content


def test_path_traversal_on_a_real_socket(tmp_path):
    """Raw request targets are not normalised by uvicorn; the server must still refuse them."""
    import socket

    store = LocalStore(tmp_path / "store")
    with BackgroundServer(create_app(ServerConfig(store=store))) as srv:
        for target in ("/ipfs/../../../../etc/passwd?format=raw", "/ipfs/..%2f..%2fetc%2fpasswd?format=raw"):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
                s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                reply = b""
                while chunk := s.recv(65536):
                    reply += chunk
            status = int(reply.split(b" ", 2)[1])
            assert 400 <= status < 500 and b"root:" not in reply


def test_result_round_trip(client):
    env = envelope()
    r = post_env(client, env)
    assert r.status_code == 201, r.text
    body = r.json()
    cid, block = envelope_block(env)
    assert body["cid"] == str(cid) and body["signer"] == DID
    assert CID.decode(body["cid"]).codec_name == "dag-json"
    # raw block, verifiable by the client
    g = client.get(f"/ipfs/{cid}", params={"format": "raw"})
    assert g.status_code == 200 and g.content == block and cid.verify(g.content)
    assert g.headers["etag"] == f'"{cid}.raw"' and g.headers["cache-control"] == IMMUTABLE
    assert "attachment" in g.headers["content-disposition"]
    assert signing.verify_envelope(dagjson.decode(g.content)).result == RESULT
    # CAR
    c = client.get(f"/ipfs/{cid}", headers={"Accept": "application/vnd.ipld.car"})
    assert c.status_code == 200 and c.headers["content-type"].startswith("application/vnd.ipld.car")
    roots, blocks = read_car(io.BytesIO(c.content))
    assert roots == [cid] and list(blocks) == [(cid, block)]
    # HEAD: headers only
    h = client.head(f"/ipfs/{cid}", params={"format": "raw"})
    assert h.status_code == 200 and h.content == b"" and int(h.headers["content-length"]) == len(block)
    # conditional GET
    assert client.get(f"/ipfs/{cid}", params={"format": "raw"}, headers={"If-None-Match": g.headers["etag"]}).status_code == 304
    # index
    rows = client.get("/api/v1/results").json()["results"]
    assert len(rows) == 1 and rows[0]["cid"] == str(cid) and rows[0]["signer"] == DID
    assert rows[0]["profile"] == "llama-tiny" and rows[0]["metrics"]["j_per_token"] == 0.25
    assert client.get("/api/v1/results", params={"profile": "other"}).json()["results"] == []
    assert client.get("/api/v1/results", params={"bogus": "1"}).status_code == 400
    # idempotent
    again = post_env(client, env)
    assert again.status_code == 200 and again.json()["cid"] == str(cid)


def test_extra_envelope_fields_do_not_change_the_cid(client):
    env = envelope()
    noisy = dict(env, comment="not signed")
    assert post_env(client, noisy).json()["cid"] == post_env(client, env).json()["cid"]


def test_a_result_with_numbers_sqlite_cannot_hold_is_stored_and_listed_as_skipped(client):
    odd = dict(RESULT, workload={"batch_size": 2**64, "digest": "sha256:" + "a" * 64})  # valid JSON, signs, verifies
    r = post_env(client, envelope(odd))
    assert r.status_code == 201, r.text
    skipped = client.get("/api/v1/leaderboard").json()["skipped"]
    assert [s["cid"] for s in skipped] == [r.json()["cid"]] and "malformed" in skipped[0]["reason"]


@pytest.mark.parametrize("field", ["payload", "payloadType", "keyid", "sig"])
def test_tampered_result_is_rejected_and_nothing_stored(client, field):
    env = envelope()
    target = env["signatures"][0] if field in ("keyid", "sig") else env
    if field == "keyid":
        target[field] = signing.did_key(Ed25519PrivateKey.generate())
    elif field == "payloadType":
        target[field] = "application/json"
    else:
        raw = bytearray(base64.b64decode(target[field]))
        raw[len(raw) // 2] ^= 1
        target[field] = base64.b64encode(bytes(raw)).decode()
    r = post_env(client, env)
    assert r.status_code == 422 and "does not verify" in r.json()["error"]
    assert client.get("/api/v1/results").json()["results"] == []
    assert not list(client.store.iter_cids())


@pytest.mark.parametrize(
    "body,ctype,status",
    [
        (b"{not json", "application/json", 400),
        (b'{"a": 1, "a": 2}', "application/json", 400),
        (b"[]", "application/json", 400),
        (b'{"payload": "x"}', "application/json", 400),
        (b"{}", "text/plain", 415),
        (b"{}", "", 415),
        (b"{}", "multipart/form-data; boundary=x", 415),
    ],
)
def test_bad_result_bodies(client, body, ctype, status):
    headers = {"Content-Type": ctype} if ctype else {}
    r = client.post("/api/v1/results", content=body, headers=headers)
    assert r.status_code == status and "error" in r.json()
    assert not list(client.store.iter_cids())


def test_result_size_cap_declared_and_streamed(tmp_path):
    c, store = make_client(tmp_path, max_result_bytes=1000)
    big = envelope(dict(RESULT, padding="x" * 2000))
    r = post_env(c, big)
    assert r.status_code == 413
    # no Content-Length: the cap is enforced while the body streams in
    data = json.dumps(big).encode()

    def gen():
        for i in range(0, len(data), 100):
            yield data[i : i + 100]

    r = c.post("/api/v1/results", content=gen(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert not list(store.iter_cids())


def test_server_trust_list(tmp_path):
    c, store = make_client(tmp_path, trust={DID})
    assert post_env(c, envelope()).status_code == 201
    r = post_env(c, envelope(key=Ed25519PrivateKey.generate()))
    assert r.status_code == 422 and "trust list" in r.json()["error"]


# ----------------------------------------------------------------------------- token


def test_token_guards_writes_only(tmp_path):
    c, store = make_client(tmp_path, token=TOKEN)
    env = envelope()
    r = post_env(c, env)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert post_env(c, env, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert post_env(c, env, headers={"Authorization": TOKEN}).status_code == 401
    files = {"file": ("b", b"data")}
    assert c.post("/api/v0/block/put", files=files).status_code == 401
    assert c.post("/api/v0/dag/import", files=files).status_code == 401
    assert not list(store.iter_cids())
    ok = post_env(c, env, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 201
    assert c.get(f"/ipfs/{ok.json()['cid']}", params={"format": "raw"}).status_code == 200
    assert c.get("/api/v1/results").status_code == 200


# ----------------------------------------------------------------------------- Kubo-style uploads


def test_block_put(client):
    r = client.post("/api/v0/block/put", params={"cid-codec": "raw", "mhtype": "sha2-256"}, files={"file": ("blob", b"hello")})
    assert r.status_code == 200
    assert r.json() == {"Key": str(cid_for(b"hello")), "Size": 5}
    assert client.store.get_block(cid_for(b"hello")) == b"hello"
    j = client.post("/api/v0/block/put", params={"cid-codec": "dag-json"}, files={"file": ("b", b'{"a":1}')})
    assert j.json()["Key"] == str(cid_for(b'{"a":1}', "dag-json"))


@pytest.mark.parametrize(
    "params,files,content,ctype,status",
    [
        ({"mhtype": "sha3-256"}, {"file": ("b", b"x")}, None, None, 400),
        ({"cid-codec": "git-raw"}, {"file": ("b", b"x")}, None, None, 400),
        ({"cid-codec": "dag-json"}, {"file": ("b", b"{not json")}, None, None, 400),
        ({}, None, b"raw body", "application/octet-stream", 415),
        ({}, None, b"--x\r\n\r\nunterminated", "multipart/form-data; boundary=x", 400),
    ],
)
def test_block_put_errors(client, params, files, content, ctype, status):
    kw = {"files": files} if files else {"content": content, "headers": {"Content-Type": ctype}}
    r = client.post("/api/v0/block/put", params=params, **kw)
    assert r.status_code == status
    assert r.json()["Type"] == "error" and r.json()["Message"]
    assert not list(client.store.iter_cids())


def test_block_put_size_cap(tmp_path):
    c, store = make_client(tmp_path, max_block_bytes=4096)
    r = c.post("/api/v0/block/put", files={"file": ("b", b"x" * 5000)})
    assert r.status_code == 413 and not list(store.iter_cids())


def test_kubo_endpoints_are_post_only(client):
    assert client.get("/api/v0/block/put").status_code == 405
    assert client.get("/api/v0/dag/import").status_code == 405


def test_dag_import_all_blocks(client):
    leaf = b"leaf bytes"
    leaf_cid = cid_for(leaf)
    root = dagjson.encode({"leaf": leaf_cid})
    root_cid = cid_for(root, "dag-json")
    car = car_bytes([root_cid], [(root_cid, root), (leaf_cid, leaf)])
    r = client.post("/api/v0/dag/import", files={"file": ("x.car", car, "application/vnd.ipld.car")})
    assert r.status_code == 200
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert lines == [{"Root": {"Cid": {"/": str(root_cid)}, "PinErrorMsg": ""}}]
    assert client.store.get_block(leaf_cid) == leaf
    # the CAR the gateway serves back contains the whole DAG
    c = client.get(f"/ipfs/{root_cid}", params={"format": "car"})
    roots, blocks = read_car(io.BytesIO(c.content))
    assert roots == [root_cid] and dict(blocks) == {root_cid: root, leaf_cid: leaf}


def test_dag_import_is_all_or_nothing(client):
    good = b"good block"
    good_cid = cid_for(good)
    liar_cid = cid_for(b"what the CID promises")
    car = car_bytes([good_cid], [(good_cid, good), (liar_cid, b"something else")])
    r = client.post("/api/v0/dag/import", files={"file": ("x.car", car)})
    assert r.status_code == 400 and "does not match" in r.json()["Message"]
    assert not client.store.has(good_cid) and not client.store.has(liar_cid)
    assert client.get(f"/ipfs/{good_cid}", params={"format": "raw"}).status_code == 404


@pytest.mark.parametrize("cut", [1, 5, -3])
def test_dag_import_malformed_car(client, cut):
    data = b"abc"
    cid = cid_for(data)
    car = car_bytes([cid], [(cid, data)])
    r = client.post("/api/v0/dag/import", files={"file": ("x.car", car[:cut])})
    assert r.status_code == 400 and r.json()["Type"] == "error"
    assert not client.store.has(cid)


def test_dag_import_size_cap(tmp_path):
    c, store = make_client(tmp_path, max_car_bytes=2000)
    blocks = [(cid_for(bytes([i]) * 500), bytes([i]) * 500) for i in range(6)]
    car = car_bytes([blocks[0][0]], blocks)
    r = c.post("/api/v0/dag/import", files={"file": ("x.car", car)})
    assert r.status_code == 413 and not list(store.iter_cids())


def test_dag_import_wrong_content_type(client):
    data = b"abc"
    cid = cid_for(data)
    car = car_bytes([cid], [(cid, data)])
    r = client.post("/api/v0/dag/import", content=car, headers={"Content-Type": "application/vnd.ipld.car"})
    assert r.status_code == 415 and not client.store.has(cid)


# ----------------------------------------------------------------------------- corrupted store


def test_corrupted_block_is_never_served(client):
    cid = client.store.put_block(b"pristine")
    client.store.block_path(cid).write_bytes(b"tampered")
    r = client.get(f"/ipfs/{cid}", params={"format": "raw"})
    assert r.status_code == 500 and b"tampered" not in r.content
    r = client.get(f"/ipfs/{cid}", params={"format": "car"})
    assert r.status_code == 500 and b"tampered" not in r.content


# ----------------------------------------------------------------------------- real socket


def test_over_a_real_socket(tmp_path):
    store = LocalStore(tmp_path / "store")
    with BackgroundServer(create_app(ServerConfig(store=store, token=TOKEN))) as srv:
        assert srv.url.startswith("http://127.0.0.1:")
        env = envelope()
        r = httpx.post(
            srv.url + "/api/v1/results",
            content=json.dumps(env),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        )
        assert r.status_code == 201
        g = httpx.get(srv.url + f"/ipfs/{r.json()['cid']}?format=raw")
        assert g.status_code == 200 and CID.decode(r.json()["cid"]).verify(g.content)
        assert httpx.get(srv.url + "/api/v1").json()["writes_need_token"] is True


# ----------------------------------------------------------------------------- leaderboard


def test_leaderboard_lists_verified_results_until_store_verify_finds_one_damaged(tmp_path):
    from greenbench.publish import verify_results
    from greenbench.trust import Trust

    client, store = make_client(tmp_path, board_trust=Trust(frozenset({DID}), "test"))
    good = post_env(client, envelope()).json()["cid"]
    other = signing.sign_result(dict(RESULT, backend="cuda"), KEY, "s.json")
    bad = post_env(client, other).json()["cid"]
    doc = client.get("/api/v1/leaderboard").json()
    assert sorted(r["cid"] for r in doc["rows"]) == sorted([good, bad])  # verified once, when stored
    # corrupt the second block on disk after it was accepted: its page refuses it at once...
    store.block_path(CID.decode(bad)).write_bytes(b"{}")
    assert client.get(f"/result/{bad}").status_code == 404
    # ...and `store verify` re-checks every signature and records the verdict the leaderboard reads
    assert [b["cid"] for b in verify_results(store)] == [bad]
    doc = client.get("/api/v1/leaderboard").json()
    assert [r["cid"] for r in doc["rows"]] == [good]
    assert [s["cid"] for s in doc["skipped"]] == [bad] and "does not verify" in doc["skipped"][0]["reason"]
    html = client.get("/")
    assert html.status_code == 200 and good in html.text and f'data-cid="{bad}"' not in html.text
    assert "default-src 'none'" in html.headers["content-security-policy"]
    assert client.get("/leaderboard?backend=cpu", follow_redirects=False).headers["location"] == "/?backend=cpu"
    # stored again from a good copy: the next `store verify` brings it back
    store.block_path(CID.decode(bad)).unlink()
    post_env(client, other)
    assert verify_results(store) == []
    assert sorted(r["cid"] for r in client.get("/api/v1/leaderboard").json()["rows"]) == sorted([good, bad])


# ----------------------------------------------------------------------------- remote client


def test_remote_client_verifies_what_it_fetches(tmp_path):
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from greenbench.errors import GreenbenchError, VerificationError
    from greenbench.store.remote import ServerClient

    store = LocalStore(tmp_path / "store")
    with BackgroundServer(create_app(ServerConfig(store=store, token=TOKEN))) as srv:
        client = ServerClient(srv.url, token=TOKEN)
        reply = client.post_result(envelope())
        cid = CID.decode(reply["cid"])
        assert client.get_block(cid) == store.get_block(cid)
        assert [r["cid"] for r in client.results()] == [str(cid)]
        with pytest.raises(GreenbenchError):
            client.get_block(cid_for(b"absent"))
        with pytest.raises(GreenbenchError, match="token"):
            ServerClient(srv.url).post_result(envelope())

    async def liar(request):
        return Response(b"not the block", media_type="application/vnd.ipld.raw")

    with BackgroundServer(Starlette(routes=[Route("/ipfs/{cid}", liar)])) as srv:
        with pytest.raises(VerificationError, match="do not match"):
            ServerClient(srv.url).get_block(cid)
