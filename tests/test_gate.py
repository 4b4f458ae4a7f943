"""CI gates: like work only, size AND significance (Holm-adjusted), honest about too few repeats, CI outputs."""

from __future__ import annotations

import copy
import json
import random
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from greenbench import gate, stats
from greenbench import profile as P
from greenbench.cli import app
from greenbench.gate import GateRefusal, Run
from greenbench.metrics import DEFAULT_METRICS

from fakes import FakeBackend, StepMeter

runner = CliRunner()


@pytest.fixture(scope="module")
def real():
    """A real result document of llama-tiny's work (fake meter and session keep it fast)."""
    from greenbench.runner import run_profile

    p = P.load("llama-tiny").with_overrides(repeats=5, warmup=0, region="FRA")
    return run_profile(p, meters=[StepMeter()], backend=FakeBackend(), measure_bandwidth=False)


def synth(doc, scale=1.0, noise=0.01, n=5, seed=0, metrics=None):
    """``doc`` with every gated metric's samples redrawn: median x scale (worse for lower-is-better), relative noise."""
    d = copy.deepcopy(doc)
    rng = random.Random(seed)
    for metric in metrics or DEFAULT_METRICS["inference"]:
        direction = gate.METRICS[metric][0]
        base = {"decode.j_per_token": 1e-3, "decode.tokens_per_s": 1e4, "prefill.j_per_token": 2e-4,
                "ttft_s": 3e-4}[metric]
        center = base * scale if direction == "lower" else base / scale
        vals = [center * (1 + rng.gauss(0, noise)) for _ in range(n)]
        parent, _, leaf = metric.rpartition(".")
        target = d["metrics"][parent] if parent else d["metrics"]
        target[f"{leaf}_samples"] = vals
    return d


def verdicts(report):
    return {c["metric"]: c["verdict"] for c in report["checks"]}


def write(tmp_path, name, doc):
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return str(p)


# -- the synthetic pairs -----------------------------------------------------------------------
def test_identical_passes(real, tmp_path):
    b = write(tmp_path, "b.json", synth(real, seed=1))
    res = runner.invoke(app, ["gate", b, b])
    assert res.exit_code == 0, res.output
    assert "PASS" in res.output


def test_ten_percent_worse_with_one_percent_noise_fails(real, tmp_path):
    base = synth(real, seed=1)
    b = write(tmp_path, "b.json", base)
    c = write(tmp_path, "c.json", synth(base, 1.10, 0.01, seed=2, metrics=["decode.j_per_token"]))
    res = runner.invoke(app, ["gate", b, c, "--json"])
    assert res.exit_code == 1, res.output
    r = json.loads(res.stdout)
    assert r["regressions"] == ["decode.j_per_token"]
    check = next(x for x in r["checks"] if x["metric"] == "decode.j_per_token")
    assert check["change_pct"] == pytest.approx(10, abs=3) and check["p_adjusted"] < 0.05


