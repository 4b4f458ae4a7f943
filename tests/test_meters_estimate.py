"""The estimate meter: arithmetic against hand-computed values, TDP lookup, process-tree accounting."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from greenbench.meters import window
from greenbench.meters.estimate import (
    FALLBACK_W_PER_THREAD,
    LEGACY_RAM_W_PER_GB,
    EstimateMeter,
    cpu_model_name,
    cpu_power_table_path,
    load_cpu_power_table,
    lookup_tdp,
    match_cpu,
    ram_w_per_gb,
    tree_cpu_seconds,
    tree_rss_bytes,
)

GIB = 2**30


class Seq:
    """Returns the next value on each call (then repeats the last one)."""

    def __init__(self, *values):
        self.values, self.i = list(values), 0

    def __call__(self):
        v = self.values[min(self.i, len(self.values) - 1)]
        self.i += 1
        return v


def test_arithmetic_hand_computed():
    clock = Seq(0.0, 1.0, 3.0)  # open, sample, snapshot
    m = EstimateMeter(
        tdp_w=65.0, logical_cpus=8, ram_w_per_gb=0.5,
        cpu_seconds=Seq(10.0, 14.0), rss_bytes=Seq(2 * GIB, 4 * GIB, 4 * GIB),
        clock=clock, sampler=False,
    )
    m.open()
    m.sample()  # t=1: trapezoid (2 + 4) / 2 GiB x 1 s x 0.5 W/GiB = 1.5 J
    s1 = m.snapshot()  # t=3: (4 + 4) / 2 x 2 s x 0.5 = 4 J; cpu: 65 W / 8 x (14 - 10) s = 32.5 J
    m.close()
    assert s1.t_s == 3.0
    assert s1.joules["cpu"] == pytest.approx(32.5)
    assert s1.joules["ram"] == pytest.approx(5.5)


def test_window_rows_are_labelled_estimate():
    m = EstimateMeter(
        tdp_w=100.0, logical_cpus=4, ram_w_per_gb=1.0,
        cpu_seconds=Seq(0.0, 1.0, 3.0), rss_bytes=Seq(GIB), clock=Seq(0.0, 2.0, 4.0), sampler=False,
    )
    m.open()
    s0, s1 = m.snapshot(), m.snapshot()
    rows = window(m, s0, s1)
    assert [(r.domain, r.method) for r in rows] == [("cpu", "estimate"), ("ram", "estimate")]
    assert rows[0].joules == pytest.approx(100 / 4 * 2)  # 2 CPU seconds in the window
    assert rows[1].joules == pytest.approx(1.0 * 1.0 * 2)  # 1 GiB for 2 s at 1 W/GiB


def test_probe_detail_names_tdp_source():
    p = EstimateMeter(tdp_w=65, logical_cpus=8, ram_w_per_gb=0.5, sampler=False).probe()
    assert p.usable and p.method == "estimate" and [d.name for d in p.domains] == ["cpu", "ram"]
    assert p.detail["tdp_w"] == 65 and p.detail["w_per_cpu_second"] == pytest.approx(65 / 8)
    p = EstimateMeter(cpu_model="Frobnicator 9000 Hyper", logical_cpus=6, ram_w_per_gb=0.5, sampler=False).probe()
    assert p.detail["tdp_fallback"] is True and p.detail["tdp_w"] == 4 * 6
    assert "not in codecarbon's cpu_power.csv" in p.detail["tdp_source"]


needs_codecarbon = pytest.mark.skipif(cpu_power_table_path() is None, reason="codecarbon not installed")


@needs_codecarbon
@pytest.mark.parametrize(
    "raw, entry, tdp",
    [
        ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", "Intel Core i7-8700", 65.0),
        ("Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz", "Intel Core i7-8700K", 95.0),
        ("AMD Ryzen 7 5800X 8-Core Processor", "AMD Ryzen 7 5800X", 105.0),
        ("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "Intel Xeon Platinum 8375C", 300.0),
    ],
)
def test_lookup_in_codecarbon_table(raw, entry, tdp):
    info = lookup_tdp(raw, logical_cpus=16)
    assert info.matched == entry and info.tdp_w == tdp
    assert entry in info.source


@needs_codecarbon
def test_unknown_cpu_uses_codecarbon_fallback():
    info = lookup_tdp("AMD EPYC", logical_cpus=2)  # matches many EPYC entries: ambiguous, not guessed
    assert info.matched is None and info.tdp_w == FALLBACK_W_PER_THREAD * 2
    assert "fallback" in info.source


def test_match_rules_on_a_small_table():
    names = ["AMD EPYC 7742", "AMD EPYC 7763", "Intel Core i5-3470", "3280", "Intel Xeon Gold 6130", "Intel Xeon Gold 6130T"]
    assert match_cpu("amd epyc 7742", names) == "AMD EPYC 7742"  # case-insensitive exact
    assert match_cpu("AMD EPYC 7742 64-Core Processor", names) == "AMD EPYC 7742"
    assert match_cpu("AMD EPYC", names) is None  # two entries contain it: ambiguous
    assert match_cpu("Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz", names) == "Intel Xeon Gold 6130"
    assert match_cpu("Intel Core i7-3280", names) is None  # a one-word entry ("3280") never matches by words
    assert match_cpu("Totally Unknown", names) is None


@needs_codecarbon
def test_constants_match_installed_codecarbon():
    """The cited constants are still codecarbon's (catches drift on a codecarbon upgrade)."""
    root = cpu_power_table_path().parents[2]
    src = (root / "core" / "cpu.py").read_text()
    assert float(re.search(r"^DEFAULT_POWER_PER_CORE\s*=\s*([\d.]+)", src, re.M).group(1)) == FALLBACK_W_PER_THREAD
    assert len(load_cpu_power_table()) > 1000


