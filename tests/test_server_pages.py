"""The pages module: the leaderboard is rendered once per state of the result index, shared, gzip-ready."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.testclient import TestClient

from greenbench import signing
from greenbench.publish import store_envelope
from greenbench.server import pages
from greenbench.server.app import ServerConfig, create_app
from greenbench.server.runner import BackgroundServer
from greenbench.store.local import LocalStore

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def publish(store, j_per_token: float, name: str = "p") -> str:
    doc = {
        "schema": "greenbench.result/1",
        "profile": {"name": name, "digest": "sha256:" + "ab" * 32},
        "workload": {"kind": "inference"},
        "metrics": {"decode": {"j_per_token": j_per_token, "tokens_per_s": 10.0}},
        "energy": {"method": "estimate"},
    }
    env = signing.sign_result(doc, KEY, "r.json")
    cid, _ = store_envelope(env, signing.verify_envelope(env), store)
    return str(cid)


@pytest.fixture()
def site(tmp_path):
    store = LocalStore(tmp_path / "store")
    client = TestClient(create_app(ServerConfig(store=store)))
    client.store = store
    return client


def test_rendered_once_per_index_state(site, monkeypatch):
    publish(site.store, 0.5)
    calls = []
    real = pages.render
    monkeypatch.setattr(pages, "render", lambda *a: calls.append(a[2:]) or real(*a))
    first = site.get("/api/v1/leaderboard").json()
    assert [r["j_per_token"] for r in first["rows"]] == [0.5]
    assert site.get("/api/v1/leaderboard").json() == first and len(calls) == 1  # shared
    site.get("/api/v1/leaderboard?method=estimate")
    site.get("/leaderboard")
    assert len(calls) == 3  # another filter, another page: rendered once each
    publish(site.store, 0.25)  # the result index changed: rendered afresh
    rows = site.get("/api/v1/leaderboard").json()["rows"]
    assert [r["j_per_token"] for r in rows] == [0.25, 0.5] and len(calls) == 4


def test_old_renderings_are_made_again(site, monkeypatch):
    publish(site.store, 0.5)
    site.get("/api/v1/leaderboard")
    monkeypatch.setattr(pages, "MAX_AGE_S", 0.0)
    calls = []
    real = pages.render
    monkeypatch.setattr(pages, "render", lambda *a: calls.append(1) or real(*a))
    site.get("/api/v1/leaderboard")
    assert calls == [1]


def test_gzip_when_asked(site):
    publish(site.store, 0.5)
    plain = site.get("/api/v1/leaderboard", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.headers["vary"] == "Accept-Encoding"
    raw = site.get("/api/v1/leaderboard", headers={"Accept-Encoding": "br, gzip"})
    assert raw.headers["content-encoding"] == "gzip" and raw.json() == plain.json()  # decoded by the client
    refused = site.get("/api/v1/leaderboard", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers
    html = site.get("/leaderboard", headers={"Accept-Encoding": "gzip"})
    assert html.headers["content-type"].startswith("text/html") and "J/token" in html.text
    assert "default-src 'none'" in html.headers["content-security-policy"]


def test_json_body_is_what_jsonresponse_sent(site):
    publish(site.store, 0.5)
    body = site.get("/api/v1/leaderboard", headers={"Accept-Encoding": "identity"}).content
    doc = json.loads(body)
    assert body == json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    assert set(doc) == {"rows", "skipped"}


def test_worker_process_renders_the_same(tmp_path):
    store = LocalStore(tmp_path / "store")
    publish(store, 0.5)
    publish(store, 0.75, name="q")
    app = create_app(ServerConfig(store=store, worker_process=True))
    try:
        with BackgroundServer(app) as srv:
            r = httpx.get(f"{srv.url}/api/v1/leaderboard", timeout=120)
            assert r.status_code == 200 and [row["profile"] for row in r.json()["rows"]] == ["p", "q"]
            assert app.state.ctx._pool is not None  # it did go through the worker process
    finally:
        app.state.ctx.drop_worker_pool()
    direct = json.loads(pages.render(str(store.root), None, store.result_state(), "json", None, None)[0])
    assert direct == r.json()
    assert gzip.decompress(pages.render(str(store.root), None, (9, 9), "json", None, None)[1]) == json.dumps(
        direct, ensure_ascii=False, separators=(",", ":")
    ).encode()
