"""NVML through a fake ``pynvml`` module injected into sys.modules (the real module's interface)."""

from __future__ import annotations

import sys
import types

import pytest

from greenbench.errors import MeterError
from greenbench.meters import select, window
from greenbench.meters.nvml import NvmlMeter
from greenbench.meters.sampler import Sampler

from fakes import make_pynvml


class FakeClock:
    def __init__(self, t=0.0):
        self.t = t

    def __call__(self):
        return self.t


UUIDS = ["GPU-aaaa1111-0000-0000-0000-000000000000", "GPU-bbbb2222-0000-0000-0000-000000000000", "GPU-bbbc3333-0000-0000-0000-000000000000"]


@pytest.fixture
def fake(monkeypatch):
    gpus = [
        {"uuid": UUIDS[0], "name": "NVIDIA A100-SXM4-40GB", "energy_mj": 1_000_000, "power_mw": 250_000, "migs": ["MIG-1234"]},
        {"uuid": UUIDS[1], "name": "Tesla P4", "energy_mj": None, "power_mw": 100_000},
        {"uuid": UUIDS[2], "name": "NVIDIA H100", "energy_mj": 5_000, "power_mw": 300_000},
    ]
    mod = make_pynvml(gpus)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return mod


@pytest.fixture
def sampler():
    s = Sampler()
    yield s
    s.join()


def test_counter_and_power_sampling(fake, sampler):
    clock = FakeClock(10.0)
    m = NvmlMeter(sampler=sampler, power_interval_s=3600, clock=clock)
    p = m.probe()
    assert p.usable and fake.inits == 0  # the probe balanced its own nvmlInit
    assert {d.name: d.method for d in p.domains} == {"gpu:0": "counter", "gpu:1": "estimate", "gpu:2": "counter"}
    assert m.method == "estimate"  # the weakest of its GPUs
    m.open()
    try:
        s0 = m.snapshot()
        fake.gpus[0]["energy_mj"] += 5_000  # +5 J on the counter
        fake.gpus[2]["energy_mj"] += 250
        clock.t = 11.0
        fake.gpus[1]["power_mw"] = 200_000
        m._sample_power()  # what the sampler thread does: (100 W + 200 W) / 2 x 1 s = 150 J
        clock.t = 13.0  # at snapshot: (200 + 200) / 2 x 2 s = 400 J
        s1 = m.snapshot()
    finally:
        m.close()
    assert fake.inits == 0
    rows = {r.domain: r for r in window(m, s0, s1)}
    assert rows["gpu:0"].joules == pytest.approx(5.0) and rows["gpu:0"].method == "counter"
    assert rows["gpu:2"].joules == pytest.approx(0.25)
    assert rows["gpu:1"].joules == pytest.approx(550.0) and rows["gpu:1"].method == "estimate"
    gpus = {g["domain"]: g for g in p.detail["gpus"]}
    assert "TotalEnergyConsumption" in gpus["gpu:0"]["source"] and "PowerUsage" in gpus["gpu:1"]["source"]


def test_all_counters_means_counter_method(fake, sampler):
    fake.gpus[1]["energy_mj"] = 7
    m = NvmlMeter(sampler=sampler)
    assert m.probe().method == "counter" and m.method == "counter"
    m.open()
    assert m._task is None  # nothing to sample: no sampler task
    m.close()


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("1", ["gpu:1"]),
        ("2,0", ["gpu:2", "gpu:0"]),
        ("GPU-bbbb", ["gpu:1"]),  # a unique UUID prefix
        ("0,7,1", ["gpu:0"]),  # CUDA stops at the first invalid entry
        ("GPU-bbb,2", []),  # ambiguous prefix is invalid: nothing after it either
        ("MIG-1234", ["gpu:0"]),  # a MIG instance is measured through its parent GPU
        (" 2 , 2 ", ["gpu:2"]),
    ],
)
def test_cuda_visible_devices(fake, sampler, monkeypatch, spec, expected):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", spec)
    m = NvmlMeter(sampler=sampler)
    p = m.probe()
    assert [d.name for d in p.domains] == expected
    assert p.usable == bool(expected)
    if spec.startswith("MIG-"):
        assert p.detail["gpus"][0]["mig"] == "MIG-1234" and "whole parent GPU" in p.detail["gpus"][0]["note"]
    if spec == "0,7,1":
        assert "'7'" in p.detail["note"]


def test_cuda_visible_devices_empty_or_minus_one(fake, sampler, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    p = NvmlMeter(sampler=sampler).probe()
    assert not p.usable and "empty" in p.reason
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    p = NvmlMeter(sampler=sampler).probe()
    assert not p.usable and "'-1'" in p.reason
    with pytest.raises(MeterError) as ei:
        select(["nvml"], sampler=sampler)
    assert "nvml" in ei.value.message


def test_env_parameter_overrides_os_environ(fake, sampler):
    assert [d.name for d in NvmlMeter(sampler=sampler, env={"CUDA_VISIBLE_DEVICES": "2"}).domains()] == ["gpu:2"]


def test_no_driver(monkeypatch, sampler, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", make_pynvml([], init_error=True))
    p = NvmlMeter(sampler=sampler).probe()
    assert not p.usable and "NVIDIA driver" in p.reason and "NVMLError_LibraryNotFound" in p.reason
    with pytest.raises(MeterError) as ei:
        select(["nvml"], sysfs_root=tmp_path, sampler=sampler)
    assert "install the NVIDIA driver" in (ei.value.hint or "")
    meters, _ = select(None, sysfs_root=tmp_path, sampler=sampler)
    assert "nvml" not in [m.name for m in meters]


def test_pynvml_missing(monkeypatch, sampler):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    p = NvmlMeter(sampler=sampler).probe()
    assert not p.usable and "nvidia-ml-py" in p.reason


def test_no_gpu(monkeypatch, sampler):
    monkeypatch.setitem(sys.modules, "pynvml", make_pynvml([]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    p = NvmlMeter(sampler=sampler).probe()
    assert not p.usable and "no GPU" in p.reason


def test_select_includes_usable_nvml(fake, sampler, tmp_path):
    meters, warnings = select(None, sysfs_root=tmp_path, sampler=sampler)
    assert [m.name for m in meters] == ["nvml", "estimate"]  # no RAPL in tmp_path: CPU estimated
    assert warnings and "ESTIMATED" in warnings[0]


@pytest.mark.gpu
def test_real_gpu():
    pytest.importorskip("pynvml")
    m = NvmlMeter()
    p = m.probe()
    if not p.usable:
        pytest.skip(p.reason)
    m.open()
    try:
        s0 = m.snapshot()
        s1 = m.snapshot()
    finally:
        m.close()
    assert all(r.joules >= 0 for r in window(m, s0, s1))


def test_failed_background_power_sample_fails_the_next_snapshot(fake):
    import time

    s = Sampler()
    m = NvmlMeter(sampler=s, power_interval_s=0.01)
    m.open()
    try:
        fake.gpus[1]["power_mw"] = None  # the sampled GPU's reading now fails in the background thread
        task = s.task(m._task)
        deadline = time.monotonic() + 2
        while task.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert task.error is not None
        fake.gpus[1]["power_mw"] = 100_000
        with pytest.raises(MeterError, match="background NVML power sample failed"):
            m.snapshot()
    finally:
        m.close()
        s.join()
    assert fake.inits == 0
