"""Hostile but validly signed or well-formed input: clean verdicts and errors, never a traceback or a 500."""

import base64
import copy
import json

import pytest
from typer.testing import CliRunner

from greenbench import signing
from greenbench.cli import app
from greenbench.errors import StoreError, VerificationError
from greenbench.publish import envelope_block
from greenbench.store import dagjson

from test_results import minimal_doc


@pytest.fixture
def key(tmp_path):
    return signing.load_or_create_key(tmp_path / "keys")


def forged_envelope(key, statement) -> dict:
    """An envelope correctly signed by ``key`` over arbitrary payload bytes (bypassing sign_result's checks)."""
    payload = statement if isinstance(statement, bytes) else json.dumps(statement).encode()
    sig = key.sign(signing.pae(signing.PAYLOAD_TYPE, payload))
    did = signing.did_key(key.public_key())
    return {"payload": base64.b64encode(payload).decode(), "payloadType": signing.PAYLOAD_TYPE,
            "signatures": [{"keyid": did, "sig": base64.b64encode(sig).decode()}]}


def test_overlong_keyid_rejected_before_decoding():
    env = {"payload": "e30=", "payloadType": signing.PAYLOAD_TYPE,
           "signatures": [{"keyid": "did:key:z" + "6" * 100_000, "sig": "AA=="}]}
    with pytest.raises(VerificationError, match="too long"):
        signing.verify_envelope(env)


def test_too_many_signatures_rejected(key):
    env = forged_envelope(key, {"x": 1})
    env["signatures"] = env["signatures"] * (signing.MAX_SIGNATURES + 1)
    with pytest.raises(VerificationError, match="at most"):
        signing.verify_envelope(env)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"_type": "https://in-toto.io/Statement/v1", "predicate": {"n": 1' + b"0" * 400 + b"}}",
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["integer-beyond-double", "deep-nesting"],
)
def test_signed_garbage_is_a_verdict_not_a_traceback(tmp_path, key, payload):
    env = forged_envelope(key, payload)
    with pytest.raises(VerificationError):
        signing.verify_envelope(env)
    f = tmp_path / "x.dsse.json"
    f.write_text(json.dumps(env))
    res = CliRunner().invoke(app, ["verify", str(f)])
    assert res.exit_code == 1 and "Traceback" not in res.output


def test_signing_a_result_with_an_out_of_range_number_is_exit_2(tmp_path):
    doc = minimal_doc()
    doc["metrics"]["ttft_s"] = 10**400
    f = tmp_path / "r.json"
    f.write_text(json.dumps(doc))
    res = CliRunner().invoke(app, ["sign", str(f)])
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_dagjson_huge_integer_is_a_store_error():
    with pytest.raises(StoreError):
        dagjson.decode(b'{"a": ' + b"9" * 5000 + b"}")


def test_one_signed_result_one_cid_whatever_the_base64_spelling(key):
    env = signing.sign_result(minimal_doc(), key, "r.json")
    unpadded = copy.deepcopy(env)
    unpadded["payload"] = env["payload"].rstrip("=")
    urlsafe = copy.deepcopy(env)
    urlsafe["payload"] = env["payload"].replace("+", "-").replace("/", "_")
    urlsafe["signatures"][0]["sig"] = env["signatures"][0]["sig"].replace("+", "-").replace("/", "_").rstrip("=")
    for e in (unpadded, urlsafe):
        signing.verify_envelope(e)  # still valid DSSE
    cids = {str(envelope_block(e)[0]) for e in (env, unpadded, urlsafe)}
    assert len(cids) == 1


def test_signed_but_malformed_results_do_not_break_the_leaderboard(tmp_path, key, monkeypatch):
    store = tmp_path / "store"
    runner = CliRunner()
    good = minimal_doc()
    bad = copy.deepcopy(minimal_doc())
    bad["metrics"]["decode"]["j_per_token"] = "lol"
    bad["environment"]["gpu_models"] = "not a list"
    monkeypatch.setenv("GREENBENCH_CONFIG_DIR", str(tmp_path / "cfg"))
    for name, doc in (("good", good), ("bad", bad)):
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps(doc))
        env_path = tmp_path / f"{name}.dsse.json"
        env_path.write_text(json.dumps(signing.sign_result(doc, key, f.name)))
        res = runner.invoke(app, ["publish", str(env_path), "--store", str(store)])
        assert res.exit_code == 0, res.output
    trusted = tmp_path / "trust.txt"
    trusted.write_text(signing.did_key(key) + "\n")
    res = runner.invoke(app, ["leaderboard", "--store", str(store), "--json", "--trust", str(trusted)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [r["j_per_token"] for r in out["rows"]] == [good["metrics"]["decode"]["j_per_token"]]
    assert any("malformed" in s["reason"] for s in out["skipped"])
    # not trusted by default (only the local key is): listed apart, never ranked
    out = json.loads(runner.invoke(app, ["leaderboard", "--store", str(store), "--json"]).stdout)
    assert out["rows"] == [] and [r["rank"] for r in out["untrusted"]] == [None]


def test_leaderboard_from_a_non_greenbench_url_is_exit_2(tmp_path):
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    from greenbench.server.runner import BackgroundServer

    async def page(request):
        return HTMLResponse("<html>not an API</html>")

    with BackgroundServer(Starlette(routes=[Route("/api/v1/results", page)])) as srv:
        res = CliRunner().invoke(app, ["leaderboard", "--from", srv.url])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "did not answer JSON" in res.output and "--from" in res.output and "--to" not in res.output


def test_server_rejects_signed_garbage_with_4xx(tmp_path, key):
    from starlette.testclient import TestClient

    from greenbench.server.app import ServerConfig, create_app

    client = TestClient(create_app(ServerConfig(store_dir=tmp_path / "s")))
    for payload in (b'{"n": 1' + b"0" * 400 + b"}", b"[" * 50_000 + b"]" * 50_000):
        r = client.post("/api/v1/results", content=json.dumps(forged_envelope(key, payload)),
                        headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text


def test_serve_refuses_open_writes_beyond_loopback(tmp_path):
    res = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "0", "--store", str(tmp_path / "s")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "--open-writes" in res.output


def test_serve_refuses_malformed_origins_and_urls(tmp_path):
    from typer.testing import CliRunner

    from greenbench.cli import app

    for opt in (["--cors-origin", "lab.example"], ["--public-url", "ftp://x"]):
        r = CliRunner().invoke(app, ["serve", "--store", str(tmp_path / "s"), *opt])
        assert r.exit_code == 2 and "not an http(s) URL" in " ".join(r.stderr.split()), r.stderr
