"""RAPL through a fake powercap sysfs tree in tmp_path (the same code reads real hardware)."""

from __future__ import annotations

import os

import pytest

from greenbench.errors import MeterError
from greenbench.meters import select, window, total_joules
from greenbench.meters import rapl as rapl_mod
from greenbench.meters.rapl import RaplMeter
from greenbench.meters.sampler import Sampler

RANGE = 262143328850  # a typical package max_energy_range_uj


def zone(root, rel, name, energy_uj, range_uj=RANGE, max_power_uw=None):
    d = root / rel
    d.mkdir(parents=True, exist_ok=True)
    (d / "name").write_text(name + "\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{range_uj}\n")
    if max_power_uw is not None:
        (d / "constraint_0_max_power_uw").write_text(f"{max_power_uw}\n")
    return d


def set_uj(d, v):
    (d / "energy_uj").write_text(f"{v}\n")


def server_tree(root, flat_links=True):
    """Two sockets, each package with core and dram sub-zones, like a Xeon server."""
    (root / "intel-rapl").mkdir(parents=True)  # the control type directory: no energy_uj
    z = {
        "p0": zone(root, "intel-rapl:0", "package-0", 1_000_000),
        "c0": zone(root, "intel-rapl:0/intel-rapl:0:0", "core", 500_000),
        "d0": zone(root, "intel-rapl:0/intel-rapl:0:1", "dram", 200_000, range_uj=65712999613),
        "p1": zone(root, "intel-rapl:1", "package-1", 3_000_000),
        "d1": zone(root, "intel-rapl:1/intel-rapl:1:0", "dram", 100_000, range_uj=65712999613),
    }
    if flat_links:  # /sys/class/powercap also lists every sub-zone at the top level (symlinks)
        os.symlink(z["c0"], root / "intel-rapl:0:0")
        os.symlink(z["d0"], root / "intel-rapl:0:1")
        os.symlink(z["d1"], root / "intel-rapl:1:0")
    return z


@pytest.fixture
def sampler():
    s = Sampler()
    yield s
    s.join()


def test_domains_nesting_and_total_without_psys(tmp_path, sampler):
    server_tree(tmp_path)
    m = RaplMeter(tmp_path, sampler=sampler)
    doms = {d.name: d.in_total for d in m.domains()}
    assert doms == {"package-0": True, "core-0": False, "dram-0": True, "package-1": True, "dram-1": True}
    p = m.probe()
    assert p.usable and p.method == "counter"
    assert p.detail["total"] == "package + dram"


def test_package_and_dram_are_the_total_psys_is_recorded_beside(tmp_path, sampler):
    zone(tmp_path, "intel-rapl:0", "package-0", 10)
    zone(tmp_path, "intel-rapl:0/intel-rapl:0:0", "core", 10)
    zone(tmp_path, "intel-rapl:0/intel-rapl:0:1", "uncore", 10)
    zone(tmp_path, "intel-rapl:0/intel-rapl:0:2", "dram", 10)
    zone(tmp_path, "intel-rapl:1", "psys", 10)
    doms = {d.name: d.in_total for d in RaplMeter(tmp_path, sampler=sampler).domains()}
    assert doms == {"package-0": True, "core-0": False, "uncore-0": False, "dram-0": True, "psys": False}


def test_psys_alone_is_the_total(tmp_path, sampler):
    zone(tmp_path, "intel-rapl:1", "psys", 10)
    m = RaplMeter(tmp_path, sampler=sampler)
    assert {d.name: d.in_total for d in m.domains()} == {"psys": True}
    assert m.probe().detail["total"].startswith("psys")


def test_window_joules_per_domain(tmp_path, sampler):
    z = server_tree(tmp_path)
    m = RaplMeter(tmp_path, sampler=sampler)
    m.open()
    try:
        s0 = m.snapshot()
        set_uj(z["p0"], 1_000_000 + 12_500_000)  # +12.5 J
        set_uj(z["c0"], 500_000 + 9_000_000)  # +9 J (inside package-0)
        set_uj(z["d0"], 200_000 + 2_000_000)  # +2 J
        set_uj(z["p1"], 3_000_000 + 4_000_000)  # +4 J
        s1 = m.snapshot()
    finally:
        m.close()
    rows = {r.domain: r for r in window(m, s0, s1)}
    assert rows["package-0"].joules == pytest.approx(12.5)
    assert rows["core-0"].joules == pytest.approx(9.0) and not rows["core-0"].in_total
    assert rows["dram-0"].joules == pytest.approx(2.0)
    assert rows["dram-1"].joules == 0.0
    assert all(r.method == "counter" and r.name == "rapl" for r in rows.values())
    assert total_joules(list(rows.values())) == pytest.approx(12.5 + 2.0 + 4.0)  # core not double-counted


def test_wraparound_mid_window(tmp_path, sampler):
    d = zone(tmp_path, "intel-rapl:0", "package-0", 900, range_uj=1000)
    m = RaplMeter(tmp_path, sampler=sampler, poll_interval_s=3600)
    m.open()
    try:
        s0 = m.snapshot()
        set_uj(d, 100)  # wrapped once: 900 -> 1000 -> 0 -> 100 = 200 µJ
        s1 = m.snapshot()
        assert s1.joules["package-0"] - s0.joules["package-0"] == pytest.approx(200e-6)
        # a long window: the sampler's safety reads see each wrap, so two wraps are both counted
        set_uj(d, 50)
        m._poll()  # what the sampler thread does every poll interval
        set_uj(d, 10)
        m._poll()
        set_uj(d, 30)
        s2 = m.snapshot()
    finally:
        m.close()
    assert m.wraps["package-0"] == 3
    # 100 -> 50 (wrap, +950) -> 10 (wrap, +960) -> 30 (+20)
    assert s2.joules["package-0"] - s1.joules["package-0"] == pytest.approx((950 + 960 + 20) * 1e-6)


