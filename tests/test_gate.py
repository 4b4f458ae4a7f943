"""CI gates: a regression needs size AND significance."""

import copy
import json

import pytest
from typer.testing import CliRunner

from greenbench import gate
from greenbench.cli import app

from test_results import minimal_doc


def doc_with(jpt, tps):
    d = minimal_doc()
    d = copy.deepcopy(d)
    d["metrics"]["decode"]["j_per_token_samples"] = list(jpt)
    d["metrics"]["decode"]["tokens_per_s_samples"] = list(tps)
    return d


BASE = doc_with([1.00, 1.01, 0.99, 1.02, 0.98], [100, 101, 99, 102, 98])


def verdicts(report):
    return {c["metric"]: c["verdict"] for c in report["checks"]}


def test_significant_energy_regression_fails():
    cand = doc_with([1.20, 1.21, 1.19, 1.22, 1.18], [100, 101, 99, 102, 98])
    r = gate.compare(BASE, cand, max_regression_pct=5)
    assert verdicts(r)["decode.j_per_token"] == "regression"
    assert verdicts(r)["decode.tokens_per_s"] == "no change"
    assert r["regressions"] == ["decode.j_per_token"] and not r["passed"]
    c = next(c for c in r["checks"] if c["metric"] == "decode.j_per_token")
    assert c["change_pct"] == pytest.approx(20.0)


def test_small_change_passes_even_if_significant():
    cand = doc_with([1.03, 1.04, 1.02, 1.05, 1.035], [100, 101, 99, 102, 98])
    r = gate.compare(BASE, cand, max_regression_pct=5)
    assert verdicts(r)["decode.j_per_token"] == "no change" and r["passed"]


def test_large_but_noisy_change_is_inconclusive():
    cand = doc_with([0.5, 2.0, 0.9, 1.6, 1.4], [100, 101, 99, 102, 98])
    r = gate.compare(BASE, cand, max_regression_pct=5)
    assert verdicts(r)["decode.j_per_token"] == "inconclusive" and r["passed"]


def test_speed_regression_direction():
    cand = doc_with([1.00, 1.01, 0.99, 1.02, 0.98], [80, 81, 79, 82, 78])
    r = gate.compare(BASE, cand)
    assert verdicts(r)["decode.tokens_per_s"] == "regression"
    improved = gate.compare(cand, BASE)
    assert verdicts(improved)["decode.tokens_per_s"] == "improvement" and improved["passed"]


def test_cli_exit_codes(tmp_path):
    runner = CliRunner()
    b, good, bad = tmp_path / "b.json", tmp_path / "g.json", tmp_path / "x.json"
    b.write_text(json.dumps(BASE))
    good.write_text(json.dumps(BASE))
    bad.write_text(json.dumps(doc_with([1.3, 1.31, 1.29, 1.32, 1.28], [100, 101, 99, 102, 98])))
    assert runner.invoke(app, ["gate", str(b), str(good)]).exit_code == 0
    res = runner.invoke(app, ["gate", str(b), str(bad), "--json"])
    assert res.exit_code == 1
    assert json.loads(res.stdout)["regressions"] == ["decode.j_per_token"]
    res = runner.invoke(app, ["gate", str(b), str(bad), "--max-regression", "50"])
    assert res.exit_code == 0
    res = runner.invoke(app, ["gate", str(b), str(tmp_path / "missing.json")])
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_nothing_to_compare_is_exit_2(tmp_path):
    empty = doc_with([], [])
    with pytest.raises(Exception, match="nothing to compare"):
        gate.compare(BASE, empty)
    b, c = tmp_path / "b.json", tmp_path / "c.json"
    b.write_text(json.dumps(BASE))
    c.write_text(json.dumps(empty))
    res = CliRunner().invoke(app, ["gate", str(b), str(c)])
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_bad_samples_and_mixed_kinds_are_exit_2(tmp_path):
    bad = doc_with(["x"], [100])
    train = copy.deepcopy(BASE)
    train["workload"]["kind"] = "training"
    for other in (bad, train):
        b, c = tmp_path / "b.json", tmp_path / "c.json"
        b.write_text(json.dumps(BASE))
        c.write_text(json.dumps(other))
        res = CliRunner().invoke(app, ["gate", str(b), str(c)])
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output


def test_partial_results_are_flagged():
    cand = copy.deepcopy(BASE)
    cand["partial"], cand["partial_reason"] = True, "interrupted"
    assert any("partial" in w for w in gate.compare(BASE, cand)["warnings"])


def test_mixed_workload_kinds_refused():
    train = copy.deepcopy(BASE)
    train["workload"]["kind"] = "training"
    with pytest.raises(Exception, match="cannot compare workload kinds 'inference' and 'training'"):
        gate.compare(BASE, train)
