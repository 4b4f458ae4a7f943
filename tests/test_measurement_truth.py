"""Measurement truth: device scope, counter resolution, idle, RAPL sanity, recorded inputs, timing, contention.

The hardware this machine lacks is faked at its real boundary: a powercap tree written by another process
at known watts and update period, and a fake ``pynvml`` module whose energy counters tick in time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from greenbench import profile as P
from greenbench.cli import app
from greenbench.errors import MeterError
from greenbench.meters import base, select
from greenbench.meters.base import Domain, DomainEnergy, Probe, Snapshot
from greenbench.meters.contention import Contention
from greenbench.meters.estimate import EstimateMeter
from greenbench.meters.nvml import NvmlMeter, resolve_gpus
from greenbench.meters.rapl import RaplMeter
from greenbench.meters.sampler import Sampler
from greenbench.meters.scope import GpuRef, Scope
from greenbench.runner import MeterSet, Window, run_profile, summarize_energy

from fakes import FakeBackend, FakeSession, make_pynvml, ticking_energy_mj

runner = CliRunner()
WRITER = Path(__file__).with_name("powercap_writer.py")
RANGE = 262143328850


def _zone(root: Path, rel: str, name: str, range_uj=RANGE, energy_uj=0):
    d = root / rel
    d.mkdir(parents=True, exist_ok=True)
    (d / "name").write_text(name + "\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    if range_uj is not None:
        (d / "max_energy_range_uj").write_text(f"{range_uj}\n")
    return d


@pytest.fixture
def real_probe_patience(monkeypatch):
    """Counters that move: give the period probe its production patience."""
    monkeypatch.setattr(base, "PERIOD_PROBE_GIVEUP_S", 0.25)
    monkeypatch.setattr(base, "PERIOD_PROBE_TIMEOUT_S", 0.5)


@pytest.fixture
def no_gpus(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setitem(sys.modules, "amdsmi", None)


def start_writer(root: Path, period_s: float, zones: dict[str, float]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(WRITER), str(root), str(period_s),
                             *(f"{rel}={w}" for rel, w in zones.items())])
    time.sleep(max(0.2, 5 * period_s))  # let it start and write a few updates
    return proc


# -- 2. counter resolution, end to end ------------------------------------------------------------
@pytest.mark.parametrize("period_s", [0.001, 0.05])
def test_counter_phases_imply_the_writers_power_and_span_20_periods(tmp_path, monkeypatch, no_gpus,
                                                                   real_probe_patience, period_s):
    root = tmp_path / "powercap"
    _zone(root, "intel-rapl:0", "package-0")
    _zone(root, "intel-rapl:0/intel-rapl:0:0", "core")
    _zone(root, "intel-rapl:0/intel-rapl:0:1", "dram", range_uj=65712999613)
    watts = {"intel-rapl:0": 30.0, "intel-rapl:0/intel-rapl:0:0": 20.0, "intel-rapl:0/intel-rapl:0:1": 5.0}
    monkeypatch.setenv("GREENBENCH_POWERCAP_DIR", str(root))
    proc = start_writer(root, period_s, watts)
    try:
        # one onnxruntime thread leaves a core to the writer, which stands in for hardware that never stalls
        res = runner.invoke(app, ["run", "llama-tiny", "--repeats", "2", "--warmup", "0", "--region", "FRA",
                                  "--threads", "1", "--out", str(tmp_path / "out"), "--json"])
    finally:
        proc.terminate()
        proc.wait()
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    e = doc["energy"]
    assert e["method"] == "counter" and {r["domain"] for r in e["meters"]} == {"package-0", "core-0", "dram-0"}
    probe = e["probes"]["rapl"]
    assert probe["period_source"] == "measured"
    period = probe["update_period_s"]
    # at least the writer's period (on a busy machine its sleeps overrun, so it can be longer)
    assert period >= 0.5 * period_s
    for phase in ("prefill", "decode"):
        m = doc["metrics"][phase]
        assert m["below_resolution"] is False and m["j_per_token"] is not None
        # every reported counter window spans at least 20 update periods
        assert all(w >= 20 * period for w in (m["window_s"],))
        assert all(d * n >= 20 * period for d, n in zip(m["duration_s_samples"], m["inner_repeats_samples"]))
        # J per phase / its duration = the writer's package + dram watts (core is inside the package)
        for jpt, dur in zip(m["j_per_token_samples"], m["duration_s_samples"]):
            assert jpt * m["tokens"] / dur == pytest.approx(35.0, rel=0.05), (phase, m, doc["energy"])
    # llama-tiny's prefill is far shorter than 20 periods: it was repeated inside its window
    assert doc["metrics"]["prefill"]["inner_repeats"] > 1
    # TTFT and tokens/s come from single timings, not from the repeated windows
    assert doc["metrics"]["ttft_s"] < doc["metrics"]["prefill"]["window_s"]
    assert doc["energy"]["scope"]["kind"] == "devices"


class TickMeter:
    """A counter meter at ``watts`` whose value changes every ``period_s`` (wall clock), with aligned edges."""

    name = "tick"
    method = "counter"

    def __init__(self, watts=10.0, period_s=0.005):
        self.watts, self.update_period_s, self.t0 = watts, period_s, time.perf_counter()
        self.period_source = "given"

    def _value(self):
        steps = int((time.perf_counter() - self.t0) / self.update_period_s)
        return self.watts * steps * self.update_period_s

    def probe(self):
        return Probe(self.name, True, self.method, "", self.domains(), {})

    def domains(self):
        return (Domain("package-0"),)

    def open(self):
        pass

    def snapshot(self):
        return Snapshot(time.perf_counter(), {"package-0": self._value()})

    def wait_for_update(self, timeout_s):
        return base.wait_for_change(self._value, timeout_s)

    def close(self):
        pass


class RewindSession(FakeSession):
    def rewind(self):
        pass


@pytest.fixture
def prof(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('name = "p"\n[model]\nkind = "synthetic-llama"\n[prompt]\ntoken_ids = [1, 2, 3]\n'
                 '[generation]\nmax_new_tokens = 5\n[run]\nrepeats = 3\nwarmup = 0\n[carbon]\nregion = "FRA"\n')
    return P.load(f)


def test_short_phases_are_repeated_inside_long_enough_windows(prof):
    meter = TickMeter(watts=10.0, period_s=0.005)
    doc = run_profile(prof, meters=[meter], backend=FakeBackend(RewindSession()), measure_bandwidth=False)
    for phase in ("prefill", "decode"):
        m = doc["metrics"][phase]
        assert m["inner_repeats"] > 10 and m["window_s"] >= 20 * 0.005
        for jpt, dur in zip(m["j_per_token_samples"], m["duration_s_samples"]):
            assert jpt * m["tokens"] / dur == pytest.approx(10.0, rel=0.06)


def test_a_phase_that_cannot_be_repeated_is_below_resolution_not_zero(prof):
    meter = TickMeter(watts=10.0, period_s=0.005)
    doc = run_profile(prof, meters=[meter], backend=FakeBackend(FakeSession()), measure_bandwidth=False)
    d = doc["metrics"]["decode"]  # FakeSession has no rewind()
    assert d["below_resolution"] is True and d["j_per_token"] is None and d["j_per_token_samples"] == []
    assert "resolve" in d["below_resolution_note"]
    assert doc["metrics"]["decode"]["tokens_per_s"] > 0  # speed is still measured
    assert doc["metrics"]["prefill"]["below_resolution"] is False  # prefill can be repeated (reset + prefill)
    assert any("below what the counters can resolve" in w for w in doc["warnings"])


def test_nothing_resolved_reports_no_energy_and_no_carbon_never_zero(prof):
    meter = TickMeter(watts=10.0, period_s=0.005)
    meter.wait_for_update = lambda timeout_s: False  # every edge misses: no window can be trusted
    doc = run_profile(prof, meters=[meter], backend=FakeBackend(RewindSession()), measure_bandwidth=False)
    e, c = doc["energy"], doc["carbon"]
    assert e["total_j"] is None and e["below_resolution"] is True and e["repeats_in_total"] == 0
    assert c["g_co2e"] is None and c["g_co2e_per_1k_tokens"] is None and "no energy" in c["note"]
    assert doc["metrics"]["decode"]["j_per_token"] is None
    from greenbench import results

    results.validate(doc)


def test_carbon_covers_the_same_repeats_as_the_energy_total(prof):
    # decode cannot be repeated (no rewind) and is below resolution: no repeat is complete
    doc = run_profile(prof, meters=[TickMeter(period_s=0.005)], backend=FakeBackend(FakeSession()),
                      measure_bandwidth=False)
    assert doc["energy"]["total_j"] is None and doc["carbon"]["g_co2e"] is None
    # every window resolved: carbon tokens are the generated tokens of the repeats in the total
    doc = run_profile(prof, meters=[TickMeter(period_s=0.002)], backend=FakeBackend(RewindSession()),
                      measure_bandwidth=False)
    e, c = doc["energy"], doc["carbon"]
    assert e["repeats_in_total"] == 3 and c["tokens"] == 3 * doc["workload"]["new_tokens"]
    # the total is the sum of each repeat's phases (not 3 x a median: fake phases this short vary a lot)
    total = sum(jpt * doc["metrics"][ph]["tokens"]
                for ph in ("prefill", "decode") for jpt in doc["metrics"][ph]["j_per_token_samples"])
    assert e["total_j"] == pytest.approx(total, rel=1e-9)


def test_min_window_periods_is_configurable(prof):
    import dataclasses

    p = dataclasses.replace(prof, run=dataclasses.replace(prof.run, min_window_periods=40))
    doc = run_profile(p, meters=[TickMeter(period_s=0.002)], backend=FakeBackend(RewindSession()),
                      measure_bandwidth=False)
    assert doc["metrics"]["prefill"]["window_s"] >= 40 * 0.002
    assert doc["energy"]["min_window_periods"] == 40


def test_measure_block_below_resolution_reports_no_energy():
    import greenbench

    with greenbench.measure(meters=[TickMeter(period_s=0.05)], region="FRA", tokens=3) as m:
        pass
    r = m.result
    assert r["energy"]["below_resolution"] is True and r["energy"]["total_j"] is None and r["j_per_token"] is None
    assert all(row["joules"] is None for row in r["energy"]["meters"])
    assert any("shorter than" in w for w in r["warnings"])


# -- 1. device scope -----------------------------------------------------------------------------------
UUIDS = ["GPU-aaaa1111-0000-0000-0000-000000000000", "GPU-bbbb2222-0000-0000-0000-000000000000",
         "GPU-cccc3333-0000-0000-0000-000000000000"]


@pytest.fixture
def three_gpus(monkeypatch):
    gpus = [{"uuid": u, "name": "NVIDIA H200", "energy_mj": ticking_energy_mj(80.0, 0.01), "power_mw": 80_000}
            for u in UUIDS]
    mod = make_pynvml(gpus)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    monkeypatch.setenv("GREENBENCH_POWERCAP_DIR", "/nonexistent-powercap")
    return mod


def test_cpu_run_meters_no_idle_gpu_but_machine_scope_does(three_gpus, tmp_path, real_probe_patience):
    args = ["run", "llama-tiny", "--repeats", "2", "--warmup", "0", "--region", "FRA", "--out", str(tmp_path), "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert {r["name"] for r in doc["energy"]["meters"]} == {"estimate"}
    assert doc["energy"]["scope"]["kind"] == "devices" and doc["energy"]["scope"]["gpus"] == []
    assert all(d["device"] == "cpu" for d in doc["energy"]["scope"]["devices"])

    res = runner.invoke(app, args + ["--scope", "machine"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    gpu_rows = [r for r in doc["energy"]["meters"] if r["name"] == "nvml"]
    assert {r["domain"] for r in gpu_rows} == {"gpu:0", "gpu:1", "gpu:2"}
    assert all(r["method"] == "counter" and r["basis"] == "energy-counter" and r["in_total"] for r in gpu_rows)
    assert sum(r["joules"] for r in gpu_rows) > 0
    assert doc["energy"]["scope"]["kind"] == "machine"
    assert {d.get("uuid") for d in doc["energy"]["scope"]["devices"] if d["device"] == "gpu"} == set(UUIDS)
    # three GPU counters of ~10 ms, not all aligned by one edge: windows of at least 40 of their periods
    period = doc["energy"]["probes"]["nvml"]["update_period_s"]
    assert 0.005 < period < 0.05
    assert doc["metrics"]["decode"]["window_s"] >= 40 * period


def test_cuda_scope_meters_only_the_work_gpu(three_gpus):
    meters, warnings = select(None, scope=Scope(cpu=True, gpus=(GpuRef(0, UUIDS[2]),)))
    nv = [m for m in meters if m.name == "nvml"][0]
    assert [d.name for d in nv.domains()] == ["gpu:2"] and not warnings[1:]  # [0]: the estimate fallback
    assert nv.devices()[0]["selected_by"] == "UUID from the framework"


def test_gpu_by_ordinal_warns_about_cuda_device_order(three_gpus, monkeypatch):
    nvml = three_gpus
    nvml.nvmlInit()
    try:
        sel, warnings = resolve_gpus(nvml, [GpuRef(1)], os.environ)
        assert [i for i, _, _ in sel] == [1] and "CUDA_DEVICE_ORDER" in warnings[0]
        monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        assert resolve_gpus(nvml, [GpuRef(1)], os.environ)[1] == []
        monkeypatch.delenv("CUDA_DEVICE_ORDER")
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{UUIDS[2]},{UUIDS[0]}")
        sel, warnings = resolve_gpus(nvml, [GpuRef(0)], os.environ)
        assert [i for i, _, _ in sel] == [2] and warnings == []  # ordinal 0 = the first UUID listed
        with pytest.raises(MeterError, match="only 2 GPU"):
            resolve_gpus(nvml, [GpuRef(2)], os.environ)
    finally:
        nvml.nvmlShutdown()


def test_explicit_gpu_meter_outside_scope_is_refused(three_gpus):
    with pytest.raises(MeterError) as ei:
        select(["nvml"], scope=Scope(cpu=True))
    assert "--scope machine" in ei.value.hint


def test_meters_backend_shows_what_a_run_would_meter(three_gpus):
    res = runner.invoke(app, ["meters", "--backend", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)["run"]
    assert [m["name"] for m in plan["meters"]] == ["estimate"]
    res = runner.invoke(app, ["meters", "--backend", "cuda", "--json"])
    plan = json.loads(res.stdout)["run"]
    assert [m["name"] for m in plan["meters"]] == ["nvml", "estimate"]
    assert plan["meters"][0]["domains"] == ["gpu:0"]
    assert any("CUDA_DEVICE_ORDER" in w for w in plan["warnings"])
    res = runner.invoke(app, ["meters", "--backend", "cpu", "--scope", "machine"])
    assert res.exit_code == 0 and "every device" in res.stdout
    assert runner.invoke(app, ["meters", "--backend", "cpux"]).exit_code == 2


# -- 3. idle baseline ---------------------------------------------------------------------------------
def test_marginal_is_per_domain_over_summed_windows_never_floored_per_window():
    ms = MeterSet([], idle_power_w={"rapl/package-0": 10.0})
    w1 = Window(1.0, [DomainEnergy("rapl", "package-0", "counter", 9.0)])
    w2 = Window(1.0, [DomainEnergy("rapl", "package-0", "counter", 11.0)])
    e = summarize_energy([[w1], [w2]], ms)
    assert e["marginal_j"] == pytest.approx(0.0)  # not 1.0 (9 - 10 floored to 0, plus 11 - 10)
    assert e["idle_exceeds_measured"] is False
    e = summarize_energy([[w1]], ms)
    assert e["marginal_j"] == pytest.approx(-1.0) and e["idle_exceeds_measured"] is True
    assert "rapl/package-0" in e["idle_note"]


def test_estimate_idle_is_assumed_not_measured(prof):
    est = EstimateMeter(tdp_w=8, logical_cpus=2, ram_w_per_gb=1.0, sampler=False)
    est.idle_at_edges = True  # no tick granularity: this test is about the idle record
    import dataclasses

    p = dataclasses.replace(prof, run=dataclasses.replace(prof.run, idle_s=0.05))
    doc = run_profile(p, meters=[est, TickMeter(period_s=0.001)], backend=FakeBackend(RewindSession()),
                      measure_bandwidth=False)
    basis = {r["domain_key"]: r["basis"] for r in doc["energy"]["idle_power_w"]}
    assert basis == {"estimate/cpu": "assumed", "estimate/ram": "assumed", "tick/package-0": "measured"}


def test_idle_window_is_lengthened_to_what_the_counter_resolves(prof):
    import dataclasses

    p = dataclasses.replace(prof, run=dataclasses.replace(prof.run, idle_s=0.01))
    doc = run_profile(p, meters=[TickMeter(watts=4.0, period_s=0.005)], backend=FakeBackend(RewindSession()),
                      measure_bandwidth=False)
    e = doc["energy"]
    assert "lengthened" in e["idle_lengthened_note"]
    assert e["idle_power_w"][0]["power_w"] == pytest.approx(4.0, rel=0.1)


# -- 4. RAPL sanity ------------------------------------------------------------------------------------
@pytest.fixture
def sampler():
    s = Sampler()
    yield s
    s.join()


def test_psys_that_never_advances_is_dropped_with_a_note(tmp_path, sampler, real_probe_patience):
    pkg = _zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=1000)
    _zone(tmp_path, "intel-rapl:1", "psys", energy_uj=5)
    stop = threading.Event()

    def tick():
        v = 1000
        while not stop.is_set():
            v += 1000
            tmp = pkg / ".t"
            tmp.write_text(f"{v}\n")
            os.replace(tmp, pkg / "energy_uj")
            time.sleep(0.002)

    t = threading.Thread(target=tick)
    t.start()
    try:
        m = RaplMeter(tmp_path, sampler=sampler)
        p = m.probe()
    finally:
        stop.set()
        t.join()
    assert [d.name for d in m.domains()] == ["package-0"]
    assert "psys did not advance" in p.detail["zones"][1]["dropped"]
    assert p.detail["period_source"] == "measured" and p.detail["update_period_s"] < 0.05
    m.open()
    try:
        assert any("psys" in n for n in m.notes())
    finally:
        m.close()


def test_psys_below_package_plus_dram_is_noted(tmp_path, sampler):
    pkg = _zone(tmp_path, "intel-rapl:0", "package-0")
    dram = _zone(tmp_path, "intel-rapl:0/intel-rapl:0:0", "dram")
    psys = _zone(tmp_path, "intel-rapl:1", "psys")
    m = RaplMeter(tmp_path, sampler=sampler)
    m.open()
    try:
        for d, uj in ((pkg, 10_000_000), (dram, 2_000_000), (psys, 6_000_000)):
            (d / "energy_uj").write_text(f"{uj}\n")
        s = m.snapshot()
        assert s.joules["psys"] == pytest.approx(6.0)
        notes = m.notes()
    finally:
        m.close()
    assert any("less than package + dram" in n for n in notes)
    assert {d.name: d.in_total for d in m.domains()} == {"package-0": True, "dram-0": True, "psys": False}


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_a_drop_no_single_wrap_explains_is_a_reset_not_a_full_range(tmp_path, sampler):
    pkg = _zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=50_000_000)
    clock = Clock()
    m = RaplMeter(tmp_path, sampler=sampler, clock=clock)
    m.open()
    try:
        clock.t += 1.0
        (pkg / "energy_uj").write_text("3000000\n")  # 50 J -> 3 J one second later: a wrap would be 262 kJ in 1 s
        s = m.snapshot()
        assert s.joules["package-0"] == pytest.approx(3.0)
        assert m.resets == {"package-0": 1} and m.wraps == {"package-0": 0}
        clock.t += 1000.0
        (pkg / "energy_uj").write_text(f"{RANGE - 1_000_000}\n")
        m.snapshot()
        (pkg / "energy_uj").write_text("2000000\n")  # a real wrap: 1 J to the top, then 2 J, 1000 s later
        clock.t += 1000.0
        s = m.snapshot()
        assert m.wraps == {"package-0": 1}
        assert any("reset" in n for n in m.notes())
    finally:
        m.close()


def test_unknown_range_is_not_guessed(tmp_path, sampler):
    pkg = _zone(tmp_path, "intel-rapl:0", "package-0", range_uj=None, energy_uj=9_000_000)
    m = RaplMeter(tmp_path, sampler=sampler)
    assert m.probe().detail["zones"][0]["max_energy_range_j"] is None
    m.open()
    try:
        (pkg / "energy_uj").write_text("1000000\n")
        assert m.snapshot().joules["package-0"] == pytest.approx(1.0)  # not 2^32 uJ - 8 J
        assert m.resets["package-0"] == 1
    finally:
        m.close()


def test_no_dram_zone_says_ram_is_not_covered(tmp_path, sampler):
    _zone(tmp_path, "intel-rapl:0", "package-0")
    _zone(tmp_path, "intel-rapl:0/intel-rapl:0:0", "core")
    m = RaplMeter(tmp_path, sampler=sampler)
    p = m.probe()
    assert p.detail["ram_covered"] is False and "AMD" in p.detail["ram_note"]


def test_powercap_root_from_the_environment(tmp_path, monkeypatch, no_gpus):
    _zone(tmp_path, "intel-rapl:0", "package-0")
    monkeypatch.setenv("GREENBENCH_POWERCAP_DIR", str(tmp_path))
    res = runner.invoke(app, ["meters", "--json"])
    rapl = [m for m in json.loads(res.stdout) if m["name"] == "rapl"][0]
    assert rapl["usable"] and rapl["detail"]["sysfs_root"] == str(tmp_path)
    monkeypatch.setenv("GREENBENCH_POWERCAP_DIR", str(tmp_path / "missing"))
    meters, warnings = select(None)
    assert [m.name for m in meters] == ["estimate"] and "missing" in warnings[0]


# -- 5. every input recorded --------------------------------------------------------------------------
def test_estimate_rows_carry_their_inputs_and_the_arithmetic_redoes(prof):
    cpu = [0.0]

    def cpu_seconds():
        cpu[0] += 0.001
        return cpu[0]

    est = EstimateMeter(tdp_w=100, logical_cpus=4, ram_w_per_gb=0.5, cpu_seconds=cpu_seconds,
                        rss_bytes=lambda: 2 * 2**30, sampler=False)
    est.idle_at_edges = True
    doc = run_profile(prof, meters=[est], backend=FakeBackend(RewindSession()), measure_bandwidth=False)
    probe = doc["energy"]["probes"]["estimate"]
    assert probe["tdp_w"] == 100 and probe["logical_cpus"] == 4 and probe["ram_w_per_gb"] == 0.5
    rows = {r["domain"]: r for r in doc["energy"]["meters"]}
    assert rows["cpu"]["basis"] == "tdp-model" and rows["ram"]["basis"] == "rss-model"
    assert rows["cpu"]["joules"] == pytest.approx(100 / 4 * rows["cpu"]["inputs"]["cpu_s"])
    assert rows["ram"]["joules"] == pytest.approx(0.5 * rows["ram"]["inputs"]["gib_s"])


def test_nvml_probe_detail_is_stored_under_energy(three_gpus, tmp_path):
    res = runner.invoke(app, ["run", "llama-tiny", "--backend", "cpu", "--scope", "machine", "--repeats", "1",
                              "--warmup", "0", "--region", "FRA", "--out", str(tmp_path), "--json",
                              "--meter", "nvml"])
    assert res.exit_code == 0, res.output
    nv = json.loads(res.stdout)["energy"]["probes"]["nvml"]
    assert nv["update_period_s"] > 0 and {g["basis"] for g in nv["gpus"]} == {"energy-counter"}


# -- 6. timing without the meters ---------------------------------------------------------------------
class SlowMeter(TickMeter):
    def snapshot(self):
        time.sleep(0.05)
        return super().snapshot()


def test_ttft_excludes_meter_reads(prof):
    m = SlowMeter(period_s=0.0005)
    doc = run_profile(prof, meters=[m], backend=FakeBackend(RewindSession()), measure_bandwidth=False)
    # the fake prefill takes microseconds; each edge's meter read takes 50 ms and must stay outside the timing
    assert all(t < 0.025 for t in doc["metrics"]["ttft_s_samples"])


# -- 7. contention ------------------------------------------------------------------------------------
def test_contention_fraction_and_flag():
    t = [0.0]
    busy = [0.0]
    own = [0.0]
    c = Contention(machine_cpu=lambda: (busy[0], 0.0), own_cpu=lambda: own[0], clock=lambda: t[0], logical_cpus=4)
    c.mark()
    for _ in range(4):  # 4 intervals of 0.5 s: we use 1 CPU, others use 1 CPU
        t[0] += 0.5
        own[0] += 0.5
        busy[0] += 1.0
        c.mark()
    s = c.summary()
    assert s["other_cpu_fraction"] == pytest.approx(0.25) and s["flagged"] is True
    assert "busy machine" in s["warning"]
    quiet = Contention(machine_cpu=lambda: (0.0, 0.0), own_cpu=lambda: 0.0, clock=lambda: t[0])
    quiet.mark()
    t[0] += 1
    quiet.mark()
    assert quiet.summary()["flagged"] is False


def test_a_run_on_a_busy_machine_is_flagged(prof, monkeypatch):
    import greenbench.meters.contention as cm

    real = cm._machine_cpu
    extra = [0.0]

    def busier():
        busy, steal = real()
        extra[0] += 10.0  # another process burns 10 CPU seconds between marks
        return busy + extra[0], steal

    monkeypatch.setattr(cm, "_machine_cpu", busier)
    monkeypatch.setattr(cm, "MIN_INTERVAL_S", 0.0)  # the fake run is short; the plumbing is what is tested
    doc = run_profile(prof, meters=[TickMeter(period_s=0.001)], backend=FakeBackend(RewindSession()),
                      measure_bandwidth=False)
    c = doc["environment"]["contention"]
    assert c["flagged"] is True and c["other_cpu_fraction"] > 0.1
    assert any("busy machine" in w for w in doc["warnings"])


def test_threads_respect_a_cgroup_quota_and_affinity(tmp_path, monkeypatch):
    from greenbench.backends import ort as ort_backend

    f = tmp_path / "cpu.max"
    f.write_text("150000 100000\n")
    assert ort_backend._cgroup_cpu_quota(str(f)) == 1.5
    f.write_text("max 100000\n")
    assert ort_backend._cgroup_cpu_quota(str(f)) is None
    monkeypatch.setattr(ort_backend, "_cgroup_cpu_quota", lambda: 1.5)
    assert ort_backend.physical_cores() == 1


def test_roofline_bound_is_the_lower_ceiling_measured_with_the_models_kernel():
    from greenbench.models.ceilings import matmul_peak_macs_per_s
    from greenbench.models.cost import roofline_bounds

    p = matmul_peak_macs_per_s("int4", threads=1, k=256, n=256, min_time_s=0.01)
    peak = p["peak_macs_per_s"]
    assert 1e6 < peak < 1e13 and "accuracy_level 4" in p["kernel"] and p["weight_bytes"] < 256 * 256
    cost = {"bytes_per_token": 1e6, "macs_per_token": 1e6}
    # bandwidth at 10x the kernel's MAC rate in bytes: memory allows 10x more tokens, so compute binds
    compute = roofline_bounds(cost, 1.0, 10 * peak, peak)
    assert compute["bound"] == "compute" and compute["compute_ceiling_tokens_per_s"] == pytest.approx(peak / 1e6)
    memory = roofline_bounds(cost, 1.0, peak / 10, peak)
    assert memory["bound"] == "memory" and memory["memory_ceiling_tokens_per_s"] == pytest.approx(peak / 10 / 1e6)
    assert roofline_bounds(cost, 1e30, peak, peak)["roofline_fraction"] is None  # above a ceiling: flagged


# -- review findings ------------------------------------------------------------------------------------
def test_a_slow_counter_is_not_taken_for_a_fast_default(tmp_path, real_probe_patience):
    root = tmp_path / "powercap"
    _zone(root, "intel-rapl:0", "package-0")
    proc = start_writer(root, 0.3, {"intel-rapl:0": 20.0})
    try:
        m = RaplMeter(root)
        p = m.probe()
    finally:
        proc.terminate()
        proc.wait()
    # one or two updates in the 0.5 s probe: the period is known to be long, never the 1 ms default
    assert p.detail["update_period_s"] >= 0.2 and p.detail["period_source"] != "default"


def test_contention_is_not_read_from_intervals_shorter_than_the_ticks():
    t, busy = [0.0], [0.0]
    c = Contention(machine_cpu=lambda: (busy[0], 0.0), own_cpu=lambda: 0.0, clock=lambda: t[0], logical_cpus=2)
    c.mark()
    t[0] += 0.002
    busy[0] += 0.01  # one 10 ms tick landing in a 2 ms interval
    c.mark()
    s = c.summary()
    assert s["other_cpu_fraction"] is None and s["flagged"] is False and "too short" in s["note"]


def test_rapl_edges_count_as_aligned_only_for_a_single_zone(tmp_path, sampler):
    _zone(tmp_path, "intel-rapl:0", "package-0")
    assert RaplMeter(tmp_path, sampler=sampler).aligns_all_domains
    _zone(tmp_path, "intel-rapl:0/intel-rapl:0:0", "dram")
    assert not RaplMeter(tmp_path, sampler=sampler).aligns_all_domains


def test_a_failing_roofline_probe_keeps_the_measured_run(prof, monkeypatch):
    import greenbench.models as models

    def boom(*a, **k):
        raise MemoryError("no room for the probe buffer")

    monkeypatch.setattr(models, "last_level_cache_bytes", lambda: 1, raising=False)
    monkeypatch.setattr(models, "memory_bandwidth_bytes_per_s", boom, raising=False)
    doc = run_profile(prof, meters=[TickMeter(period_s=0.001)], backend=FakeBackend(RewindSession()))
    assert doc["workload"]["repeats_completed"] == 3 and "MemoryError" in doc["metrics"]["decode"]["roofline_note"]


@pytest.mark.parametrize("args", [["--idle", "1e308"], ["--idle", "nan"]])
def test_absurd_idle_is_bad_input(args, tmp_path):
    res = runner.invoke(app, ["run", "llama-tiny", *args, "--out", str(tmp_path)])
    assert res.exit_code == 2 and "Traceback" not in res.output
