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
    update period: the energy counter changes about every 100 ms (measured on an H200, driver 580:
        p10 97 ms, p90 102.5 ms, idle and under load; shared/gpu-machine.md). The probe times it on the
        first GPU with a counter (:func:`greenbench.meters.base.measure_update_period`); when the counter
        does not move during the probe, :data:`DEFAULT_PERIOD_S` is used and the detail says so. For
        GPUs measured by polled power the period is the polling interval.

Which GPUs (scope ``machine``, ``gpus=None``): the ones CUDA would show this process. ``CUDA_VISIBLE_DEVICES`` is honoured like the
CUDA runtime does: a comma-separated list of integer indices, ``GPU-`` UUIDs (a unique prefix is
enough) or ``MIG-`` UUIDs; the list ends at the first entry that names no device; an empty value
hides every GPU. Integer indices are read as NVML (PCI bus) indices, i.e. as if
``CUDA_DEVICE_ORDER=PCI_BUS_ID``. A MIG instance has no energy reading of its own: the meter reads
its parent GPU, which includes the other instances' work (the detail says so).

Which GPUs (scope ``devices``, ``gpus=[GpuRef, ...]``): the GPUs the work runs on
(:mod:`greenbench.meters.scope`). A reference with a UUID selects that GPU exactly (a MIG UUID: its
parent). A bare CUDA ordinal k selects the k-th entry of ``CUDA_VISIBLE_DEVICES``; when that entry is an
integer (or the variable is unset) the ordinal is read in PCI bus order, which matches CUDA's own
numbering only with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (CUDA's default is ``FASTEST_FIRST``): with more
than one GPU on the machine the meter then warns.

A meter's ``method`` is the weakest of its GPUs; each domain carries its own method.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from greenbench.errors import MeterError
from greenbench.meters.base import (
    Domain,
    Probe,
    Snapshot,
    measure_update_period,
    period_source,
    wait_for_change,
    weakest_method,
)
from greenbench.meters.sampler import Sampler, shared_sampler

__all__ = ["NvmlMeter", "POWER_INTERVAL_S", "DEFAULT_PERIOD_S", "visible_devices", "resolve_gpus"]

#: Default power-sampling interval for GPUs without an energy counter (s).
POWER_INTERVAL_S = 0.1
#: NVML energy-counter update period when the probe cannot time it (s); measured on an H200 (see above).
DEFAULT_PERIOD_S = 0.1
#: How long the probe may poll an NVML energy counter to time its updates (s): 4 changes at 100 ms.
PERIOD_PROBE_TIMEOUT_S = 0.6


@dataclass
class _Gpu:
    index: int
    uuid: str
    name: str
    handle: object
    has_counter: bool
    mig: str | None = None  # the MIG UUID that selected this GPU, if any
    selected_by: str = "visible"  # how the scope picked it: uuid, mig uuid, ordinal ..., visible (machine scope)

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


def resolve_gpus(nvml, refs, env: Mapping[str, str]) -> tuple[list[tuple[int, str | None, str]], list[str]]:
    """NVML indices of the GPUs that ``refs`` (:class:`~greenbench.meters.scope.GpuRef`) name.

    Returns:
        ([(nvml_index, mig_uuid_or_None, how_selected)], warnings).

    Raises:
        MeterError: a reference names no GPU here.
    """
    count = nvml.nvmlDeviceGetCount()
    uuids = [_s(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i))) for i in range(count)]
    visible, _ = visible_devices(nvml, env)
    spec = env.get("CUDA_VISIBLE_DEVICES")
    entries = [t.strip() for t in spec.split(",")] if spec else []
    out: list[tuple[int, str | None, str]] = []
    warnings: list[str] = []
    for ref in refs:
        if ref.uuid:
            if ref.uuid.startswith("MIG-"):
                idx = _mig_parent(nvml, ref.uuid, uuids)
                mig, how = ref.uuid, "MIG UUID from the framework"
            else:
                matches = [i for i, u in enumerate(uuids) if u.startswith(ref.uuid) or ref.uuid.startswith(u)]
                idx = matches[0] if len(matches) == 1 else None
                mig, how = None, "UUID from the framework"
            if idx is None:
                raise MeterError(f"the work runs on GPU {ref.uuid}, which NVML does not list here",
                                 "check CUDA_VISIBLE_DEVICES and nvidia-smi -L")
        else:
            k = ref.ordinal
            if not 0 <= k < len(visible):
                raise MeterError(
                    f"the work runs on CUDA device {k}, but only {len(visible)} GPU(s) are visible to this process",
                    "check CUDA_VISIBLE_DEVICES and the backend's device id",
                )
            idx, mig = visible[k]
            entry = entries[k] if k < len(entries) else None
            if entry and (entry.startswith("GPU-") or entry.startswith("MIG-")):
                how = f"CUDA device {k} = CUDA_VISIBLE_DEVICES entry {entry}"
            else:
                how = f"CUDA device {k}, read in PCI bus order"
                if count > 1 and env.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST") != "PCI_BUS_ID":
                    warnings.append(
                        f"GPU metered by position: CUDA device {k} was taken as NVML gpu:{idx} (PCI bus order), but CUDA "
                        "numbers GPUs fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID, so this may be another GPU; set "
                        "CUDA_DEVICE_ORDER=PCI_BUS_ID or list GPU UUIDs in CUDA_VISIBLE_DEVICES (nvidia-smi -L)"
                    )
        if all(idx != d for d, _, _ in out):
            out.append((idx, mig, how))
    return out, warnings


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
        gpus: the GPUs the work runs on (:class:`~greenbench.meters.scope.GpuRef`); None: every visible GPU.
    """

    name = "nvml"

    def __init__(
        self,
        *,
        sampler: Sampler | None = None,
        power_interval_s: float = POWER_INTERVAL_S,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        gpus=None,
    ):
        self._sampler = sampler
        self._interval = power_interval_s
        self._env = env
        self._clock = clock
        self._refs = None if gpus is None else tuple(gpus)
        self._period: tuple[float, str] | None = None
        self.warnings: list[str] = []
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
        if self._refs is None:
            vis, note = visible_devices(nvml, env)
            sel = [(i, mig, "visible to this process (machine scope)") for i, mig in vis]
        else:
            sel, self.warnings = resolve_gpus(nvml, self._refs, env)
            note = "" if sel else "the work runs on no GPU"
        gpus: list[_Gpu] = []
        skipped = []
        for idx, mig, how in sel:
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
            gpus.append(_Gpu(idx, uuid, name, h, has_counter, mig, how))
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
                    "basis": "energy-counter" if g.has_counter else "polled-power",
                    "selected_by": g.selected_by,
                    **({"mig": g.mig, "note": "MIG instance: energy is the whole parent GPU's"} if g.mig else {}),
                }
                for g in gpus
            ],
            "cuda_visible_devices": (os.environ if self._env is None else self._env).get("CUDA_VISIBLE_DEVICES"),
            "update_period_s": (self._period or (self._default_period(), "default"))[0],
            "period_source": (self._period or (0.0, "default"))[1],
        }
        if self.warnings:
            d["warnings"] = list(self.warnings)
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
            self._time_updates(nvml)
        except MeterError:
            raise
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

    def _default_period(self) -> float:
        gpus = self._gpus or []
        return DEFAULT_PERIOD_S if any(g.has_counter for g in gpus) or not gpus else self._interval

    def _time_updates(self, nvml) -> None:
        if self._period is not None:
            return
        counters = [g for g in self._gpus or () if g.has_counter]
        if not counters:
            self._period = (self._interval, "polling interval")
            return
        h = counters[0].handle
        period, changes = measure_update_period(
            lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(h), timeout_s=PERIOD_PROBE_TIMEOUT_S,
            giveup_s=PERIOD_PROBE_TIMEOUT_S / 2,
        )
        self._period = (period, period_source(changes)) if period is not None else (
            DEFAULT_PERIOD_S, "default (the counter did not move while probed)")

    @property
    def update_period_s(self) -> float:
        if self._period is None:
            self.probe()
        return (self._period or (self._default_period(), "default"))[0]

    @property
    def period_source(self) -> str:
        return (self._period or (0.0, "default"))[1]

    @property
    def aligns_all_domains(self) -> bool:
        """Whether one aligned edge is fresh for every domain (one GPU with a counter, nothing polled)."""
        gpus = self._gpus or []
        return len(gpus) == 1 and gpus[0].has_counter

    def wait_for_update(self, timeout_s: float) -> bool:
        """Busy-poll the first GPU's energy counter until it advances (an aligned window edge)."""
        nvml = self._nvml
        counters = [g for g in self._gpus or () if g.has_counter]
        if nvml is None or not counters:
            return False
        h = counters[0].handle
        try:
            return wait_for_change(lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(h), timeout_s)
        except Exception:
            return False

    def domains(self) -> tuple[Domain, ...]:
        if self._gpus is None:
            self.probe()
        return tuple(
            Domain(g.domain, True, g.method, "energy-counter" if g.has_counter else "polled-power")
            for g in self._gpus or ()
        )

    def devices(self) -> list[dict]:
        return [
            {"device": "gpu", "meter": self.name, "domain": g.domain, "name": g.name, "uuid": g.uuid,
             "selected_by": g.selected_by, **({"mig": g.mig} if g.mig else {})}
            for g in self._gpus or ()
        ]

    def notes(self) -> list[str]:
        out = list(self.warnings)
        for g in self._gpus or ():
            if g.mig:
                out.append(f"{g.domain} is metered for MIG instance {g.mig}: NVML reads the whole parent GPU, "
                           "including other instances' work")
        return out

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
