"""select(), the replay meter and the idle baseline."""

from __future__ import annotations

import sys

import pytest

from greenbench.errors import MeterError
from greenbench.meters import METER_NAMES, all_meters, probe_all, select, total_joules, window
from greenbench.meters.base import Domain, DomainEnergy
from greenbench.meters.estimate import EstimateMeter
from greenbench.meters.idle import domain_key, marginal, marginal_total_j
from greenbench.runner import MeterSet
from greenbench.meters.replay import ReplayMeter

from test_meters_rapl import server_tree


@pytest.fixture(autouse=True)
def no_gpu_libs(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setitem(sys.modules, "amdsmi", None)


def test_implicit_uses_usable_rapl_without_warning(tmp_path):
    server_tree(tmp_path)
    meters, warnings = select(None, sysfs_root=tmp_path)
    assert [m.name for m in meters] == ["rapl"] and warnings == []


def test_implicit_fallback_to_estimate_warns_why(tmp_path):
    meters, warnings = select(None, sysfs_root=tmp_path / "nothing")
    assert [m.name for m in meters] == ["estimate"]
    assert len(warnings) == 1
    w = warnings[0]
    assert "ESTIMATED" in w and "does not exist" in w and "greenbench meters" in w
    assert "\n" not in w and len(w) < 200  # one line; the model's inputs are in the result and `meters`


def test_explicit_unusable_raises_with_reason_and_fix(tmp_path):
    with pytest.raises(MeterError) as ei:
        select(["rapl"], sysfs_root=tmp_path / "nothing")
    assert "'rapl'" in ei.value.message and "does not exist" in ei.value.message
    assert "modprobe" in ei.value.hint and ei.value.exit_code == 2
    with pytest.raises(MeterError):
        select(["estimate", "nvml"], sysfs_root=tmp_path)


def test_unknown_name_lists_valid_names(tmp_path):
    with pytest.raises(MeterError) as ei:
        select(["rapl", "joulemeter"], sysfs_root=tmp_path)
    assert "joulemeter" in ei.value.message
    for n in METER_NAMES:
        assert n in ei.value.hint


def test_explicit_names_comma_separated_and_deduplicated(tmp_path, monkeypatch):
    server_tree(tmp_path)
    monkeypatch.setitem(__import__("sys").modules, "pynvml", None)
    meters, warnings = select(["rapl,RAPL", "rapl"], sysfs_root=tmp_path)
    assert [m.name for m in meters] == ["rapl"] and warnings == []


def test_rapl_and_estimate_together_would_count_the_cpu_twice(tmp_path):
    server_tree(tmp_path)
    with pytest.raises(MeterError, match="twice"):
        select(["rapl,estimate"], sysfs_root=tmp_path)


def test_all_meters_and_probe_all(tmp_path):
    assert [m.name for m in all_meters(sysfs_root=tmp_path)] == list(METER_NAMES)
    probes = {p.name: p for p in probe_all(sysfs_root=tmp_path)}
    assert probes["estimate"].usable and not probes["nvml"].usable and not probes["amd"].usable
    assert "nvidia-ml-py" in probes["nvml"].reason


# -- replay --------------------------------------------------------------------------------
def test_replay_meter():
    m = ReplayMeter(
        [(0.0, {"a": 100.0, "b": 5.0}), (1.0, {"a": 110.0, "b": 6.0}), (3.0, {"a": 130.0, "b": 6.5})],
        name="recorded", method="simulated", domains=[Domain("a"), Domain("b", in_total=False)],
    )
    assert m.probe().usable
    m.open()
    s1, s2, s3 = m.snapshot(), m.snapshot(), m.snapshot()  # the last reading repeats
    rows = window(m, s1, s2)
    assert [(r.name, r.domain, r.method, r.joules) for r in rows] == [
        ("recorded", "a", "simulated", 20.0), ("recorded", "b", "simulated", 0.5)]
    assert total_joules(rows) == 20.0
    assert s2.t_s - s1.t_s == 2.0 and window(m, s2, s3)[0].joules == 0.0


def test_replay_callable_and_bad_method():
    vals = iter([{"x": 1.0}, {"x": 4.0}])
    m = ReplayMeter(lambda: next(vals), domains=[Domain("x")])
    m.open()
    assert m.snapshot().joules == {"x": 3.0}
    with pytest.raises(ValueError):
        ReplayMeter([{"x": 1}], method="guess")


# -- idle baseline -------------------------------------------------------------------------
def test_measure_idle_and_marginal():
    rapl = ReplayMeter([(0.0, {"pkg": 0.0}), (10.0, {"pkg": 0.0}), (12.0, {"pkg": 60.0})], name="rapl")
    est = EstimateMeter(tdp_w=8, logical_cpus=2, ram_w_per_gb=1.0, cpu_seconds=lambda: 0.0,
                        rss_bytes=lambda: 2**30, clock=iter([0.0, 1.0, 3.0]).__next__, sampler=False)
    rapl.open()
    est.open()
    slept = []
    idle = MeterSet([rapl, est]).measure_idle(2.0, sleep=slept.append)
    assert slept == [2.0]
    assert idle == {"rapl/pkg": pytest.approx(30.0), "estimate/cpu": 0.0, "estimate/ram": 0.0}
    rows = [DomainEnergy("rapl", "pkg", "counter", 100.0), DomainEnergy("rapl", "core", "counter", 50.0, False),
            DomainEnergy("estimate", "ram", "estimate", 2.0)]
    idle["rapl/core"] = 30.0
    out = marginal(rows, idle, 3.0)
    assert [r.joules for r in out] == [pytest.approx(10.0), pytest.approx(-40.0), 2.0]  # signed, never floored
    assert marginal_total_j(rows, idle, 3.0) == pytest.approx(12.0)
    assert MeterSet([rapl]).measure_idle(0) == {} and domain_key("nvml", "gpu:0") == "nvml/gpu:0"