@needs_codecarbon
def test_ram_w_per_gb_from_codecarbon_model(monkeypatch):
    w, src = ram_w_per_gb(16.0)  # codecarbon: 16 GB -> 2 DIMMs x 5 W = 10 W
    assert w == pytest.approx(10.0 / 16.0) and "codecarbon RAM model" in src
    monkeypatch.setitem(sys.modules, "codecarbon.external.ram", None)
    w, src = ram_w_per_gb(16.0)
    assert w == LEGACY_RAM_W_PER_GB == 0.375 and "3 W per 8 GB" in src


def test_cpu_model_from_cpuinfo(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz\n")
    assert cpu_model_name(f) == "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz"


BUSY = "import time\nt=time.process_time()\nwhile time.process_time()-t<0.3: pass\n"


def test_tree_cpu_counts_waited_for_children():
    before = tree_cpu_seconds()
    subprocess.run([sys.executable, "-c", BUSY], check=True)
    assert tree_cpu_seconds() - before >= 0.28


def test_tree_cpu_and_rss_count_live_children():
    rss0 = tree_rss_bytes()
    child = subprocess.Popen(
        [sys.executable, "-c", BUSY + "b = bytearray(80 * 2**20)\nimport sys; print('ok', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout.readline().strip() == b"ok"
        cpu_live = tree_cpu_seconds()
        rss_live = tree_rss_bytes()
    finally:
        child.communicate(b"")
    assert rss_live - rss0 >= 60 * 2**20
    # the child's 0.3 s is counted while it is alive and still after it was reaped (no double count)
    after = tree_cpu_seconds()
    assert after >= cpu_live - 0.01
    assert after - cpu_live < 0.2


def test_real_meter_measures_busy_work():
    m = EstimateMeter(tdp_w=40.0, logical_cpus=4, ram_w_per_gb=0.5, sampler=False)
    m.open()
    s0 = m.snapshot()
    t = time.process_time()
    while time.process_time() - t < 0.2:
        pass
    s1 = m.snapshot()
    m.close()
    cpu_j = s1.joules["cpu"] - s0.joules["cpu"]
    assert 10.0 * 0.18 <= cpu_j <= 10.0 * 0.5  # 40 W / 4 CPUs = 10 W per busy CPU second
    assert s1.joules["ram"] > 0
