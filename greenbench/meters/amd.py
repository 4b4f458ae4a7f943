"""AMD GPU energy through AMD SMI (the ``amdsmi`` Python package that ships with ROCm), imported lazily.

Terms:
    energy accumulator: ``amdsmi_get_energy_count(handle)`` returns a cumulative tick count
        (key ``energy_accumulator``; ``power`` in older amdsmi releases) and ``counter_resolution``,
        the microjoules per tick. Joules = ticks x resolution / 1e6. Method ``counter``.
    domain: ``gpu:N`` with N the position of the GPU in ``amdsmi_get_processor_handles()``.

The accumulator is 64 bits wide and does not wrap in practice; should it ever go backwards (a
driver reload), the meter re-bases on the new value and counts nothing for that read rather than
inventing energy (``resets`` counts those events). All GPUs amdsmi reports are measured
(``HIP_VISIBLE_DEVICES`` is not applied); greenbench runs no work on AMD GPUs, so the meter is used with
``--scope machine`` only.

Update period: AMD SMI does not document how often the accumulator changes. The probe times it on the
first GPU (:func:`greenbench.meters.base.measure_update_period`); when it cannot,
:data:`DEFAULT_PERIOD_S` is *assumed* and the detail says so.
"""

from __future__ import annotations

import threading

from greenbench.errors import MeterError
from greenbench.meters.base import Domain, Probe, Snapshot, measure_update_period, now, period_source

__all__ = ["AmdMeter", "DEFAULT_PERIOD_S"]

#: Assumed accumulator update period when the probe cannot time it (s): not documented by AMD SMI.
DEFAULT_PERIOD_S = 0.001


def _ticks(info: dict) -> tuple[int, float]:
    acc = info.get("energy_accumulator", info.get("power"))
    return int(acc), float(info["counter_resolution"])


class AmdMeter:
    """Per-GPU joules from the AMD SMI energy accumulator."""

    name = "amd"
    method = "counter"

    def __init__(self) -> None:
        self._smi = None
        self._handles: list | None = None
        self._domains: tuple[Domain, ...] = ()
        self._detail: dict = {}
        self._lock = threading.Lock()
        self._last: dict[str, int] = {}
        self._acc_uj: dict[str, float] = {}
        self._period: tuple[float, str] | None = None
        self.resets = 0

    @property
    def update_period_s(self) -> float:
        return (self._period or (DEFAULT_PERIOD_S, "assumed"))[0]

    @property
    def period_source(self) -> str:
        return (self._period or (DEFAULT_PERIOD_S, "assumed"))[1]

    def devices(self) -> list[dict]:
        return [{"device": "gpu", "meter": self.name, "domain": d.name, "vendor": "amd"} for d in self._domains]

    def _init(self):
        try:
            import amdsmi
        except ImportError:
            return None, (
                "the amdsmi Python package is not installed (it ships with ROCm >= 6); "
                "fix: pip install /opt/rocm/share/amd_smi (on a machine with an AMD GPU and the amdgpu driver)"
            )
        try:
            amdsmi.amdsmi_init()
        except Exception as exc:
            return None, f"amdsmi_init failed ({type(exc).__name__}: {exc}); fix: load the amdgpu driver (rocm-smi must work)"
        return amdsmi, None

    def probe(self) -> Probe:
        smi, reason = self._init()
        if smi is None:
            return Probe(self.name, False, self.method, reason)
        try:
            handles = list(smi.amdsmi_get_processor_handles())
            gpus, unsupported = [], []
            for i, h in enumerate(handles):
                try:
                    _ticks(smi.amdsmi_get_energy_count(h))
                    gpus.append(i)
                except Exception as exc:
                    unsupported.append(f"gpu:{i}: {exc}")
            if gpus and self._period is None:
                h0 = handles[gpus[0]]
                period, changes = measure_update_period(lambda: _ticks(smi.amdsmi_get_energy_count(h0))[0])
                self._period = (period, period_source(changes)) if period is not None else (
                    DEFAULT_PERIOD_S, "assumed (the counter did not move while probed)")
        except Exception as exc:
            return Probe(self.name, False, self.method, f"amdsmi query failed: {type(exc).__name__}: {exc}")
        finally:
            try:
                smi.amdsmi_shut_down()
            except Exception:
                pass
        self._detail = {"gpus": [f"gpu:{i}" for i in gpus], "update_period_s": self.update_period_s,
                        "period_source": self.period_source}
        if unsupported:
            self._detail["no_energy_counter"] = unsupported
        if not handles:
            return Probe(self.name, False, self.method, "amdsmi reports no AMD GPU", (), self._detail)
        if not gpus:
            return Probe(
                self.name, False, self.method, "no AMD GPU here exposes an energy counter: " + "; ".join(unsupported), (), self._detail
            )
        self._handles = [None] * len(gpus)
        self._domains = tuple(Domain(f"gpu:{i}") for i in gpus)
        return Probe(self.name, True, self.method, "", self._domains, self._detail)

    def domains(self) -> tuple[Domain, ...]:
        if self._handles is None:
            self.probe()
        return self._domains

    def open(self) -> None:
        p = self.probe()
        if not p.usable:
            reason, _, hint = p.reason.partition("; fix: ")
            raise MeterError(f"AMD SMI meter not usable: {reason}", hint or None)
        smi, reason = self._init()
        if smi is None:
            raise MeterError(f"AMD SMI meter not usable: {reason}")
        self._smi = smi
        all_handles = list(smi.amdsmi_get_processor_handles())
        self._handles = [(d.name, all_handles[int(d.name.split(":")[1])]) for d in self._domains]
        with self._lock:
            self._acc_uj = {d: 0.0 for d, _ in self._handles}
            self._last = {}
            for d, h in self._handles:
                self._last[d] = _ticks(smi.amdsmi_get_energy_count(h))[0]

    def snapshot(self) -> Snapshot:
        smi = self._smi
        if smi is None:
            raise RuntimeError("AmdMeter.snapshot() before open()")
        try:
            with self._lock:
                for d, h in self._handles or ():
                    ticks, res_uj = _ticks(smi.amdsmi_get_energy_count(h))
                    delta = ticks - self._last[d]
                    if delta < 0:
                        self.resets += 1
                        delta = 0
                    self._acc_uj[d] += delta * res_uj
                    self._last[d] = ticks
                out = {d: uj / 1e6 for d, uj in self._acc_uj.items()}
        except Exception as exc:
            raise MeterError(f"amdsmi energy read failed: {type(exc).__name__}: {exc}", "check that rocm-smi still works") from None
        return Snapshot(now(), out)

    def close(self) -> None:
        smi, self._smi = self._smi, None
        if smi is not None:
            try:
                smi.amdsmi_shut_down()
            except Exception:
                pass
