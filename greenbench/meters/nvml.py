"""NVIDIA GPU energy through NVML (``nvidia-ml-py``, imported lazily as ``pynvml``).

Terms:
    energy counter: ``nvmlDeviceGetTotalEnergyConsumption``, millijoules since the driver was
        loaded (Volta and newer). Read at the window edges; the difference is the window's energy.
        Method ``counter``.
    power sampling: on GPUs without the counter, ``nvmlDeviceGetPowerUsage`` (milliwatts) is read by
        the background sampler every :data:`POWER_INTERVAL_S` and at every snapshot, and integrated
        with the trapezoid rule. Method ``estimate``: the readings come from the board's sensor, but
        what NVML reports is an averaged (and on some boards only partly sampled) power figure, so
        integrating it at our own rate is a model of the energy, not a reading of an energy counter;
        short windows and bursty kernels can be off by a lot. We never call that a measurement.
    domain: ``gpu:N`` with N the NVML index of the physical GPU (PCI bus order); the probe's detail
        gives each GPU's name and UUID.

Which GPUs: the ones CUDA would show this process. ``CUDA_VISIBLE_DEVICES`` is honoured like the
CUDA runtime does: a comma-separated list of integer indices, ``GPU-`` UUIDs (a unique prefix is
enough) or ``MIG-`` UUIDs; the list ends at the first entry that names no device; an empty value
hides every GPU. Integer indices are read as NVML (PCI bus) indices, i.e. as if
``CUDA_DEVICE_ORDER=PCI_BUS_ID``. A MIG instance has no energy reading of its own: the meter reads
its parent GPU, which includes the other instances' work (the detail says so).

A meter's ``method`` is the weakest of its GPUs; each domain carries its own method.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from greenbench.errors import MeterError
from greenbench.meters.base import Domain, Probe, Snapshot, weakest_method
from greenbench.meters.sampler import Sampler, shared_sampler

__all__ = ["NvmlMeter", "POWER_INTERVAL_S", "visible_devices"]

#: Default power-sampling interval for GPUs without an energy counter (s).
POWER_INTERVAL_S = 0.1


@dataclass
class _Gpu:
    index: int
    uuid: str
    name: str
    handle: object
    has_counter: bool
    mig: str | None = None  # the MIG UUID that selected this GPU, if any

    @property
    def domain(self) -> str:
        return f"gpu:{self.index}"

    @property
    def method(self) -> str:
        return "counter" if self.has_counter else "estimate"


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def visible_devices(nvml, env: Mapping[str, str]) -> tuple[list[tuple[int, str | None]], str]:
    """NVML indices of the GPUs that ``CUDA_VISIBLE_DEVICES`` selects, each with its MIG UUID or None.

    Returns:
        (devices, note): note explains an empty or truncated selection ("" when nothing to say).
    """
    count = nvml.nvmlDeviceGetCount()
    spec = env.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return [(i, None) for i in range(count)], ""
    if spec.strip() == "":
        return [], "CUDA_VISIBLE_DEVICES is set and empty, so no GPU is visible"
    uuids = []
    for i in range(count):
        h = nvml.nvmlDeviceGetHandleByIndex(i)
        uuids.append(_s(nvml.nvmlDeviceGetUUID(h)))
    out: list[tuple[int, str | None]] = []
    note = ""
    for tok in (t.strip() for t in spec.split(",")):
        idx: int | None = None
        mig: str | None = None
        if tok.lstrip("+-").isdigit():
            i = int(tok)
            idx = i if 0 <= i < count else None
        elif tok.startswith("GPU-"):
            matches = [i for i, u in enumerate(uuids) if u.startswith(tok)]
            idx = matches[0] if len(matches) == 1 else None
        elif tok.startswith("MIG-"):
            idx = _mig_parent(nvml, tok, uuids)
            mig = tok if idx is not None else None
        if idx is None:
            note = f"CUDA_VISIBLE_DEVICES entry {tok!r} names no GPU here; it and the entries after it are ignored (as CUDA does)"
            break
        if all(idx != d for d, _ in out):
            out.append((idx, mig))
    return out, note


def _mig_parent(nvml, mig_uuid: str, uuids: list[str]) -> int | None:
    try:
        h = nvml.nvmlDeviceGetHandleByUUID(mig_uuid)
        parent = nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(h)
        return int(nvml.nvmlDeviceGetIndex(parent))
    except Exception:
        pass
    for i in range(len(uuids)):  # older drivers: look through each GPU's MIG devices
        try:
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            for j in range(nvml.nvmlDeviceGetMaxMigDeviceCount(h)):
                try:
                    m = nvml.nvmlDeviceGetMigDeviceHandleByIndex(h, j)
                except Exception:
                    continue
                if _s(nvml.nvmlDeviceGetUUID(m)) == mig_uuid:
                    return i
        except Exception:
            continue
    return None


class NvmlMeter:
    """Per-GPU joules from NVML: the energy counter where the GPU has one, else integrated power.

    Args:
        sampler: background sampler for power sampling (default: the shared one).
        power_interval_s: power-sampling interval for GPUs without an energy counter.
        env: environment to read ``CUDA_VISIBLE_DEVICES`` from (default ``os.environ``).
        clock: monotonic clock (s) used to integrate power (injectable for tests).
    """

    name = "nvml"

    def __init__(
        self,
        *,
        sampler: Sampler | None = None,
        power_interval_s: float = POWER_INTERVAL_S,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self._sampler = sampler
        self._interval = power_interval_s
        self._env = env
        self._clock = clock
        self._gpus: list[_Gpu] | None = None
        self._nvml = None
        self._inited = False
        self._lock = threading.Lock()
        self._base_mj: dict[str, int] = {}
        self._acc_j: dict[str, float] = {}
        self._last_p: dict[str, tuple[float, float]] = {}  # domain -> (t_s, power_w)
        self._task: int | None = None
        self._note = ""

    @property
    def method(self) -> str:
        gpus = self._gpus or []
        return weakest_method([g.method for g in gpus]) if gpus else "counter"

    # -- discovery ------------------------------------------------------------------------
    def _init(self):
        """Import pynvml and nvmlInit(); returns (module, None) or (None, reason)."""
        try:
            import pynvml
        except ImportError:
            return None, "the nvidia-ml-py package (module pynvml) is not installed; fix: pip install nvidia-ml-py"
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
            return None, (
                f"NVML could not start ({type(exc).__name__}: {exc}): no NVIDIA driver or no NVIDIA GPU here; "
                "fix: install the NVIDIA driver (nvidia-smi must work)"
            )
        return pynvml, None

    def _discover(self, nvml) -> tuple[list[_Gpu], str]:
        env = os.environ if self._env is None else self._env
        sel, note = visible_devices(nvml, env)
        gpus: list[_Gpu] = []
        skipped = []
        for idx, mig in sel:
            h = nvml.nvmlDeviceGetHandleByIndex(idx)
            name = _s(nvml.nvmlDeviceGetName(h))
            uuid = _s(nvml.nvmlDeviceGetUUID(h))
            try:
                nvml.nvmlDeviceGetTotalEnergyConsumption(h)
                has_counter = True
            except nvml.NVMLError:
                has_counter = False
            if not has_counter:
                try:
                    nvml.nvmlDeviceGetPowerUsage(h)
                except nvml.NVMLError as exc:
                    skipped.append(f"gpu:{idx} ({name}) has neither an energy counter nor a power reading: {exc}")
                    continue
            gpus.append(_Gpu(idx, uuid, name, h, has_counter, mig))
        if skipped:
            note = "; ".join([note, *skipped]) if note else "; ".join(skipped)
        return gpus, note

    def _detail(self) -> dict:
        gpus = self._gpus or []
        d: dict = {
            "gpus": [
                {
                    "domain": g.domain,
                    "name": g.name,
                    "uuid": g.uuid,
                    "method": g.method,
                    "source": "nvmlDeviceGetTotalEnergyConsumption" if g.has_counter else
                    f"nvmlDeviceGetPowerUsage every {self._interval} s, trapezoid-integrated",
                    **({"mig": g.mig, "note": "MIG instance: energy is the whole parent GPU's"} if g.mig else {}),
                }
                for g in gpus
            ],
            "cuda_visible_devices": (os.environ if self._env is None else self._env).get("CUDA_VISIBLE_DEVICES"),
        }
        if self._note:
            d["note"] = self._note
        return d

    # -- Meter protocol -------------------------------------------------------------------
    def probe(self) -> Probe:
        nvml, reason = self._init()
        if nvml is None:
            return Probe(self.name, False, "counter", reason)
        try:
            self._gpus, self._note = self._discover(nvml)
        except Exception as exc:
            return Probe(self.name, False, "counter", f"NVML query failed: {type(exc).__name__}: {exc}")
        finally:
            try:  # NVML init is reference-counted: this balances the probe's own nvmlInit()
                nvml.nvmlShutdown()
            except Exception:
                pass
        if not self._gpus:
            why = self._note or "NVML reports no GPU"
            return Probe(self.name, False, "counter", why, (), self._detail())
        return Probe(self.name, True, self.method, "", self.domains(), self._detail())

    def domains(self) -> tuple[Domain, ...]:
        if self._gpus is None:
            self.probe()
        return tuple(Domain(g.domain, True, g.method) for g in self._gpus or ())

    def open(self) -> None:
        p = self.probe()
        if not p.usable:
            reason, _, hint = p.reason.partition("; fix: ")
            raise MeterError(f"NVML meter not usable: {reason}", hint or None)
        nvml, reason = self._init()
        if nvml is None:
            raise MeterError(f"NVML meter not usable: {reason}")
        self._nvml, self._inited = nvml, True
        self._gpus, self._note = self._discover(nvml)  # fresh handles for this session
        with self._lock:
            self._acc_j = {g.domain: 0.0 for g in self._gpus}
            self._base_mj = {}
            self._last_p = {}
            t = self._clock()
            for g in self._gpus:
                if g.has_counter:
                    self._base_mj[g.domain] = int(nvml.nvmlDeviceGetTotalEnergyConsumption(g.handle))
                else:
                    self._last_p[g.domain] = (t, nvml.nvmlDeviceGetPowerUsage(g.handle) / 1e3)
        if any(not g.has_counter for g in self._gpus):
            self._task = (self._sampler or shared_sampler()).add(self._sample_power, self._interval, name="nvml-power")

    def _sample_power(self) -> None:
        with self._lock:
            nvml = self._nvml
            if nvml is None:
                return
            for g in self._gpus or ():
                if g.has_counter:
                    continue
                p_w = nvml.nvmlDeviceGetPowerUsage(g.handle) / 1e3
                t = self._clock()
                t0, p0 = self._last_p[g.domain]
                self._acc_j[g.domain] += (p0 + p_w) / 2.0 * max(t - t0, 0.0)
                self._last_p[g.domain] = (t, p_w)

    def snapshot(self) -> Snapshot:
        nvml = self._nvml
        if nvml is None:
            raise RuntimeError("NvmlMeter.snapshot() before open()")
        task = (self._sampler or shared_sampler()).task(self._task) if self._task is not None else None
        if task is not None and task.error is not None:  # sampled energy has a gap: not trustworthy
            raise MeterError(
                f"a background NVML power sample failed: {task.error}",
                "check nvidia-smi; the GPU may have fallen off the bus",
            )
        try:
            self._sample_power()
            with self._lock:
                out = {}
                for g in self._gpus or ():
                    if g.has_counter:
                        mj = int(nvml.nvmlDeviceGetTotalEnergyConsumption(g.handle))
                        out[g.domain] = (mj - self._base_mj[g.domain]) / 1e3
                    else:
                        out[g.domain] = self._acc_j[g.domain]
        except nvml.NVMLError as exc:
            raise MeterError(f"NVML read failed: {exc}", "check nvidia-smi; the GPU may have fallen off the bus") from None
        return Snapshot(self._clock(), out)

    def close(self) -> None:
        if self._task is not None:
            (self._sampler or shared_sampler()).remove(self._task)
            self._task = None
        with self._lock:  # a power sample in flight finishes first; later ones see no NVML and return
            nvml, self._nvml = self._nvml, None
        if nvml is not None and self._inited:
            self._inited = False
            try:
                nvml.nvmlShutdown()
            except Exception:
                pass
