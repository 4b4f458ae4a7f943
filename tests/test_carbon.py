"""greenbench.carbon: region lookups against codecarbon's own files, arithmetic, defaults, errors, no network."""

from __future__ import annotations

import csv
import json
import math
import socket
import subprocess
import sys
from importlib.resources import files

import pytest

import greenbench.carbon as carbon
from greenbench.carbon import regions as regions_mod
from greenbench.errors import GreenbenchError

J_PER_KWH = 3_600_000.0


def cc_file(rel: str):
    """codecarbon's data file, located independently of greenbench (through importlib.resources)."""
    return files("codecarbon").joinpath(rel)


def cc_json(rel: str):
    return json.loads(cc_file(rel).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# lookups vs codecarbon's files, read here independently


@pytest.mark.parametrize("code,iso3", [("FRA", "FRA"), ("FR", "FRA"), ("fra", "FRA"), ("France", "FRA"), ("DE", "DEU"), ("IND", "IND"), ("BR", "BRA")])
def test_country_matches_global_energy_mix(code, iso3):
    mix = cc_json("data/private_infra/global_energy_mix.json")
    r = carbon.resolve_region(code)
    assert r.code == iso3
    assert r.intensity_g_per_kwh == mix[iso3]["carbon_intensity"]
    assert r.source["file"] == "data/private_infra/global_energy_mix.json"
    assert r.source["key"] == iso3
    assert r.source["year"] == mix[iso3]["year"]
    assert r.source["package_version"]


@pytest.mark.parametrize("code,state", [("US-CA", "california"), ("usa:california", "california"), ("us:tx", "texas"), ("US-NY", "new york"), ("usa:district_of_columbia", "district of columbia")])
def test_us_state_matches_egrid_file(code, state):
    usa = cc_json("data/private_infra/2023/usa_emissions.json")
    r = carbon.resolve_region(code)
    assert r.code == f"US-{usa[state]['regionCode']}"
    lbs_per_mwh = usa[state]["emissions"]
    # 1 lb = 453.59237 g; 1 MWh = 1000 kWh
    assert r.intensity_g_per_kwh == pytest.approx(lbs_per_mwh * 453.59237 / 1000, rel=1e-12)
    assert r.source["year"] == usa["_source"]["year"]
    assert r.source["unit_in_file"] == "lbs/MWh"


def test_canadian_province_from_mix_like_codecarbon():
    can = cc_json("data/private_infra/2023/canada_energy_mix.json")
    m = can["ontario"]
    expected = (m["coal"] * 995.725971 + m["petroleum"] * 816.6885263 + m["naturalGas"] * 743.8415916) / m["total"]
    r = carbon.resolve_region("CA-ON")
    assert r.code == "CA-ON"
    assert carbon.resolve_region("can:ontario") == r
    assert r.intensity_g_per_kwh == pytest.approx(expected, rel=1e-12)
    q = carbon.resolve_region("can:Québec")  # accents do not matter
    assert q.code == "CA-QC"


@pytest.mark.parametrize("code,zone", [("SE1", "SE1"), ("se-se3", "SE3"), ("swe:se4", "SE4"), ("NO-NO4", "NO4"), ("fin:fi", "FI")])
def test_nordic_zone_matches_file(code, zone):
    nordic = cc_json("data/private_infra/nordic_emissions.json")
    r = carbon.resolve_region(code)
    assert r.intensity_g_per_kwh == nordic["data"][zone]["emission_factor"]
    assert r.source["year"] == nordic["data"][zone]["year"]
    assert r.code.endswith(zone)


def test_plain_fi_is_the_country_not_the_bidding_zone():
    mix = cc_json("data/private_infra/global_energy_mix.json")
    r = carbon.resolve_region("FI")
    assert r.code == "FIN"
    assert r.intensity_g_per_kwh == mix["FIN"]["carbon_intensity"]


def test_cloud_regions_match_impact_csv():
    with cc_file("data/cloud/impact.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows
    for row in rows:
        r = carbon.resolve_region(f"{row['provider']}:{row['region']}")
        assert r.intensity_g_per_kwh == float(row["impact"])
        assert r.source["file"] == "data/cloud/impact.csv"


def test_china_province_and_world():
    china = cc_json("data/private_infra/2023/china_provincial_emissions.json")
    r = carbon.resolve_region("chn:beijing")
    assert r.code == "CN-BJ"
    assert r.intensity_g_per_kwh == china["data"]["CN-BJ"]["emission_factor"]
    per_source = cc_json("data/private_infra/carbon_intensity_per_source.json")
    w = carbon.resolve_region("world")
    assert (w.code, w.intensity_g_per_kwh) == ("WORLD", per_source["world_average"])
    assert w.source["reference"] == per_source["world_average_source"]


def test_georgia_the_country_and_georgia_the_state_differ():
    assert carbon.resolve_region("Georgia").code == "GEO"
    assert carbon.resolve_region("usa:georgia").code == "US-GA"


@pytest.mark.parametrize("text,value,code", [("350", 350.0, "350"), ("350g", 350.0, "350"), ("12.5 g/kWh", 12.5, "12.5"), ("0", 0.0, "0"), ("3.5e2", 350.0, "350")])
def test_number_regions(text, value, code):
    r = carbon.resolve_region(text)
    assert (r.code, r.intensity_g_per_kwh) == (code, value)
    assert r.source["dataset"] == "user"
    assert carbon.resolve_region(r.code) == r  # a result's region code resolves again


def test_every_canonical_code_resolves_to_itself():
    regs = carbon.all_regions()
    assert len(regs) > 250
    for r in regs:
        assert carbon.resolve_region(r.code) is r
        assert math.isfinite(r.intensity_g_per_kwh) and r.intensity_g_per_kwh >= 0


# ---------------------------------------------------------------------------------------------
# unknown regions


@pytest.mark.parametrize("bad,expect", [("Frnace", "FRA"), ("gcp:europe-wset1", "gcp:europe-west1"), ("US-CX", "US-")])
def test_unknown_region_names_closest(bad, expect):
    with pytest.raises(GreenbenchError) as ei:
        carbon.resolve_region(bad)
    err = ei.value
    assert err.exit_code == 2
    assert bad in err.message
    assert expect in err.hint


def test_unknown_region_without_close_match_and_aws():
    with pytest.raises(GreenbenchError) as ei:
        carbon.resolve_region("zzqx")
    assert "FRA" in ei.value.hint and "number" in ei.value.hint
    with pytest.raises(GreenbenchError) as ei:
        carbon.resolve_region("aws:us-east-1")
    assert "GCP" in ei.value.hint
    with pytest.raises(GreenbenchError):
        carbon.resolve_region("-5")
    with pytest.raises(GreenbenchError):
        carbon.resolve_region("  ")


# ---------------------------------------------------------------------------------------------
# attribution arithmetic and defaults


def test_attribute_arithmetic_pue_marginal_tokens():
    b = carbon.attribute(7.2e6, tokens=2000, region="100", pue=1.5, marginal_energy_j=3.6e6)
    # 7.2 MJ = 2 kWh IT -> 3 kWh facility at PUE 1.5 -> 300 g at 100 g/kWh
    assert b["it_energy_j"] == 7.2e6
    assert b["energy_j"] == pytest.approx(1.08e7)
    assert b["g_co2e"] == pytest.approx(300.0)
    assert b["g_co2e_per_1k_tokens"] == pytest.approx(150.0)
    assert b["kwh_per_million_tokens"] == pytest.approx(3.0 / 2000 * 1e6)
    assert b["idle_subtracted_g_co2e"] == pytest.approx(150.0)  # 1 kWh x 1.5 x 100
    assert b["idle_subtracted_energy_j"] == 3.6e6
    assert "marginal_g_co2e" not in b  # the old, misleading name is no longer written
    assert b["region"] == "100" and b["pue"] == 1.5
    assert b["default_region_used"] is False and b["warning"] is None
    json.dumps(b, allow_nan=False)  # JSON-ready


def test_attribute_nulls_without_tokens_or_marginal():
    b = carbon.attribute(3.6e6, region="FRA")
    assert b["g_co2e_per_1k_tokens"] is None
    assert b["kwh_per_million_tokens"] is None
    assert b["idle_subtracted_g_co2e"] is None
    assert b["g_co2e"] == pytest.approx(carbon.resolve_region("FRA").intensity_g_per_kwh)
    assert b["intensity_source"]["key"] == "FRA"
    assert b["pue"] == 1.0 and b["pue_origin"] == "default"


def test_world_average_is_loud_when_nothing_configured():
    b = carbon.attribute(3.6e6)
    assert b["region"] == "WORLD"
    assert b["default_region_used"] is True
    assert "WORLD AVERAGE" in b["warning"]
    assert b["g_co2e"] == pytest.approx(cc_json("data/private_infra/carbon_intensity_per_source.json")["world_average"])


def test_env_then_config_defaults(monkeypatch, tmp_path):
    from greenbench.fsutil import config_dir

    cfg = config_dir()
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "config.toml").write_text('region = "US-CA"\npue = 1.25\n')
    b = carbon.attribute(3.6e6)
    assert b["region"] == "US-CA" and "config.toml" in b["region_origin"]
    assert b["pue"] == 1.25 and b["default_region_used"] is False
    monkeypatch.setenv("GREENBENCH_REGION", "FR")
    monkeypatch.setenv("GREENBENCH_PUE", "1.1")
    b = carbon.attribute(3.6e6)
    assert (b["region"], b["pue"]) == ("FRA", 1.1)
    assert b["region_origin"] == "environment variable GREENBENCH_REGION"
    b = carbon.attribute(3.6e6, region="SE1", pue=1.0)  # arguments beat both
    assert (b["region"], b["pue"]) == ("SE-SE1", 1.0)


def test_bad_config_and_env_are_exit_2(monkeypatch):
    from greenbench.fsutil import config_dir

    cfg = config_dir()
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "config.toml").write_text('region = "FRA\n')
    with pytest.raises(GreenbenchError) as ei:
        carbon.attribute(1.0)
    assert "config.toml" in ei.value.message
    (cfg / "config.toml").write_text('region = "Atlantis"\n')
    with pytest.raises(GreenbenchError) as ei:
        carbon.attribute(1.0)
    assert "config.toml" in ei.value.message and "Atlantis" in ei.value.message
    (cfg / "config.toml").unlink()
    monkeypatch.setenv("GREENBENCH_PUE", "0.8")
    with pytest.raises(GreenbenchError) as ei:
        carbon.attribute(1.0, region="FRA")
    assert "GREENBENCH_PUE" in ei.value.message


