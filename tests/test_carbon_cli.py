"""`greenbench carbon` through typer's CliRunner: exit codes 0/2, --json, result files, scenarios."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import greenbench.carbon as carbon
from greenbench.cli import app


def invoke(*args: str):
    res = CliRunner().invoke(app, ["carbon", *args])
    assert "Traceback" not in (res.stderr or "") and "Traceback" not in res.stdout, res.stdout + (res.stderr or "")
    return res


def result_doc(**carbon_block) -> dict:
    """A complete result document (every CONTRACT path) with 3 repeats of 64 new tokens and 7.2 kJ."""
    return {
        "schema": "greenbench.result/1",
        "profile": {"name": "llama-tiny", "digest": "sha256:00"},
        "backend": "cpu",
        "workload": {"kind": "inference", "prompt_tokens": 8, "new_tokens": 64, "generated_token_ids": [1, 2]},
        "metrics": {
            "ttft_s": 0.01,
            "prefill": {"j_per_token": 0.5},
            "decode": {
                "j_per_token": 30.0,
                "tokens_per_s": 40.0,
                "j_per_token_samples": [30.0, 31.0, 29.0],
                "tokens_per_s_samples": [40.0, 41.0, 39.0],
            },
        },
        "energy": {
            "method": "estimate",
            "total_j": 7200.0,
            "meters": [{"name": "estimate", "domain": "cpu", "method": "estimate", "joules": 7200.0}],
        },
        "carbon": {"region": "FRA", "intensity_g_per_kwh": 56.0, "g_co2e": 0.1, "g_co2e_per_1k_tokens": 0.5, **carbon_block},
        "environment": {"greenbench_version": "0", "cpu_model": "test"},
    }


def write(tmp_path, doc, name="r.json"):
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return str(p)


def test_joules_region_json():
    res = invoke("--joules", "3600000", "--region", "FR", "--tokens", "1000", "--json")
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    fra = carbon.resolve_region("FRA").intensity_g_per_kwh
    assert doc["region"] == "FRA"
    assert doc["g_co2e"] == pytest.approx(fra)
    assert doc["g_co2e_per_1k_tokens"] == pytest.approx(fra)
    assert doc["kwh_per_million_tokens"] == pytest.approx(1000.0)
    assert doc["intensity_source"]["file"].endswith("global_energy_mix.json")
    assert doc["energy_method"] == "given"
    assert "scenarios" not in doc


@pytest.mark.parametrize("region", ["US-CA", "usa:california", "gcp:europe-west1", "420"])
def test_region_spellings_table(region):
    res = invoke("--joules", "3600", "--region", region)
    assert res.exit_code == 0
    assert "CO2e" in res.stdout
    assert carbon.resolve_region(region).code in res.stdout


def test_world_average_warning_on_stderr_and_json_stays_clean():
    res = invoke("--joules", "3600", "--json")
    assert res.exit_code == 0
    doc = json.loads(res.stdout)  # stdout is only JSON
    assert doc["default_region_used"] is True
    assert "WORLD AVERAGE" in res.stderr


def test_unknown_region_exit_2_with_close_names():
    res = invoke("--joules", "1", "--region", "Frnace")
    assert res.exit_code == 2
    assert "unknown region" in res.stderr and "FRA" in res.stderr
    assert res.stdout == ""


@pytest.mark.parametrize(
    "args,needle",
    [
        ([], "nothing to convert"),
        (["--joules", "-5", "--region", "FRA"], "joules"),
        (["--joules", "1", "--region", "FRA", "--pue", "0.5"], "PUE"),
        (["--joules", "1", "--mix", "solar=0.5"], "sum"),
        (["--joules", "1", "--region", "FRA", "--scenario", "fusion"], "unknown energy source"),
    ],
)
def test_bad_input_exit_2(args, needle):
    res = invoke(*args)
    assert res.exit_code == 2
    assert needle in res.stderr


def test_result_and_joules_are_exclusive(tmp_path):
    res = invoke(write(tmp_path, result_doc()), "--joules", "5")
    assert res.exit_code == 2
    assert "not both" in res.stderr


def test_missing_and_malformed_result_files(tmp_path):
    res = invoke(str(tmp_path / "nope.json"))
    assert res.exit_code == 2 and "not found" in res.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    res = invoke(str(bad))
    assert res.exit_code == 2 and "JSON" in res.stderr


def test_result_reattributed_with_its_region_and_tokens(tmp_path):
    path = write(tmp_path, result_doc())
    res = invoke(path, "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    fra = carbon.resolve_region("FRA").intensity_g_per_kwh
    assert doc["region"] == "FRA"
    assert doc["it_energy_j"] == 7200.0
    assert doc["energy_method"] == "estimate"
    assert doc["tokens"] == 64 * 3
    assert doc["g_co2e"] == pytest.approx(7200 / 3.6e6 * fra)
    assert doc["g_co2e_per_1k_tokens"] == pytest.approx(7200 / 3.6e6 * fra / 192 * 1000)
    # --region and --pue override the result's
    doc2 = json.loads(invoke(path, "--region", "SE1", "--pue", "1.5", "--json").stdout)
    assert doc2["region"] == "SE-SE1" and doc2["energy_j"] == pytest.approx(10800.0)


def test_result_scenarios_table_and_json(tmp_path):
    path = write(tmp_path, result_doc())
    res = invoke(path, "--scenario", "solar,wind,nuclear,hydro,gas,coal,grid:FRA", "--mix", "solar=0.6,wind=0.3,gas=0.1")
    assert res.exit_code == 0, res.stderr
    for name in ("solar", "wind", "nuclear", "hydro", "gas", "coal", "grid:FRA", "mix"):
        assert name in res.stdout
    assert "kWh per million tokens" in res.stdout
    res = invoke(path, "-s", "solar,coal", "-s", "grid", "--mix", "solar=0.6,wind=0.3,gas=0.1", "--json")
    doc = json.loads(res.stdout)
    names = [r["name"] for r in doc["scenarios"]]
    assert names[:3] == ["solar", "coal", "grid:FRA"] and names[3].startswith("mix(")
    kwh_per_mtok = 7200 / 3.6e6 / 192 * 1e6
    assert all(r["kwh_per_million_tokens"] == pytest.approx(kwh_per_mtok) for r in doc["scenarios"])
    coal = doc["scenarios"][1]
    assert coal["g_co2e_per_1k_tokens"] == pytest.approx(7200 / 3.6e6 * coal["intensity_g_per_kwh"] / 192 * 1000)


def test_result_without_configured_region_stays_loud(tmp_path):
    path = write(tmp_path, result_doc(region="WORLD", default_region_used=True))
    res = invoke(path, "--json")
    assert res.exit_code == 0
    assert json.loads(res.stdout)["default_region_used"] is True
    assert "WORLD AVERAGE" in res.stderr


def test_list_regions():
    res = invoke("--list-regions", "--json")
    assert res.exit_code == 0
    rows = json.loads(res.stdout)
    codes = {r["code"] for r in rows}
    assert {"FRA", "US-CA", "CA-ON", "SE-SE1", "gcp:europe-west1", "WORLD", "CN-BJ"} <= codes
    res = invoke("--list-regions")
    assert res.exit_code == 0 and "US-CA" in res.stdout


def test_tokens_override_on_a_result(tmp_path):
    doc = json.loads(invoke(write(tmp_path, result_doc()), "--tokens", "192", "--json").stdout)
    assert doc["tokens"] == 192 and doc["tokens_basis"] == "--tokens"
    doc = json.loads(invoke(write(tmp_path, result_doc()), "--json").stdout)
    assert doc["tokens_basis"].startswith("workload.new_tokens x 3")


def test_gas_scenario_is_the_ipcc_combined_cycle_median():
    # 3.6 MJ = 1 kWh; IPCC AR5 Table A.III.2, gas combined cycle: 490 g CO2e/kWh (lifecycle median)
    res = invoke("--joules", "3600000", "--region", "FRA", "--scenario", "gas", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    (gas,) = doc["scenarios"]
    assert gas["g_co2e"] == pytest.approx(490.0)
    assert gas["source"]["boundary"] == "lifecycle" and gas["source"]["year"] == 2014
    assert doc["intensity_source"]["boundary"] == "lifecycle" and isinstance(doc["intensity_source"]["year"], int)
    res = invoke("--joules", "3600000", "--region", "FRA", "--scenario", "gas")
    assert res.exit_code == 0 and "490" in res.stdout and "lifecycle" in res.stdout


def test_codecarbon_scenario_and_idle_subtracted_option():
    res = invoke("--joules", "3600000", "--region", "FRA", "--scenario", "codecarbon:gas",
                 "--idle-subtracted-joules", "1800000", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    (gas,) = doc["scenarios"]
    assert gas["source"]["boundary"] == "direct combustion"
    assert gas["idle_subtracted_g_co2e"] == pytest.approx(gas["intensity_g_per_kwh"] / 2)
    assert doc["idle_subtracted_energy_j"] == 1.8e6 and "marginal_g_co2e" not in doc
    # the old option name still works
    assert invoke("--joules", "3600", "--region", "FRA", "--marginal-joules", "1800").exit_code == 0
    res = invoke("--joules", "3600", "--region", "FRA", "--scenario", "oil")
    assert res.exit_code == 2 and "codecarbon:oil" in res.stderr
