"""The trust policy: --trust, the config key, the default trust file, the local key; keys trust add|rm|ls; verify."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from greenbench import signing, trust
from greenbench.cli import app
from greenbench.errors import GreenbenchError
from greenbench.fsutil import config_dir

from test_results import minimal_doc

OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_DID = signing.did_key(OTHER)


def _config(text: str) -> None:
    config_dir().mkdir(parents=True, exist_ok=True)
    (config_dir() / "config.toml").write_text(text)


def test_nobody_then_the_local_key_then_the_trust_file(tmp_path):
    assert trust.resolve().keys == frozenset() and "nobody" in trust.resolve().source
    key, _, _ = signing.init_key()
    mine = signing.did_key(key)
    assert trust.resolve().keys == {mine} and not trust.resolve().from_file
    path, added, created = trust.add(OTHER_DID)
    assert added and created and path == config_dir() / "trust.txt"
    assert trust.resolve().keys == {mine, OTHER_DID} and trust.resolve().from_file
    assert trust.add(OTHER_DID)[1] is False  # already there
    trust.remove(mine)  # one may stop trusting oneself
    assert trust.resolve().keys == {OTHER_DID}
    trust.remove(OTHER_DID)
    assert trust.resolve().keys == frozenset()  # an emptied trust file trusts nobody, not the default
    with pytest.raises(GreenbenchError, match="not in the trust file"):
        trust.remove(OTHER_DID)


def test_option_beats_config_beats_default(tmp_path):
    given = tmp_path / "given.txt"
    given.write_text(OTHER_DID + "\n")
    configured = tmp_path / "configured.txt"
    mine = signing.did_key(signing.init_key()[0])
    configured.write_text(f"# team\n{mine}\n")
    _config(f'trust = "{configured}"\n')
    assert trust.resolve(given).keys == {OTHER_DID} and trust.resolve(given).source == f"--trust {given}"
    assert trust.resolve().keys == {mine} and "config" in trust.resolve().source
    trust.add(OTHER_DID)  # edits the configured file, not the default one
    assert OTHER_DID in configured.read_text() and not (config_dir() / "trust.txt").exists()
    configured.unlink()
    with pytest.raises(GreenbenchError, match="does not exist"):
        trust.resolve()


def test_small_order_key_cannot_be_trusted():
    with pytest.raises(GreenbenchError, match="small order"):
        trust.add(signing.did_key((1).to_bytes(32, "little")))


def test_keys_trust_cli(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["keys", "init"])
    mine = res.stdout.strip()
    res = runner.invoke(app, ["keys", "trust", "ls"])
    assert res.exit_code == 0 and res.stdout.split() == [mine] and "local signing key only" in res.stderr
    res = runner.invoke(app, ["keys", "trust", "add", OTHER_DID])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["keys", "trust", "ls"])
    assert res.stdout.split() == [mine, OTHER_DID]
    res = runner.invoke(app, ["keys", "trust", "ls", "--json"])
    assert json.loads(res.stdout)["keys"] == sorted([mine, OTHER_DID])
    res = runner.invoke(app, ["keys", "trust", "rm", OTHER_DID])
    assert res.exit_code == 0 and runner.invoke(app, ["keys", "trust", "ls"]).stdout.split() == [mine]
    res = runner.invoke(app, ["keys", "trust", "rm", OTHER_DID])
    assert res.exit_code == 2 and "keys trust ls" in res.stderr and "Traceback" not in res.output
    res = runner.invoke(app, ["keys", "trust", "add", "did:key:zbad"])
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_verify_reads_the_trust_file(tmp_path):
    runner = CliRunner()
    env = signing.sign_result(minimal_doc(), OTHER, "r.json")
    f = tmp_path / "r.dsse.json"
    f.write_text(json.dumps(env))
    runner.invoke(app, ["keys", "init"])
    res = runner.invoke(app, ["verify", str(f)])  # no trust file: the signature is checked, trust reported
    assert res.exit_code == 0 and "not a trusted key" in res.stdout
    res = runner.invoke(app, ["verify", str(f), "--json"])
    assert json.loads(res.stdout)["trusted"] is False
    runner.invoke(app, ["keys", "trust", "add", signing.did_key(Ed25519PrivateKey.generate())])
    res = runner.invoke(app, ["verify", str(f)])  # the trust file now exists and does not list OTHER
    assert res.exit_code == 1 and "keys trust add" in res.stderr
    runner.invoke(app, ["keys", "trust", "add", OTHER_DID])
    res = runner.invoke(app, ["verify", str(f), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["trusted"] is True
    listed = tmp_path / "t.txt"
    listed.write_text(signing.did_key(Ed25519PrivateKey.generate()) + "\n")
    assert runner.invoke(app, ["verify", str(f), "--trust", str(listed)]).exit_code == 1