@pytest.mark.parametrize("kwargs", [dict(energy_j=-1.0), dict(energy_j=float("nan")), dict(energy_j=1.0, pue=0.9), dict(energy_j=1.0, tokens=-3), dict(energy_j=1.0, marginal_energy_j=-2.0)])
def test_attribute_rejects_bad_inputs(kwargs):
    energy = kwargs.pop("energy_j")
    with pytest.raises(GreenbenchError):
        carbon.attribute(energy, region="FRA", **kwargs)


# ---------------------------------------------------------------------------------------------
# scenarios


# IPCC AR5 WG3 Annex III (Schlömer et al. 2014), Table A.III.2, lifecycle medians in g CO2e/kWh, typed
# from the table: the figures every plain source name must give.
AR5_MEDIANS = {
    "coal": 820, "gas": 490, "biomass-cofiring": 740, "biomass": 230, "solar": 48, "solar-utility": 48,
    "solar-rooftop": 41, "geothermal": 38, "csp": 27, "hydro": 24, "nuclear": 12, "wind-offshore": 12,
    "wind": 11, "wind-onshore": 11, "gas-cc": 490,
}


def test_plain_sources_are_ipcc_ar5_lifecycle_medians():
    names = list(AR5_MEDIANS) + ["grid:FRA", "ipcc:coal"]
    rows = carbon.scenarios(3.6e6, names, tokens=4000)
    by = {r["name"]: r for r in rows}
    assert list(by) == names
    for name, value in AR5_MEDIANS.items():
        r = by[name]
        assert r["intensity_g_per_kwh"] == value, name
        assert r["source"]["boundary"] == "lifecycle" and r["source"]["year"] == 2014
        assert "Table A.III.2" in r["source"]["reference"]
        assert r["g_co2e"] == pytest.approx(value)  # 1 kWh
        assert r["g_co2e_per_1k_tokens"] == pytest.approx(value / 4)
        assert r["kwh_per_million_tokens"] == pytest.approx(250.0)  # 1 kWh / 4000 tokens x 1e6
    assert by["grid:FRA"]["intensity_g_per_kwh"] == carbon.resolve_region("FRA").intensity_g_per_kwh
    assert by["ipcc:coal"]["intensity_g_per_kwh"] == 820.0


