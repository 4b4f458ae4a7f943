"""Cost of the background sampler thread, as % of one core (the budget is < 1% at default rates).

Run:  python tests/benchmarks/bench_sampler.py [--seconds 5]

Every configuration runs for the same wall time in this one process. The sampler thread's CPU time
is measured two ways: inside the thread (time.thread_time, ``Sampler.cpu_time_s``) and from outside
(psutil per-thread times for the thread's native id). Meters:

* rapl: a fake powercap tree in a temp dir (same code path as real sysfs reads);
* nvml: power sampling through a fake ``pynvml`` (real NVML calls cost more than the fake's, which
  is why the x10-rate row is there: it shows the headroom);
* estimate: RSS samples of this process tree (real /proc reads).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for the fakes
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # measure this checkout, not an installed greenbench

from greenbench.meters.estimate import RSS_INTERVAL_S, EstimateMeter  # noqa: E402
from greenbench.meters.nvml import POWER_INTERVAL_S, NvmlMeter  # noqa: E402
from greenbench.meters.rapl import RaplMeter  # noqa: E402
from greenbench.meters.sampler import Sampler  # noqa: E402


def fake_pynvml(n_gpus: int):
    m = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    m.NVMLError = NVMLError
    m.nvmlInit = lambda: None
    m.nvmlShutdown = lambda: None
    m.nvmlDeviceGetCount = lambda: n_gpus
    m.nvmlDeviceGetHandleByIndex = lambda i: i
    m.nvmlDeviceGetUUID = lambda h: f"GPU-{h:08d}"
    m.nvmlDeviceGetName = lambda h: "Fake GPU"

    def no_counter(h):
        raise NVMLError_NotSupported("Not Supported")

    m.nvmlDeviceGetTotalEnergyConsumption = no_counter
    m.nvmlDeviceGetPowerUsage = lambda h: 250_000
    return m


def fake_powercap(root: Path) -> None:
    for rel, name in [("intel-rapl:0", "package-0"), ("intel-rapl:0/intel-rapl:0:0", "core"),
                      ("intel-rapl:0/intel-rapl:0:1", "dram"), ("intel-rapl:1", "package-1")]:
        d = root / rel
        d.mkdir(parents=True)
        (d / "name").write_text(name + "\n")
        (d / "energy_uj").write_text("123456789\n")
        (d / "max_energy_range_uj").write_text("262143328850\n")


def thread_cpu_psutil(native_id: int | None) -> float:
    if native_id is None:
        return 0.0
    for t in psutil.Process().threads():
        if t.id == native_id:
            return t.user_time + t.system_time
    return 0.0


def run(label: str, seconds: float, rate: float, root: Path) -> None:
    s = Sampler()
    meters = [
        RaplMeter(root, sampler=s, poll_interval_s=None if rate == 1 else 1.0 / rate),
        NvmlMeter(sampler=s, power_interval_s=POWER_INTERVAL_S / rate, env={}),
        EstimateMeter(sampler=s, rss_interval_s=RSS_INTERVAL_S / rate, tdp_w=100, logical_cpus=8, ram_w_per_gb=0.5),
    ]
    for m in meters:
        m.open()
    t = s._thread
    native = getattr(t, "native_id", None)
    cpu_in0, cpu_out0, w0 = s.cpu_time_s, thread_cpu_psutil(native), time.perf_counter()
    time.sleep(seconds)
    cpu_in, cpu_out, wall = s.cpu_time_s - cpu_in0, thread_cpu_psutil(native) - cpu_out0, time.perf_counter() - w0
    for m in meters:
        m.snapshot()
        m.close()
    s.join()
    intervals = f"rapl {meters[0].poll_interval_s():g}s, nvml {POWER_INTERVAL_S / rate:g}s, rss {RSS_INTERVAL_S / rate:g}s"
    print(
        f"{label:<22} {intervals:<40} wake-ups {s.wakeups:>5}  "
        f"in-thread {100 * cpu_in / wall:6.3f}% of a core   psutil {100 * cpu_out / wall:6.3f}%"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    sys.modules["pynvml"] = fake_pynvml(8)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fake_powercap(root)
        print(f"sampler cost over {args.seconds:g} s per configuration, {threading.active_count()} thread(s) before start")
        run("default rates", args.seconds, 1, root)
        run("x10 rates", args.seconds, 10, root)
    print("budget: < 1% of one core at the default rates")


if __name__ == "__main__":
    main()
