"""`greenbench publish` (local store, greenbench server, Kubo node) and `greenbench serve` end to end."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from greenbench import publish, signing
from greenbench.cli import app
from greenbench.store import dagjson
from greenbench.store.cid import CID
from greenbench.server.app import ServerConfig, create_app
from greenbench.server.runner import BackgroundServer
from greenbench.store.local import LocalStore
from test_kubo import FakeKubo, free_port

RESULT = {
    "schema": "greenbench.result/1",
    "created": "2024-05-01T12:00:00Z",
    "profile": {"name": "llama-tiny", "digest": "sha256:ab"},
    "backend": "cpu",
    "workload": {"kind": "inference"},
    "metrics": {"decode": {"j_per_token": 0.25, "tokens_per_s": 40.0}, "ttft_s": 0.01},
    "energy": {"method": "estimate"},
    "environment": {"cpu_model": "Test CPU", "gpu_models": ["Fake GPU"]},
}
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENBENCH_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.delenv("GREENBENCH_SERVER_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.json").write_text(json.dumps(RESULT))
    return tmp_path


def run(*args, **kw):
    result = CliRunner().invoke(app, list(args), **kw)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    result.err = " ".join(result.stderr.split())  # rich wraps long lines at the terminal width
    return result


@pytest.fixture(scope="module")
def kubo_node():
    fake = FakeKubo()
    with BackgroundServer(fake.app) as srv:
        fake.url = srv.url
        yield fake


@pytest.fixture()
def kubo(kubo_node):
    return kubo_node.reset()


# ----------------------------------------------------------------------------- local


def test_publish_local_signs_stores_and_indexes(env):
    r = run("publish", "r.json", "--store", "st")
    assert r.exit_code == 0, r.stderr
    cid = CID.decode(r.stdout.strip())
    assert "created a signing key" in r.stderr and "signed r.json" in r.stderr
    store = LocalStore(env / "st")
    envelope = dagjson.decode(store.get_block(cid))
    v = signing.verify_envelope(envelope)
    assert v.result == RESULT and v.signer == run("keys", "show").stdout.strip()
    (row,) = store.query_results()
    assert row["cid"] == str(cid) and row["signer"] == v.signer and row["profile"] == "llama-tiny"
    assert row["hardware"] == {"cpu_model": "Test CPU", "gpu_models": ["Fake GPU"]}
    assert row["metrics"]["j_per_token"] == 0.25 and row["created"] == "2024-05-01T12:00:00Z"
    again = run("publish", "r.json", "--store", "st", "--json")
    doc = json.loads(again.stdout)
    assert doc["cid"] == str(cid) and doc["stored_locally"] is False and doc["signed_now"] is True
    assert doc["key_created"] is False and doc["destination"] == "local"
    assert "created a signing key" not in again.stderr


def test_publish_envelope_keeps_its_signer(env):
    envelope = signing.sign_result(RESULT, OTHER_KEY, "r.json")
    (env / "r.dsse.json").write_text(json.dumps(envelope))
    r = run("publish", "r.dsse.json", "--store", "st")
    assert r.exit_code == 0
    assert CID.decode(r.stdout.strip()) == publish.envelope_block(envelope)[0]
    assert signing.did_key(OTHER_KEY) in r.err
    assert not (env / "cfg" / "keys").exists()  # no key needed, none created


def test_publish_uses_default_store_env(env, monkeypatch):
    monkeypatch.setenv("GREENBENCH_STORE", str(env / "envstore"))
    r = run("publish", "r.json")
    assert r.exit_code == 0 and LocalStore(env / "envstore").has(CID.decode(r.stdout.strip()))


def test_publish_tampered_envelope_is_exit_1_and_not_stored(env):
    envelope = signing.sign_result(RESULT, OTHER_KEY, "r.json")
    raw = bytearray(base64.b64decode(envelope["payload"]))
    raw[-5] ^= 1
    envelope["payload"] = base64.b64encode(bytes(raw)).decode()
    (env / "bad.dsse.json").write_text(json.dumps(envelope))
    r = run("publish", "bad.dsse.json", "--store", "st")
    assert r.exit_code == 1 and r.stdout == ""
    assert not (env / "st").exists() or not list(LocalStore(env / "st").iter_cids())


@pytest.mark.parametrize("content", ["{", "[1, 2]", '"text"'])
def test_publish_malformed_is_exit_2(env, content):
    (env / "x.json").write_text(content)
    r = run("publish", "x.json", "--store", "st")
    assert r.exit_code == 2 and "error:" in r.stderr


def test_publish_refuses_duplicate_keys_and_nan_whatever_the_spelling(env):
    from greenbench.canonical import canonical_bytes

    body = canonical_bytes(RESULT)
    dup = body[:-1] + b',"backend":"cuda"}'  # sorted, compact: only the duplicate makes it non-canonical
    nan = body.replace(b'"j_per_token":0.25', b'"j_per_token":NaN')
    for name, data in (("dup.json", dup), ("nan.json", nan), ("dupnl.json", dup + b"\n")):
        (env / name).write_bytes(data)
        r = run("publish", name, "--store", "st")
        assert r.exit_code == 2 and r.stdout == "", (name, r.stderr)
        assert ("duplicate key" in r.err) if name.startswith("dup") else ("NaN is not JSON" in r.err)
    assert not (env / "st").exists() or not list(LocalStore(env / "st").iter_cids())


def test_publish_signs_the_canonical_bytes_of_any_spelling(env):
    from greenbench.canonical import canonical_bytes

    (env / "pretty.json").write_text(json.dumps(RESULT, indent=2))
    (env / "canon.json").write_bytes(canonical_bytes(RESULT) + b"\n")
    (env / "unsorted.json").write_text(json.dumps(dict(reversed(RESULT.items())), separators=(",", ":")))
    store = LocalStore(env / "st")
    digests = set()
    for name in ("pretty.json", "canon.json", "unsorted.json", "r.json"):
        cid = CID.decode(run("publish", name, "--store", "st").stdout.strip())
        v = signing.verify_envelope(dagjson.decode(store.get_block(cid)))
        assert v.result == RESULT and v.subject_name == name
        digests.add(v.sha256)
    assert digests == {hashlib.sha256(canonical_bytes(RESULT)).hexdigest()}


# ----------------------------------------------------------------------------- greenbench server


@pytest.fixture()
def server(tmp_path):
    store = LocalStore(tmp_path / "server-store")
    with BackgroundServer(create_app(ServerConfig(store=store, token="tok"))) as srv:
        srv.store = store
        yield srv


def test_publish_to_server_with_token_env(env, server, monkeypatch):
    monkeypatch.setenv("GREENBENCH_SERVER_TOKEN", "tok")
    r = run("publish", "r.json", "--store", "st", "--to", server.url, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    cid = CID.decode(doc["cid"])
    assert doc["destination"] == "server" and doc["url"] == server.url
    assert server.store.has(cid) and LocalStore(env / "st").has(cid)
    assert [row["cid"] for row in server.store.query_results()] == [str(cid)]


def test_publish_to_server_with_token_file(env, server):
    (env / "token").write_text("tok\n")
    r = run("publish", "r.json", "--store", "st", "--to", server.url + "/", "--token-file", "token")
    assert r.exit_code == 0, r.stderr
    assert server.store.has(CID.decode(r.stdout.strip()))


def test_publish_to_server_without_token_is_exit_2(env, server):
    r = run("publish", "r.json", "--store", "st", "--to", server.url)
    assert r.exit_code == 2 and "token" in r.err
    assert not server.store.query_results()


def test_server_assigning_another_cid_is_exit_1(env):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def liar(request):
        return JSONResponse({"cid": "bafkqaaa"}, status_code=201)

    with BackgroundServer(Starlette(routes=[Route("/api/v1/results", liar, methods=["POST"])])) as srv:
        r = run("publish", "r.json", "--store", "st", "--to", srv.url)
    assert r.exit_code == 1 and "bafkqaaa" in r.err


# ----------------------------------------------------------------------------- Kubo


@pytest.mark.parametrize("scheme", ["kubo+http://", "http://"])  # explicit, and detected by the version probe
def test_publish_to_kubo(env, kubo, scheme):
    url = scheme + kubo.url[len("http://") :]
    r = run("publish", "r.json", "--store", "st", "--to", url, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    cid = CID.decode(doc["cid"])
    assert doc["destination"] == "kubo"
    assert cid in kubo.pins and cid.verify(kubo.blocks[cid])
    assert signing.verify_envelope(dagjson.decode(kubo.blocks[cid])).result == RESULT
    cmds = [c for _, c, _ in kubo.calls]
    assert cmds[-2:] == ["dag/import", "pin/add"]
    assert all(m == "POST" for m, _, _ in kubo.calls)


@pytest.mark.parametrize("mode,code,text", [("lie", 1, "expected exactly"), ("fail", 2, "context deadline"), ("pin-error", 2, "could not pin")])
def test_publish_to_misbehaving_kubo(env, kubo, mode, code, text):
    kubo.mode = mode
    r = run("publish", "r.json", "--store", "st", "--to", "kubo+" + kubo.url)
    assert r.exit_code == code and text in r.err and r.stdout == ""


def test_publish_unreachable_is_exit_2_with_url_and_fix(env):
    url = f"http://127.0.0.1:{free_port()}"
    for target in (url, "kubo+" + url):
        r = run("publish", "r.json", "--store", "st", "--to", target)
        assert r.exit_code == 2 and url in r.err and "hint:" in r.err


@pytest.mark.parametrize("target", ["ftp://x", "127.0.0.1:5001", "kubo+ftp://x"])
def test_publish_bad_url_is_exit_2(env, target):
    r = run("publish", "r.json", "--store", "st", "--to", target)
    assert r.exit_code == 2


# ----------------------------------------------------------------------------- serve CLI


def test_serve_port_in_use_is_exit_2(env):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = run("serve", "--port", str(s.getsockname()[1]), "--store", "st")
    assert r.exit_code == 2 and "--port" in r.err


def test_serve_bad_token_and_trust_files_are_exit_2(env):
    (env / "empty").write_text("")
    assert run("serve", "--token-file", "empty", "--store", "st").exit_code == 2
    assert run("serve", "--token-file", "missing", "--store", "st").exit_code == 2
    assert run("serve", "--trust", "empty", "--store", "st").exit_code == 2


def test_serve_subprocess_end_to_end(env):
    """`greenbench serve` as users run it: binds 127.0.0.1, serves the probe, stops on SIGTERM."""
    (env / "token").write_text("tok")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from greenbench.cli import main; main()", "serve", "--port", "0",
         "--store", str(env / "st"), "--token-file", str(env / "token")],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "400"},
    )
    try:
        line = proc.stderr.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert m, line
        base = f"http://127.0.0.1:{m.group(1)}"
        for _ in range(100):
            try:
                r = httpx.get(base + "/ipfs/bafkqaaa?format=raw")
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert r.status_code == 200 and r.content == b""
        envelope = signing.sign_result(RESULT, OTHER_KEY, "r.json")
        r = httpx.post(base + "/api/v1/results", json=envelope)
        assert r.status_code == 401
        r = httpx.post(base + "/api/v1/results", json=envelope, headers={"Authorization": "Bearer tok"})
        assert r.status_code == 201
        urls = [proc.stderr.readline() for _ in range(4)]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    rest = proc.stderr.read()
    assert "Traceback" not in rest
    assert LocalStore(env / "st").has(CID.decode(r.json()["cid"]))
    # the start-up lines name the page and the APIs; then one access-log line per request
    assert [u.split()[0] for u in urls] == ["leaderboard", "trustless", "results", "Kubo"]
    assert f"{base}/ " in urls[0] and f"{base}/api/v0/" in urls[3]
    assert '"GET /ipfs/bafkqaaa?format=raw HTTP/1.1" 200 0' in rest
    assert rest.count('"POST /api/v1/results HTTP/1.1"') == 2


# ----------------------------------------------------------------------------- envelopes beside results
def test_publish_adds_its_signature_to_a_colleagues_envelope_of_the_same_result(env):
    theirs = signing.sign_result(RESULT, OTHER_KEY, "r.json")
    (env / "r.dsse.json").write_text(json.dumps(theirs, indent=2))  # as another tool would format it
    r = run("publish", "r.json", "--store", "st")
    assert r.exit_code == 0, r.stderr
    me = run("keys", "show").stdout.strip()
    merged = json.loads((env / "r.dsse.json").read_text())
    v = signing.verify_envelope(merged)
    assert v.signers == (signing.did_key(OTHER_KEY), me)  # theirs kept, mine added
    assert merged["signatures"][0] == theirs["signatures"][0]
    assert "signature is added" in r.err
    (row,) = LocalStore(env / "st").query_results()
    assert row["cid"] == r.stdout.strip()


def test_publish_keeps_a_different_file_aside_before_writing_its_envelope(env):
    (env / "r.dsse.json").write_text("my notes, not an envelope")
    r = run("publish", "r.json", "--store", "st")
    assert r.exit_code == 0, r.stderr
    assert (env / "r.dsse.json.1").read_text() == "my notes, not an envelope"
    assert signing.verify_envelope(json.loads((env / "r.dsse.json").read_text())).result == RESULT
    assert "kept as r.dsse.json.1" in r.err
    run("publish", "r.json", "--store", "st")  # again: the same envelope there, nothing more kept aside
    assert not (env / "r.dsse.json.2").exists()


def test_directory_publish_checks_the_envelope_beside_a_result_against_it(env):
    d = env / "d"
    d.mkdir()
    (d / "r.json").write_text(json.dumps(RESULT))
    first = run("publish", "d", "--store", "st", "--json")
    assert first.exit_code == 0 and json.loads(first.stdout)["published"][0]["signed_now"] is True
    again = run("publish", "d", "--store", "st", "--json")  # the envelope beside it is the result's: as it is
    assert json.loads(again.stdout)["published"][0]["signed_now"] is False
    remeasured = dict(RESULT, metrics={"decode": {"j_per_token": 0.1, "tokens_per_s": 40.0}, "ttft_s": 0.01})
    (d / "r.json").write_text(json.dumps(remeasured))  # measured again under the same name
    third = run("publish", "d", "--store", "st", "--json")
    out = json.loads(third.stdout)
    assert third.exit_code == 0 and out["published"][0]["signed_now"] is True  # not the stale envelope
    assert signing.verify_envelope(json.loads((d / "r.dsse.json").read_text())).result == remeasured
    assert signing.verify_envelope(json.loads((d / "r.dsse.json.1").read_text())).result == RESULT
    assert {row["metrics"]["j_per_token"] for row in LocalStore(env / "st").query_results()} == {0.25, 0.1}


def test_an_envelope_that_cannot_be_written_fails_that_file_only(env):
    d = env / "d"
    d.mkdir()
    for name in ("a", "b"):
        (d / f"{name}.json").write_text(json.dumps(dict(RESULT, created=f"2024-05-0{1 + (name == 'b')}T12:00:00Z")))
    (d / "a.dsse.json").mkdir()  # something that is not a file stands where a's envelope goes
    r = run("publish", "d", "--store", "st")
    assert r.exit_code == 2
    assert len(r.stdout.split()) == 1  # b's CID
    assert "a.json" in r.err and "not a regular file" in r.err and ".tmp" not in r.err
    assert (d / "b.dsse.json").is_file()
    assert len(LocalStore(env / "st").query_results()) == 2  # a is stored all the same, and says so


def test_collect_paths_finds_json_below_directories_in_path_order(tmp_path):
    root = tmp_path / "in"
    for rel in ("b.json", "a.json", "a.dsse.json", "lone.dsse.json", ".hidden.json", "notes.txt",
                "sub/z.json", "sub-x/y.json", "sub/deeper/w.json", ".dot/v.json"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("{}")
    (root / "dir.json").mkdir()  # a directory named *.json is walked, not published
    (root / "dir.json" / "u.json").write_text("{}")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.json").write_text("{}")
    (root / "link").symlink_to(outside, target_is_directory=True)  # not followed
    (root / "flink.json").symlink_to(outside / "o.json")  # a link to a file is published
    got = [os.path.relpath(p, root) for p, found in publish.collect_paths([root]) if found]
    assert got == [".dot/v.json", "a.json", "b.json", "dir.json/u.json", "flink.json", "lone.dsse.json",
                   "sub/deeper/w.json", "sub/z.json", "sub-x/y.json"]
    assert publish.collect_paths([root / "a.dsse.json"]) == [(str(root / "a.dsse.json"), False)]
    # paths as pathlib spells them, whatever the spelling given
    assert publish.collect_paths([f"{root}/a.json/", f"{root}/./b.json"]) == [(str(root / "a.json"), False),
                                                                                (str(root / "b.json"), False)]
    assert publish.collect_paths([f"{root}/sub/"]) == publish.collect_paths([root / "sub"])
    with pytest.raises(publish.GreenbenchError, match="no such file"):
        publish.collect_paths([root / "missing.json"])