def test_codecarbon_prefix_gives_codecarbons_table_with_its_boundary():
    per_source = cc_json("data/private_infra/carbon_intensity_per_source.json")
    names = ["codecarbon:gas", "codecarbon:coal", "codecarbon:oil", "codecarbon:nuclear", "codecarbon:wind",
             "codecarbon:hydro", "codecarbon:solar"]
    keys = ["natural_gas", "coal", "petroleum", "nuclear", "wind", "hydroelectricity", "solar"]
    rows = carbon.scenarios(3.6e6, names)
    for r, name, key in zip(rows, names, keys):
        assert r["name"] == name
        assert r["intensity_g_per_kwh"] == per_source[key]
        assert r["source"]["reference"] == per_source[f"{key}_source"]
        fossil = key in ("natural_gas", "coal", "petroleum")
        assert r["source"]["boundary"] == ("direct combustion" if fossil else "lifecycle")
        assert isinstance(r["source"]["year"], int)


def test_plain_name_without_an_ipcc_figure_points_to_codecarbon():
    with pytest.raises(GreenbenchError) as ei:
        carbon.resolve_source("oil")
    assert "codecarbon:oil" in ei.value.hint and "direct combustion" in ei.value.hint


def test_every_region_states_boundary_and_year():
    for r in carbon.all_regions():
        assert r.source.get("boundary"), r.code
        assert "year" in r.source and (isinstance(r.source["year"], int) or r.source.get("year_note")), r.code
    assert carbon.resolve_region("FRA").source["boundary"] == "lifecycle"
    assert carbon.resolve_region("US-CA").source["boundary"] == "direct combustion"
    assert carbon.resolve_region("CN-BJ").source["boundary"].startswith("direct combustion")
    assert carbon.resolve_region("SE1").source["boundary"].startswith("mixed")
    assert carbon.resolve_region("350").source["boundary"].startswith("as given")


