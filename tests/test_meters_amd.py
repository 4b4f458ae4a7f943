"""AMD SMI through a fake ``amdsmi`` module injected into sys.modules."""

from __future__ import annotations

import sys
import types

import pytest

from greenbench.errors import MeterError
from greenbench.meters import select, window
from greenbench.meters.amd import AmdMeter


def make_amdsmi(gpus, *, legacy_key=False, init_fails=False):
    """gpus: list of dicts {ticks, resolution_uj} (ticks None: no energy counter)."""
    m = types.ModuleType("amdsmi")

    class AmdSmiException(Exception):
        pass

    m.AmdSmiException = AmdSmiException
    m.gpus = gpus
    m.inits = 0

    def amdsmi_init(*a):
        if init_fails:
            raise AmdSmiException("driver not loaded")
        m.inits += 1

    def amdsmi_shut_down():
        m.inits -= 1

    def amdsmi_get_processor_handles():
        return [f"handle{i}" for i in range(len(gpus))]

    def amdsmi_get_energy_count(h):
        g = gpus[int(h[len("handle"):])]
        if g["ticks"] is None:
            raise AmdSmiException("AMDSMI_STATUS_NOT_SUPPORTED")
        key = "power" if legacy_key else "energy_accumulator"
        return {key: g["ticks"], "counter_resolution": g["resolution_uj"], "timestamp": 0}

    m.amdsmi_init = amdsmi_init
    m.amdsmi_shut_down = amdsmi_shut_down
    m.amdsmi_get_processor_handles = amdsmi_get_processor_handles
    m.amdsmi_get_energy_count = amdsmi_get_energy_count
    return m


@pytest.mark.parametrize("legacy", [False, True])
def test_energy_accumulator(monkeypatch, legacy):
    gpus = [{"ticks": 1000, "resolution_uj": 15.3}, {"ticks": None, "resolution_uj": 15.3}, {"ticks": 0, "resolution_uj": 1.0}]
    mod = make_amdsmi(gpus, legacy_key=legacy)
    monkeypatch.setitem(sys.modules, "amdsmi", mod)
    m = AmdMeter()
    p = m.probe()
    assert p.usable and p.method == "counter"
    assert [d.name for d in p.domains] == ["gpu:0", "gpu:2"]  # gpu:1 has no energy counter
    assert "gpu:1" in p.detail["no_energy_counter"][0]
    assert mod.inits == 0
    m.open()
    try:
        s0 = m.snapshot()
        gpus[0]["ticks"] += 1_000_000  # x 15.3 µJ = 15.3 J
        gpus[2]["ticks"] += 2_000_000  # x 1 µJ = 2 J
        s1 = m.snapshot()
        gpus[0]["ticks"] = 10  # went backwards (driver reload): count nothing, re-base
        s2 = m.snapshot()
        gpus[0]["ticks"] = 110
        s3 = m.snapshot()
    finally:
        m.close()
    assert mod.inits == 0
    rows = {r.domain: r.joules for r in window(m, s0, s1)}
    assert rows == {"gpu:0": pytest.approx(15.3), "gpu:2": pytest.approx(2.0)}
    assert window(m, s1, s2)[0].joules == 0.0 and m.resets == 1
    assert window(m, s2, s3)[0].joules == pytest.approx(100 * 15.3e-6)


def test_amdsmi_missing(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    p = AmdMeter().probe()
    assert not p.usable and "amdsmi" in p.reason and "ROCm" in p.reason
    with pytest.raises(MeterError) as ei:
        select(["amd"], sysfs_root=tmp_path)
    assert "/opt/rocm/share/amd_smi" in (ei.value.hint or "")


def test_init_fails_and_no_counters(monkeypatch):
    monkeypatch.setitem(sys.modules, "amdsmi", make_amdsmi([{"ticks": 1, "resolution_uj": 1}], init_fails=True))
    p = AmdMeter().probe()
    assert not p.usable and "amdsmi_init failed" in p.reason
    monkeypatch.setitem(sys.modules, "amdsmi", make_amdsmi([{"ticks": None, "resolution_uj": 1}]))
    p = AmdMeter().probe()
    assert not p.usable and "no AMD GPU here exposes an energy counter" in p.reason
    monkeypatch.setitem(sys.modules, "amdsmi", make_amdsmi([]))
    assert "no AMD GPU" in AmdMeter().probe().reason