def test_noisy_change_is_inconclusive_and_strict_fails_it(real, tmp_path):
    b = write(tmp_path, "b.json", synth(real, 1.0, 0.30, seed=3, metrics=["decode.j_per_token"]))
    c = write(tmp_path, "c.json", synth(real, 1.10, 0.30, seed=4, metrics=["decode.j_per_token"]))
    res = runner.invoke(app, ["gate", b, c, "--check", "decode.j_per_token:5%", "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    chk = r["checks"][0]
    assert chk["verdict"] == "inconclusive" and chk["needed_per_side"] > 5 and "per side would decide" in chk["note"]
    assert runner.invoke(app, ["gate", b, c, "--check", "decode.j_per_token:5%", "--strict"]).exit_code == 1


def test_small_change_within_threshold_passes(real, tmp_path):
    b = write(tmp_path, "b.json", synth(real, 1.0, 0.003, seed=5))
    c = write(tmp_path, "c.json", synth(real, 1.03, 0.003, seed=6))
    res = runner.invoke(app, ["gate", b, c, "--json"])
    assert res.exit_code == 0, res.output
    assert set(verdicts(json.loads(res.stdout)).values()) == {"no change"}


def test_different_work_or_tokens_is_exit_2(real, tmp_path):
    b = write(tmp_path, "b.json", real)
    other = copy.deepcopy(real)
    other["workload"]["identity"]["max_new_tokens"] = 64
    from greenbench.workloads.identity import digest

    other["workload"]["digest"] = digest(other["workload"]["identity"])
    res = runner.invoke(app, ["gate", b, write(tmp_path, "c.json", other)])
    assert res.exit_code == 2 and "different work" in res.output and "max_new_tokens: 32 vs 64" in res.output
    toks = copy.deepcopy(real)
    toks["workload"]["generated_token_ids"] = [9, 9, 9]
    res = runner.invoke(app, ["gate", b, write(tmp_path, "t.json", toks)])
    assert res.exit_code == 2 and "generated different tokens" in res.output


def test_counter_vs_estimate_is_exit_2_unless_speed_only(real, tmp_path):
    est = copy.deepcopy(real)
    est["energy"]["method"] = "estimate"
    b, c = write(tmp_path, "b.json", real), write(tmp_path, "c.json", est)
    res = runner.invoke(app, ["gate", b, c])
    assert res.exit_code == 2 and "not comparable" in res.output and "--allow-mixed-methods" in res.output
    res = runner.invoke(app, ["gate", b, c, "--allow-mixed-methods", "--json"])
    assert res.exit_code == 0, res.output
    v = verdicts(json.loads(res.stdout))
    assert v["decode.j_per_token"] == "skipped" and v["prefill.j_per_token"] == "skipped"
    assert v["decode.tokens_per_s"] != "skipped"


def test_different_hardware_is_exit_2_unless_allowed(real, tmp_path):
    other = copy.deepcopy(real)
    other["environment"]["cpu_model"] = "Some Other CPU"
    b, c = write(tmp_path, "b.json", real), write(tmp_path, "c.json", other)
    res = runner.invoke(app, ["gate", b, c])
    assert res.exit_code == 2 and "different hardware" in res.output
    assert runner.invoke(app, ["gate", b, c, "--allow-different-hardware"]).exit_code == 0


@pytest.mark.parametrize("args, named", [
    (["--max-regression", "nan"], "--max-regression"),
    (["--max-regression", "inf"], "--max-regression"),
    (["--max-regression", "-1"], "--max-regression"),
    (["--alpha", "nan"], "--alpha"),
    (["--alpha", "0"], "--alpha"),
    (["--check", "decode.j_per_token:nan%"], "--check"),
    (["--check", "decode.j_per_tokn:5%"], "did you mean"),
])
def test_bad_numbers_are_exit_2_with_json_too(real, tmp_path, args, named):
    b = write(tmp_path, "b.json", real)
    for extra in ([], ["--json"]):
        res = runner.invoke(app, ["gate", b, b, *args, *extra])
        assert res.exit_code == 2 and named in res.output and "Traceback" not in res.output, res.output


def test_non_finite_samples_name_their_json_path(real, tmp_path):
    b = write(tmp_path, "b.json", real)
    bad = json.dumps(real).replace('"j_per_token_samples": [', '"j_per_token_samples": [NaN, ', 1)
    (tmp_path / "c.json").write_text(bad)
    res = runner.invoke(app, ["gate", b, str(tmp_path / "c.json"), "--json"])
    assert res.exit_code == 2 and "j_per_token_samples[0]" in res.output and "Traceback" not in res.output


def test_older_results_without_a_work_digest_are_refused(real, tmp_path):
    old = copy.deepcopy(real)
    del old["workload"]["digest"]
    res = runner.invoke(app, ["gate", write(tmp_path, "o.json", old), write(tmp_path, "n.json", real)])
    assert res.exit_code == 2 and "workload.digest" in res.output


# -- deciding honestly -------------------------------------------------------------------------------
def test_false_fail_rate_and_power_by_simulation(real):
    """1,000 A/A pairs at 5 repeats and 3% noise fail < 1%; a true +10% at 7 repeats is found >= 95%."""
    rng = random.Random(1234)
    fails = 0
    for i in range(1000):
        a = synth(real, 1.0, 0.03, n=5, seed=rng.randrange(1 << 30))
        b = synth(real, 1.0, 0.03, n=5, seed=rng.randrange(1 << 30))
        fails += not gate.compare(a, b)["passed"]
    assert fails / 1000 < 0.01
    found = 0
    for i in range(200):
        a = synth(real, 1.0, 0.03, n=7, seed=rng.randrange(1 << 30))
        b = synth(real, 1.0, 0.03, n=7, seed=rng.randrange(1 << 30))
        b = synth(b, 1.10, 0.03, n=7, seed=rng.randrange(1 << 30), metrics=["decode.j_per_token"])
        found += "decode.j_per_token" in gate.compare(a, b)["regressions"]
    assert found / 200 >= 0.95


def test_holm_adjusted_p_values_are_reported(real):
    a = synth(real, 1.0, 0.01, seed=7)
    b = synth(real, 1.2, 0.01, seed=8)
    r = gate.compare(a, b)
    raw = [c["p_value"] for c in r["checks"]]
    assert [c["p_adjusted"] for c in r["checks"]] == pytest.approx(stats.holm_adjust(raw))
    assert "Holm-Bonferroni over 4" in r["multiple_testing"]


def test_several_runs_per_side_use_run_medians(real, tmp_path):
    for n_runs, test in ((3, "welch t (run medians)"), (5, "mann-whitney (run medians)")):
        bdir, cdir = tmp_path / f"b{n_runs}", tmp_path / f"c{n_runs}"
        bdir.mkdir()
        cdir.mkdir()
        for i in range(n_runs):
            base = synth(real, 1.0, 0.01, seed=100 + i)
            write(bdir, f"r{i}.json", base)
            write(cdir, f"r{i}.json", synth(base, 1.3, 0.01, seed=200 + i, metrics=["decode.j_per_token"]))
        res = runner.invoke(app, ["gate", "--baseline", str(bdir), "--candidate", str(cdir), "--json"])
        r = json.loads(res.stdout)
        chk = next(c for c in r["checks"] if c["metric"] == "decode.j_per_token")
        assert chk["test"] == test and chk["n_baseline"] == n_runs
        assert "run medians" in r["noise"]
        assert chk["verdict"] == "regression" and res.exit_code == 1
    one = gate.compare(real, real)
    assert "only within-run noise" in one["noise"]


def test_a_signed_copy_beside_its_result_counts_once(real, tmp_path):
    d = tmp_path / "runs"
    d.mkdir()
    write(d, "a.json", synth(real, seed=1))
    runs = gate.collect_runs([str(d), str(d / "a.json")], "baseline")
    assert len(runs) == 1


def test_per_metric_checks_and_the_profiles_gate_table(real, tmp_path):
    b = synth(real, 1.0, 0.01, seed=1)
    c = synth(real, 1.08, 0.01, seed=2)
    r = gate.compare_runs([Run("b", b)], [Run("c", c)], thresholds={"decode.j_per_token": 10.0, "ttft_s": 5.0})
    assert [x["metric"] for x in r["checks"]] == ["decode.j_per_token", "ttft_s"]
    assert verdicts(r) == {"decode.j_per_token": "no change", "ttft_s": "regression"}
    c["profile"]["resolved"]["gate"] = {"decode.j_per_token": 10.0}
    r = gate.compare(b, c)
    assert [x["metric"] for x in r["checks"]] == ["decode.j_per_token"] and "[gate]" in r["thresholds_from"]
    prof = P.loads('name = "g"\n[model]\nkind = "synthetic-llama"\n[gate]\n"decode.j_per_token" = "5%"\nttft_s = 10\n')
    assert prof.gate == (("decode.j_per_token", 5.0), ("ttft_s", 10.0))
    with pytest.raises(Exception, match="percentage"):
        P.loads('name = "g"\n[model]\nkind = "synthetic-llama"\n[gate]\nttft_s = "nan%"\n')


def test_contention_is_flagged_in_the_report(real):
    busy = copy.deepcopy(real)
    busy["environment"]["contention"] = {"flagged": True, "other_cpu_fraction": 0.4}
    r = gate.compare(real, busy)
    assert any("busy machine" in f and "40%" in f for f in r["flags"])


# -- CI outputs -----------------------------------------------------------------------------------------
def test_junit_markdown_gab_and_github_annotations(real, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    base = synth(real, 1.0, 0.01, seed=1)
    b = write(tmp_path, "b.json", base)
    c = write(tmp_path, "c.json", synth(base, 1.2, 0.01, seed=2, metrics=["decode.j_per_token"]))
    junit, gab = tmp_path / "gate.xml", tmp_path / "gab.json"
    res = runner.invoke(app, ["gate", b, c, "--junit", str(junit), "--export-gab", str(gab)])
    assert res.exit_code == 1
    assert "::error title=greenbench gate::decode.j_per_token worse by" in res.output
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite" and suite.get("tests") == "4" and suite.get("failures") == "1"
    failed = [tc.get("name") for tc in suite.iter("testcase") if tc.find("failure") is not None]
    assert failed == ["decode.j_per_token"]
    md = summary.read_text()
    assert md.startswith("earlier step\n") and "greenbench gate: FAIL" in md
    for metric in DEFAULT_METRICS["inference"]:
        assert f"`{metric}`" in md
    smaller = json.loads(gab.read_text())
    bigger = json.loads((tmp_path / "gab-bigger.json").read_text())
    assert {e["name"] for e in smaller} == {"decode.j_per_token", "prefill.j_per_token", "ttft_s"}
    assert [e["name"] for e in bigger] == ["decode.tokens_per_s"] and all("value" in e and "unit" in e for e in bigger)


def test_piped_table_keeps_metric_names_and_verdicts_whole(real, tmp_path, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    b = write(tmp_path, "b.json", synth(real, 1.0, 0.30, seed=3))
    c = write(tmp_path, "c.json", synth(real, 1.15, 0.30, seed=4))
    res = runner.invoke(app, ["gate", b, c])
    for metric in DEFAULT_METRICS["inference"]:
        assert metric in res.stdout
    assert "…" not in res.stdout


def test_mixed_workload_kinds_refused(real):
    train = copy.deepcopy(real)
    train["workload"]["kind"] = "training"
    with pytest.raises(GateRefusal, match="cannot compare workload kinds 'inference' and 'training'"):
        gate.compare(real, train)


def test_nothing_to_compare_is_exit_2(real, tmp_path):
    empty = copy.deepcopy(real)
    for ph in ("prefill", "decode"):
        empty["metrics"][ph]["j_per_token_samples"] = []
        empty["metrics"][ph]["tokens_per_s_samples"] = []
    empty["metrics"]["ttft_s_samples"] = []
    res = runner.invoke(app, ["gate", write(tmp_path, "b.json", real), write(tmp_path, "e.json", empty)])
    assert res.exit_code == 2 and "nothing to compare" in res.output


# -- review findings ------------------------------------------------------------------------------------
def test_several_runs_per_side_absorb_run_to_run_drift(real):
    """Identical code, 3 runs per side, 3% drift between runs and 1% noise within: false fails stay rare."""
    rng = random.Random(99)

    def runs():
        out = []
        for _ in range(3):
            drift = 1 + rng.gauss(0, 0.03)
            out.append(Run("r", synth(real, drift, 0.01, n=5, seed=rng.randrange(1 << 30))))
        return out

    fails = sum(not gate.compare_runs(runs(), runs())["passed"] for _ in range(300))
    assert fails / 300 < 0.05


@pytest.mark.parametrize("path, value", [
    ("workload.kind", ["inference"]),
    ("energy.method", ["counter"]),
    ("workload.generated_token_ids", [[1], [2]]),
    ("environment.contention", {"other_cpu_fraction": "lots"}),
])
def test_malformed_fields_are_exit_2_naming_the_path(real, tmp_path, path, value):
    bad = copy.deepcopy(real)
    head, _, leaf = path.rpartition(".")
    target = bad
    for part in head.split("."):
        target = target.setdefault(part, {})
    target[leaf] = value
    res = runner.invoke(app, ["gate", write(tmp_path, "b.json", real), write(tmp_path, "c.json", bad)])
    assert res.exit_code == 2 and path in res.output and "Traceback" not in res.output, res.output


def test_negative_and_huge_samples(real, tmp_path):
    neg = synth(real, seed=1)
    neg["metrics"]["decode"]["j_per_token_samples"][0] = -1.0
    res = runner.invoke(app, ["gate", write(tmp_path, "b.json", real), write(tmp_path, "n.json", neg)])
    assert res.exit_code == 2 and "j_per_token_samples[0]" in res.output
    huge = synth(real, seed=1)
    huge["metrics"]["decode"]["j_per_token_samples"] = [1e308, 1e308, 5e307, 1e308, 1e308]
    res = runner.invoke(app, ["gate", write(tmp_path, "b.json", real), write(tmp_path, "h.json", huge)])
    assert res.exit_code in (0, 1) and "Traceback" not in res.output


def test_check_grammar_is_strict(real, tmp_path):
    b = write(tmp_path, "b.json", real)
    for args in (["--check", "ttft_s:5%%"], ["--check", "ttft_s:5%", "--check", "ttft_s:10%"]):
        res = runner.invoke(app, ["gate", b, b, *args])
        assert res.exit_code == 2, args


def test_an_unwritable_step_summary_warns_instead_of_crashing(real, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "missing-dir" / "summary.md"))
    b = write(tmp_path, "b.json", real)
    res = runner.invoke(app, ["gate", b, b])
    assert res.exit_code == 0 and "cannot append the summary" in res.output
    res = runner.invoke(app, ["gate", b, b, "--junit", str(tmp_path / "b.json" / "x.xml")])  # under a file
    assert res.exit_code == 2 and "--junit" in res.output


def test_different_scopes_are_not_compared_on_energy(real, tmp_path):
    machine = copy.deepcopy(real)
    machine["energy"]["scope"]["kind"] = "machine"
    b, c = write(tmp_path, "b.json", real), write(tmp_path, "c.json", machine)
    res = runner.invoke(app, ["gate", b, c])
    assert res.exit_code == 2 and "scope" in res.output
    assert runner.invoke(app, ["gate", b, c, "--allow-mixed-methods"]).exit_code == 0