def test_idle_subtracted_energy_of_an_old_result_is_still_read():
    old = {"energy": {"total_j": 7.2e6}, "carbon": {"region": "100", "pue": 1.0, "marginal_energy_j": 3.6e6,
                                                     "marginal_g_co2e": 100.0}}
    assert carbon.inputs_from_result(old)["marginal_energy_j"] == 3.6e6
    block = carbon.attribute_result(old)
    assert block["idle_subtracted_g_co2e"] == pytest.approx(100.0)
    new = {"energy": {"total_j": 7.2e6}, "carbon": {"region": "100", "idle_subtracted_energy_j": 1.8e6}}
    assert carbon.inputs_from_result(new)["marginal_energy_j"] == 1.8e6


def test_mix_is_weighted_mean():
    mix = carbon.parse_mix("solar=0.6, wind=0.3, gas=0.1")
    assert mix == {"solar": 0.6, "wind": 0.3, "gas": 0.1}
    rows = carbon.scenarios(7.2e6, [], mix, tokens=1000, pue=1.2)
    assert len(rows) == 1
    expected = 0.6 * 48 + 0.3 * 11 + 0.1 * 490
    assert rows[0]["intensity_g_per_kwh"] == pytest.approx(expected)
    assert rows[0]["g_co2e"] == pytest.approx(2 * 1.2 * expected)
    assert [c["name"] for c in rows[0]["source"]["components"]] == ["solar", "wind", "gas"]
    assert rows[0]["source"]["boundary"] == "lifecycle"
    grid_mix = carbon.scenarios(3.6e6, [], {"grid:FRA": 0.5, "100": 0.5})
    assert grid_mix[0]["intensity_g_per_kwh"] == pytest.approx((carbon.resolve_region("FRA").intensity_g_per_kwh + 100) / 2)
    assert grid_mix[0]["source"]["boundary"].startswith("mixed (")