def test_sampler_thread_polls_rapl(tmp_path):
    d = zone(tmp_path, "intel-rapl:0", "package-0", 0, range_uj=1000)
    s = Sampler()
    m = RaplMeter(tmp_path, sampler=s, poll_interval_s=0.01)
    m.open()
    try:
        assert s.running
        import time

        deadline = time.monotonic() + 2
        set_uj(d, 600)
        while m.snapshot().joules["package-0"] < 600e-6 and time.monotonic() < deadline:
            time.sleep(0.01)
        task = s.task(m._task)
        while task.runs < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert task.runs >= 2 and task.error is None
    finally:
        m.close()
    s.join()
    assert not s.running


def test_poll_interval_from_range_and_power(tmp_path, sampler):
    zone(tmp_path, "intel-rapl:0", "package-0", 0)  # 262 kJ / 1000 W = 262 s -> clamp 60 s
    assert RaplMeter(tmp_path, sampler=sampler).poll_interval_s() == 60.0
    zone(tmp_path, "intel-rapl:0/intel-rapl:0:0", "dram", 0, range_uj=65712999613)  # 65.7 s / 4
    m = RaplMeter(tmp_path, sampler=sampler)
    assert m.poll_interval_s() == pytest.approx(65.712999613 / 4)
    zone(tmp_path, "intel-rapl:1", "package-1", 0, range_uj=10_000_000, max_power_uw=2_000_000_000)  # 10 J / 2000 W
    assert RaplMeter(tmp_path, sampler=sampler).poll_interval_s() == 1.0  # clamped to the minimum
    zones = {z["domain"]: z for z in RaplMeter(tmp_path, sampler=sampler).probe().detail["zones"]}
    assert zones["package-1"]["max_safe_interval_s"] == pytest.approx(0.005)


def test_unreadable_energy_uj_explains_the_fix(tmp_path, monkeypatch, sampler):
    server_tree(tmp_path)
    real = rapl_mod._read_int

    def deny(path):
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rapl_mod, "_read_int", deny)
    p = RaplMeter(tmp_path, sampler=sampler).probe()
    assert not p.usable
    assert "permission denied" in p.reason and "CVE-2020-8694" in p.reason
    assert "sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj" in p.reason
    assert 'ACTION=="add", SUBSYSTEM=="powercap", KERNEL=="intel-rapl:*"' in p.reason
    with pytest.raises(MeterError) as ei:
        select(["rapl"], sysfs_root=tmp_path, sampler=sampler)
    assert "not usable" in ei.value.message and "udev" in (ei.value.hint or "")
    # implicit selection falls back to estimates and says why
    meters, warnings = select(None, sysfs_root=tmp_path, sampler=sampler)
    assert [m.name for m in meters][-1] == "estimate"
    assert any("ESTIMATED" in w and "permission denied" in w for w in warnings)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file; covered by the monkeypatched test")
def test_unreadable_energy_uj_real_chmod(tmp_path, sampler):
    z = server_tree(tmp_path)
    os.chmod(z["p0"] / "energy_uj", 0o200)
    assert "CVE-2020-8694" in RaplMeter(tmp_path, sampler=sampler).probe().reason


def test_no_powercap_and_empty_tree(tmp_path, sampler):
    p = RaplMeter(tmp_path / "missing", sampler=sampler).probe()
    assert not p.usable and "does not exist" in p.reason and "modprobe intel_rapl_msr" in p.reason
    (tmp_path / "intel-rapl").mkdir()
    p = RaplMeter(tmp_path, sampler=sampler).probe()
    assert not p.usable and "no RAPL zone" in p.reason
    with pytest.raises(MeterError):
        RaplMeter(tmp_path, sampler=sampler).open()


def test_mmio_mirror_read_once(tmp_path, sampler):
    zone(tmp_path, "intel-rapl:0", "package-0", 0)
    zone(tmp_path, "intel-rapl-mmio:0", "package-0", 0)
    m = RaplMeter(tmp_path, sampler=sampler)
    assert [d.name for d in m.domains()] == ["package-0"]
    assert m.probe().detail["zones"][0]["zone"] == "intel-rapl:0"


def test_amd_style_tree(tmp_path, sampler):
    """AMD Zen via intel_rapl_msr: package and core zones, no dram."""
    zone(tmp_path, "intel-rapl:0", "package-0", 5)
    zone(tmp_path, "intel-rapl:0/intel-rapl:0:0", "core", 5)
    doms = {d.name: d.in_total for d in RaplMeter(tmp_path, sampler=sampler).domains()}
    assert doms == {"package-0": True, "core-0": False}


@pytest.mark.skipif(not os.path.isdir("/sys/class/powercap"), reason="no powercap on this machine")
def test_real_powercap_probe_does_not_crash():
    p = RaplMeter().probe()
    assert p.usable or p.reason


def test_failed_background_read_fails_the_next_snapshot(tmp_path):
    import time

    d = zone(tmp_path, "intel-rapl:0", "package-0", 0, range_uj=1000)
    s = Sampler()
    m = RaplMeter(tmp_path, sampler=s, poll_interval_s=0.01)
    m.open()
    try:
        (d / "energy_uj").write_text("garbage\n")  # the background poll now fails
        task = s.task(m._task)
        deadline = time.monotonic() + 2
        while task.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert task.error is not None
        set_uj(d, 10)  # readable again, but a wrap may have been missed meanwhile
        with pytest.raises(MeterError, match="background RAPL counter read failed"):
            m.snapshot()
    finally:
        m.close()
        s.join()
