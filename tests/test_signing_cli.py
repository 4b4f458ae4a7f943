"""CLI: `keys init/show`, `sign`, `verify` exit codes, stdout/stderr split, no tracebacks."""

from __future__ import annotations

import json
import stat

import pytest
from typer.testing import CliRunner

from greenbench.cli import app

RESULT = {"schema": "greenbench.result/1", "backend": "cpu", "metrics": {"decode": {"j_per_token": 0.5}}}


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENBENCH_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.json").write_text(json.dumps(RESULT, indent=2))
    return tmp_path


def run(*args):
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.stderr, result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def test_keys_init_is_idempotent_and_prints_only_the_did(env):
    first = run("keys", "init")
    assert first.exit_code == 0
    did = first.stdout.strip()
    assert did.startswith("did:key:z6Mk") and "\n" not in did
    assert "created" in first.stderr
    key = env / "cfg" / "keys" / "ed25519.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    pem = key.read_text()
    second = run("keys", "init")
    assert second.exit_code == 0 and second.stdout.strip() == did and "already exists" in second.stderr
    assert key.read_text() == pem
    shown = run("keys", "show", "--json")
    assert json.loads(shown.stdout) == {"did": did, "path": str(key)}
    for r in (first, second, shown):  # the private key is never printed
        assert "PRIVATE" not in r.stdout + r.stderr and pem.splitlines()[1] not in r.stdout + r.stderr


def test_keys_show_without_key_is_exit_2(env):
    r = run("keys", "show")
    assert r.exit_code == 2 and "keys init" in r.stderr


def test_sign_then_verify(env):
    r = run("sign", "r.json")
    assert r.exit_code == 0
    out = env / "r.dsse.json"
    assert r.stdout.strip() == "r.dsse.json" and out.exists()
    assert "created signing key" in r.stderr  # key created implicitly, and said so
    did = run("keys", "show").stdout.strip()
    assert did in r.stderr
    v = run("verify", "r.dsse.json")
    assert v.exit_code == 0 and did in v.stdout
    vj = run("verify", "r.dsse.json", "--json")
    doc = json.loads(vj.stdout)
    assert vj.exit_code == 0 and doc["verified"] is True and doc["signer"] == did and doc["subject"] == "r.json"


def test_sign_json_and_out(env):
    r = run("sign", "r.json", "-o", "sub/env.json", "--json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["path"] == "sub/env.json" and doc["signer"].startswith("did:key:z6Mk")
    assert (env / "sub" / "env.json").exists()


def test_verify_with_trust_file(env):
    run("sign", "r.json")
    did = run("keys", "show").stdout.strip()
    (env / "trust.txt").write_text(f"# team\n{did}\n")
    assert run("verify", "r.dsse.json", "--trust", "trust.txt").exit_code == 0
    (env / "other.txt").write_text("did:key:z6MkmjY8GnV5i9YTDtPETC2uUAW6ejw3nk5mXF5yci5ab7th\n")
    r = run("verify", "r.dsse.json", "--trust", "other.txt", "--json")
    assert r.exit_code == 1 and "trust list" in r.stderr
    assert json.loads(r.stdout)["verified"] is False
    (env / "bad.txt").write_text("hello\n")
    r = run("verify", "r.dsse.json", "--trust", "bad.txt")
    assert r.exit_code == 2 and "bad.txt:1" in r.stderr


@pytest.mark.parametrize("field", ["payload", "payloadType", "keyid", "sig"])
def test_verify_tampered_is_exit_1(env, field):
    run("sign", "r.json")
    envelope = json.loads((env / "r.dsse.json").read_text())
    target = envelope["signatures"][0] if field in ("keyid", "sig") else envelope
    value = target[field]
    target[field] = value[:-3] + ("A" if value[-3] != "A" else "B") + value[-2:]
    (env / "t.dsse.json").write_text(json.dumps(envelope))
    r = run("verify", "t.dsse.json")
    assert r.exit_code == 1 and r.stdout == ""


@pytest.mark.parametrize(
    "content", ["{", "[]", json.dumps(RESULT), json.dumps({"payload": "", "payloadType": ""})]
)
def test_verify_malformed_is_exit_2(env, content):
    (env / "x.json").write_text(content)
    r = run("verify", "x.json")
    assert r.exit_code == 2 and "error:" in r.stderr


def test_verify_missing_file_is_exit_2(env):
    assert run("verify", "nope.json").exit_code == 2


def test_sign_rejects_envelope_and_non_object(env):
    run("sign", "r.json")
    assert run("sign", "r.dsse.json").exit_code == 2
    (env / "list.json").write_text("[1]")
    assert run("sign", "list.json").exit_code == 2
    (env / "bad.json").write_text("{\n  'a': 1}")
    r = run("sign", "bad.json")
    assert r.exit_code == 2 and "bad.json:2" in r.stderr