@pytest.mark.parametrize("spec", ["solar=0.6,wind=0.3", "solar=0.6,wind", "solar=x", "solar=-0.1,wind=1.1", "solar=0.5,solar=0.5", ""])
def test_bad_mix(spec):
    with pytest.raises(GreenbenchError):
        carbon.parse_mix(spec)


def test_unknown_source_lists_close_names():
    with pytest.raises(GreenbenchError) as ei:
        carbon.scenarios(1.0, ["solr"])
    assert "solar" in ei.value.hint


def test_scenarios_from_result_use_its_region_and_tokens():
    doc = {
        "energy": {"meters": [{"joules": 2.0e6, "in_total": True}, {"joules": 1.6e6}, {"joules": 5e5, "in_total": False}]},
        "workload": {"kind": "inference", "new_tokens": 100},
        "metrics": {"decode": {"j_per_token_samples": [1, 2, 3]}},
        "carbon": {"region": "US-CA", "pue": 1.0},
    }
    inp = carbon.inputs_from_result(doc)
    assert inp["energy_j"] == pytest.approx(3.6e6)  # the in_total=false domain is nested, not added
    assert inp["tokens"] == 300
    rows = carbon.scenarios(doc, ["grid", "solar"])
    assert rows[0]["name"] == "grid:US-CA"
    assert rows[0]["g_co2e"] == pytest.approx(carbon.resolve_region("US-CA").intensity_g_per_kwh)
    assert rows[1]["g_co2e_per_1k_tokens"] == pytest.approx(rows[1]["g_co2e"] / 0.3)
    doc["energy"]["total_j"] = 7.2e6
    assert carbon.inputs_from_result(doc)["energy_j"] == 7.2e6
    with pytest.raises(GreenbenchError):
        carbon.inputs_from_result({"energy": {"meters": []}})


def test_default_scenario_set():
    rows = carbon.scenarios(3.6e6, None, region="FRA")
    assert [r["name"] for r in rows] == ["grid:FRA", "solar", "wind", "nuclear", "hydro", "gas", "coal"]


# ---------------------------------------------------------------------------------------------
# no network, light import


def _clear_caches():
    regions_mod._table.cache_clear()
    regions_mod.read_codecarbon_json.cache_clear()
    regions_mod.codecarbon_data_dir.cache_clear()


def test_no_socket_is_opened(monkeypatch):
    opened = []

    class NoSocket:
        def __init__(self, *a, **k):
            opened.append(a)
            raise AssertionError("greenbench.carbon opened a socket")

    def no_connect(*a, **k):
        opened.append(a)
        raise AssertionError("greenbench.carbon tried to connect")

    monkeypatch.setattr(socket, "socket", NoSocket)
    monkeypatch.setattr(socket, "create_connection", no_connect)
    monkeypatch.setattr(socket, "getaddrinfo", no_connect)
    _clear_caches()
    try:
        b = carbon.attribute(3.6e6, tokens=10, region="gcp:europe-west1")
        assert b["g_co2e"] == pytest.approx(122.0)
        rows = carbon.scenarios(3.6e6, ["solar", "grid:US-CA", "grid:CA-ON", "grid:SE1", "grid:CN-BJ"], {"wind": 1.0})
        assert len(rows) == 6
        assert carbon.attribute(1.0)["default_region_used"] is True
        from typer.testing import CliRunner

        from greenbench.cli import app

        res = CliRunner().invoke(app, ["carbon", "--joules", "3600", "--region", "FR", "--scenario", "solar,coal", "--json"])
        assert res.exit_code == 0, res.output
    finally:
        _clear_caches()
    assert opened == []


def test_import_is_light_and_lookup_does_not_import_codecarbon():
    code = (
        "import sys, time; t=time.perf_counter(); import greenbench.carbon as c; dt=time.perf_counter()-t;"
        "assert 'codecarbon' not in sys.modules and 'pycountry' not in sys.modules, 'heavy import';"
        "c.resolve_region('FR'); c.attribute(1.0, region='US-CA');"
        "assert 'codecarbon' not in sys.modules, 'codecarbon imported';"
        "print(dt)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
