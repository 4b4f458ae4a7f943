"""Text from results, file names and other signers never reaches the terminal as control sequences."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from greenbench import publish, signing
from greenbench.cli import app, render

from test_leaderboard import KEYS, doc
from test_results import minimal_doc

EVIL = "ok\x1b]0;PWNED\x07\x1b[2J\x1b[31mRED\x9b"


def test_printable_escapes_every_control_character():
    assert render.printable(EVIL) == "ok\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31mRED\\x9b"
    assert render.printable("two\nlines\ttab") == "two\nlines\\x09tab"
    assert render.printable("a\nb", newlines=False) == "a\\nb"


def test_leaderboard_show_and_compare_print_no_escape_sequences(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENBENCH_CONFIG_DIR", str(tmp_path / "cfg"))
    d = doc(0.1)
    d["profile"]["name"] = EVIL
    d["backend"] = "cpu\x1b[8m"
    env = signing.sign_result(d, KEYS[1], "e.json")  # another signer: listed apart, but printed
    (tmp_path / "e.dsse.json").write_text(json.dumps(env))
    r = minimal_doc()
    r["profile"]["name"], r["backend"] = EVIL, "cpu\x1b[8m"
    (tmp_path / "r.json").write_text(json.dumps(r))
    assert not publish.publish_paths([tmp_path / "e.dsse.json"], store_dir=tmp_path / "st").failed
    runner = CliRunner()
    for args in (["leaderboard", "--store", str(tmp_path / "st")],
                 ["show", str(tmp_path / "r.json")],
                 ["compare", str(tmp_path / "r.json"), str(tmp_path / "r.json")],
                 ["compare", str(tmp_path / "r.json"), str(tmp_path / "r.json"), "--markdown"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0, (args, res.output)
        assert "\x1b" not in res.stdout and "\x07" not in res.stdout and "\x9b" not in res.stdout, args
        assert "\x1b" not in res.stderr, args
    assert "PWNED" in runner.invoke(app, ["leaderboard", "--store", str(tmp_path / "st")]).stdout  # shown, defused


def test_show_of_a_result_with_a_field_of_another_type_is_a_clear_error(tmp_path):
    r = minimal_doc()
    r["energy"]["meters"][0]["joules"] = "lots"
    (tmp_path / "r.json").write_text(json.dumps(r))
    res = CliRunner().invoke(app, ["show", str(tmp_path / "r.json")])
    assert res.exit_code == 2 and "not a result this greenbench can render" in " ".join(res.stderr.split())
    assert "show --json" in res.stderr
    assert res.exception is None or isinstance(res.exception, SystemExit)
