"""`greenbench run` and `greenbench profiles` end to end, as a user runs them (CliRunner)."""

import json

import pytest
from typer.testing import CliRunner

from greenbench import results
from greenbench.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def assert_clean_error(res, code=2, needle=None):
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    if needle:
        assert needle in res.output


def test_version_and_help():
    res = invoke("--version")
    assert res.exit_code == 0 and res.output.startswith("greenbench ")
    for cmd in ("run", "profiles", "meters", "measure", "carbon", "keys", "sign", "verify", "store", "publish", "serve"):
        res = invoke(cmd, "--help")
        assert res.exit_code == 0, (cmd, res.output)


def test_profiles_lists_builtins():
    res = invoke("profiles", "--json")
    assert res.exit_code == 0
    names = [p["name"] for p in json.loads(res.stdout)]
    assert {"llama-tiny", "llama-125m"} <= set(names)


def test_run_llama_tiny_json(tmp_path):
    out = tmp_path / "res"
    res = invoke("run", "llama-tiny", "--repeats", "2", "--max-new-tokens", "8", "--region", "FRA",
                 "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)  # stdout is the document and nothing else
    files = list(out.glob("llama-tiny-*.json"))
    assert len(files) == 1
    assert results.load(files[0]) == doc
    assert doc["schema"] == "greenbench.result/1"
    assert doc["workload"]["new_tokens"] == 8
    assert len(doc["workload"]["generated_token_ids"]) == 8
    assert len(doc["metrics"]["decode"]["j_per_token_samples"]) == 2
    assert doc["energy"]["method"] in ("counter", "estimate")
    assert doc["metrics"]["decode"]["j_per_token"] > 0
    assert doc["carbon"]["region"] == "FRA"
    assert doc["metrics"]["decode"]["macs_per_token"] > 0


def test_run_is_deterministic_in_tokens(tmp_path):
    a = json.loads(invoke("run", "llama-tiny", "--repeats", "1", "--max-new-tokens", "6", "--out", str(tmp_path), "--json").stdout)
    b = json.loads(invoke("run", "llama-tiny", "--repeats", "1", "--max-new-tokens", "6", "--out", str(tmp_path), "--json").stdout)
    assert a["workload"]["generated_token_ids"] == b["workload"]["generated_token_ids"]
    assert a["profile"]["digest"] == b["profile"]["digest"]


def test_run_table_output(tmp_path):
    res = invoke("run", "llama-tiny", "--repeats", "1", "--max-new-tokens", "4", "--out", str(tmp_path), "--region", "FRA")
    assert res.exit_code == 0, res.output
    assert "J/token" in res.stdout and "decode" in res.stdout
    assert "wrote" in res.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "no-such-profile"], "no built-in profile"),
        (["run", "missing/file.toml"], "not found"),
        (["run", "llama-tiny", "--backend", "quantum"], "quantum"),
        (["run", "llama-tiny", "--meter", "nosuchmeter"], "nosuchmeter"),
        (["run", "llama-tiny", "--region", "ATLANTIS"], "ATLANTIS"),
    ],
)
def test_run_bad_input_exit_2(tmp_path, args, needle):
    res = invoke(*args, "--out", str(tmp_path / "o"))
    assert_clean_error(res, 2, needle)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_run_unwritable_out(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    res = invoke("run", "llama-tiny", "--out", str(f / "sub"))
    assert_clean_error(res, 2, "--out")


def test_run_malformed_profile(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('name = "bad"\n[model]\nkind = "synthetic-llama"\nlayers = "two"\n')
    res = invoke("run", str(p), "--out", str(tmp_path / "o"))
    assert_clean_error(res, 2, f"{p}:4")


@pytest.mark.parametrize("env_name,value", [("GREENBENCH_REGION", "NOPE"), ("GREENBENCH_PUE", "0.5")])
def test_bad_carbon_settings_fail_before_the_benchmark(tmp_path, monkeypatch, env_name, value):
    monkeypatch.setenv(env_name, value)
    res = invoke("run", "llama-tiny", "--out", str(tmp_path / "o"))
    assert_clean_error(res, 2)
    assert "repeat" not in res.output  # nothing ran


def test_meter_option_with_simulated_backend_is_refused(tmp_path):
    res = invoke("run", "llama-tiny", "--backend", "neuromorphic-sim", "--meter", "estimate", "--out", str(tmp_path))
    assert_clean_error(res, 2, "--meter")


def test_idle_must_be_finite(tmp_path):
    res = invoke("run", "llama-tiny", "--idle", "inf", "--out", str(tmp_path))
    assert_clean_error(res, 2, "idle_s")
