"""show, compare, config, measure --runs, track, completion, and warnings printed once."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

import greenbench
from greenbench.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def two_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    paths = []
    for threads in ("1", "2"):
        res = runner.invoke(app, ["run", "llama-tiny", "--repeats", "3", "--warmup", "0", "--region", "FRA",
                                  "--threads", threads, "--out", str(out / threads), "--json"])
        assert res.exit_code == 0, res.output
        paths.append(next((out / threads).glob("*.json")))
    return paths


def test_show_renders_a_result_file_an_envelope_and_a_cid(two_results, tmp_path):
    a = two_results[0]
    res = runner.invoke(app, ["show", str(a)])
    assert res.exit_code == 0, res.output
    for text in ("prefill", "decode", "Energy by meter", "Measurement windows", "Provenance", "work digest",
                 "not signed", "Carbon"):
        assert text in res.stdout, text
    assert runner.invoke(app, ["sign", str(a)]).exit_code == 0
    env = a.with_suffix(".dsse.json")
    res = runner.invoke(app, ["show", str(env)])
    assert res.exit_code == 0 and "did:key:z6Mk" in res.stdout
    store = tmp_path / "store"
    pub = runner.invoke(app, ["publish", str(a), "--store", str(store)])
    assert pub.exit_code == 0, pub.output
    cid = pub.stdout.strip().split()[-1]
    res = runner.invoke(app, ["show", cid, "--store", str(store), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["workload"]["digest"] == json.loads(a.read_text())["workload"]["digest"]
    bad = runner.invoke(app, ["show", "not-a-file-or-cid"])
    assert bad.exit_code == 2 and "neither a file nor a CID" in bad.output


def test_compare_gives_ratios_with_uncertainty(two_results):
    a, b = map(str, two_results)
    res = runner.invoke(app, ["compare", a, b, "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    dec = next(m for m in rep["metrics"] if m["metric"] == "decode.tokens_per_s")
    ref, other = dec["rows"]
    assert ref["ratio"] == 1.0 and other["ratio"] == pytest.approx(other["median"] / ref["median"])
    assert other["ratio_sd"] >= 0 and ("times more throughput" in other["sentence"] or "times less" in other["sentence"])
    text = runner.invoke(app, ["compare", a, b])
    assert text.exit_code == 0 and "verdict" not in text.stdout.lower()
    md = runner.invoke(app, ["compare", a, b, "--markdown"]).stdout
    assert md.startswith("| metric |") and "`decode.j_per_token`" in md
    csv_out = runner.invoke(app, ["compare", a, b, "--csv"]).stdout
    assert csv_out.splitlines()[0] == "metric,unit,result,median,sd,n,ratio,ratio_sd"
    assert runner.invoke(app, ["compare", a]).exit_code == 2


def test_config_show_path_and_unknown_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENBENCH_CONFIG_DIR", str(tmp_path))
    res = runner.invoke(app, ["config", "path"])
    assert res.stdout.strip() == str(tmp_path / "config.toml")
    (tmp_path / "config.toml").write_text('region = "FRA"\npue = 1.2\n')
    monkeypatch.setenv("GREENBENCH_PUE", "1.5")
    rows = {r["key"]: r for r in json.loads(runner.invoke(app, ["config", "show", "--json"]).stdout)}
    assert rows["region"]["value"] == "FRA" and "config.toml" in rows["region"]["origin"]
    assert rows["pue"]["value"] == "1.5" and rows["pue"]["origin"] == "environment variable GREENBENCH_PUE"
    assert rows["trust"]["value"] is None and "local signing key" in rows["trust"]["origin"]
    (tmp_path / "config.toml").write_text('regoin = "FRA"\n')
    for args in (["config", "show"], ["carbon", "--joules", "10"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and "did you mean 'region'" in res.output and "Traceback" not in res.output
    (tmp_path / "config.toml").write_text("pue = nan\n")
    assert runner.invoke(app, ["config", "show"]).exit_code == 2


def test_measure_runs_reports_median_and_spread_and_is_gateable(tmp_path):
    cmd = [sys.executable, "-c", "sum(range(200000))"]
    res = runner.invoke(app, ["measure", "--runs", "3", "--warmup", "1", "--tokens", "4", "--region", "FRA", "--json",
                              "--", *cmd])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    b = doc["metrics"]["block"]
    assert doc["workload"]["kind"] == "measure" and b["rounds"] == 3 and len(b["duration_s_samples"]) == 3
    assert doc["workload"]["identity"]["command"] == cmd
    f = tmp_path / "m.json"
    f.write_text(res.stdout)
    gate = runner.invoke(app, ["gate", str(f), str(f)])
    assert gate.exit_code == 0, gate.output
    text = runner.invoke(app, ["measure", "--runs", "2", "--region", "FRA", "--", *cmd])
    assert "Time   (median ± IQR)" in text.stdout
    fail = runner.invoke(app, ["measure", "--runs", "3", "--region", "FRA", "--", sys.executable, "-c", "raise SystemExit(3)"])
    assert fail.exit_code == 3


def test_track_decorator_measures_every_call():
    @greenbench.track(tokens=len, region="FRA")
    def generate(n):
        return list(range(n))

    generate(5)
    generate(7)
    assert [m["tokens"] for m in generate.measurements] == [5, 7]
    assert generate.__name__ == "generate"

    @greenbench.track
    def bare():
        return 1

    assert bare() == 1 and len(bare.measurements) == 1 and bare.measurements[0]["tokens"] is None

    @greenbench.track(region="FRA")
    def boom():
        raise ValueError("x")

    with pytest.raises(ValueError):
        boom()
    assert boom.measurements[0]["partial"] is True


def test_completion_scripts_for_bash_zsh_and_fish():
    from typer.completion import get_completion_script

    for shell in ("bash", "zsh", "fish"):
        script = get_completion_script(prog_name="greenbench", complete_var="_GREENBENCH_COMPLETE", shell=shell)
        assert "_GREENBENCH_COMPLETE" in script
    res = runner.invoke(app, ["--help"])
    assert "--install-completion" in res.stdout and "--show-completion" in res.stdout


def test_each_warning_once_and_quiet(tmp_path):
    res = runner.invoke(app, ["run", "llama-tiny", "--repeats", "1", "--warmup", "0", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("warning:")]
    assert len(lines) == len(set(lines)) and any("ESTIMATED" in line for line in lines)
    q = runner.invoke(app, ["measure", "-q", "--region", "FRA", "--", sys.executable, "-c", "pass"])
    assert q.exit_code == 0 and "warning" not in q.output


def test_ctrl_c_before_the_first_measured_repeat_writes_nothing(tmp_path, monkeypatch):
    import greenbench.backends as backends
    import greenbench.meters as meters
    from fakes import FakeBackend, FakeSession, StepMeter

    monkeypatch.setattr(meters, "select", lambda *a, **k: ([StepMeter()], []))  # one prefill per repeat
    monkeypatch.setattr(backends, "get_backend", lambda name: FakeBackend(FakeSession(interrupt_at_prefill=2)))
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", "llama-tiny", "--warmup", "1", "--repeats", "3", "--region", "FRA", "--out", str(out)])
    assert res.exit_code == 130 and "nothing was written" in res.output
    assert not list(out.glob("*.json"))
    monkeypatch.setattr(backends, "get_backend", lambda name: FakeBackend(FakeSession(interrupt_at_prefill=3)))
    res = runner.invoke(app, ["run", "llama-tiny", "--warmup", "1", "--repeats", "3", "--region", "FRA", "--out", str(out)])
    assert res.exit_code == 130 and len(list(out.glob("*-partial.json"))) == 1


@pytest.mark.parametrize("columns", ["80", None])
def test_profiles_names_whole_at_80_columns_and_in_pipes(columns, monkeypatch):
    from greenbench import profile as P

    if columns:
        monkeypatch.setenv("COLUMNS", columns)
    else:
        monkeypatch.delenv("COLUMNS", raising=False)
    res = runner.invoke(app, ["profiles"])
    assert res.exit_code == 0
    for name in P.builtin_names():
        assert name in res.stdout
    assert "…" not in res.stdout


def test_run_quiet_prints_the_result_only(tmp_path):
    res = runner.invoke(app, ["run", "llama-tiny", "-q", "--repeats", "1", "--warmup", "0", "--out", str(tmp_path)])
    assert res.exit_code == 0 and "warning" not in res.output and "J/token" in res.stdout


def test_show_and_compare_refuse_a_directory(two_results):
    d = str(two_results[0].parent)
    for args in (["show", d], ["compare", d, str(two_results[1])]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and "is a directory" in res.output and "Traceback" not in res.output


def test_config_region_must_be_finite(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENBENCH_CONFIG_DIR", str(tmp_path))
    for value in ("nan", "inf"):
        (tmp_path / "config.toml").write_text(f"region = {value}\n")
        res = runner.invoke(app, ["config", "show", "--json"])
        assert res.exit_code == 2 and "Traceback" not in res.output


def test_measure_runs_refuses_idle_and_keeps_runs_on_ctrl_c(monkeypatch):
    res = runner.invoke(app, ["measure", "--runs", "2", "--idle", "1", "--", sys.executable, "-c", "pass"])
    assert res.exit_code == 2 and "--idle" in res.output
    import greenbench.measurement as m

    real_run = m.run_command
    calls = []

    def interrupted_after_two(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run(*a, **k)

    monkeypatch.setattr(m, "run_command", interrupted_after_two)
    doc = m.run_command_repeated([sys.executable, "-c", "pass"], runs=5, region="FRA")
    assert doc["partial"] and doc["exit_code"] == 130 and doc["metrics"]["block"]["rounds"] == 2
