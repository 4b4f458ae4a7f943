"""Energy meters: one protocol for hardware counters, power samplers and estimates.

Terms:
    meter: a source of energy readings (``rapl``, ``nvml``, ``amd``, ``estimate``, ``replay``).
    domain: what one reading covers, e.g. RAPL ``package-0``/``dram-0``, NVML ``gpu:0``.
    method: how a joule was obtained, in trust order ``counter`` < ``estimate`` < ``simulated``
        (``counter`` is best): read from a hardware energy counter, computed from a model
        (TDP x utilisation, RAM W/GB), or produced by a simulated backend's cost model.
    window: the interval between two snapshots; its energy is the per-domain difference.

A meter is opened once, snapshotted at every window edge (cheap: a few sysfs/NVML reads), and closed.
A snapshot holds *cumulative* joules per domain since ``open()``; counter wraparound and background
sampling are the meter's own business, so window arithmetic is a plain subtraction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

METHODS = ("counter", "estimate", "simulated")
_TRUST = {m: i for i, m in enumerate(METHODS)}


def weakest_method(methods) -> str:
    """The least trusted method among ``methods`` (``counter`` < ``estimate`` < ``simulated``)."""
    ms = list(methods)
    if not ms:
        raise ValueError("no methods given")
    for m in ms:
        if m not in _TRUST:
            raise ValueError(f"unknown energy method {m!r}; expected one of {METHODS}")
    return max(ms, key=_TRUST.__getitem__)


@dataclass(frozen=True)
class Domain:
    """One energy domain of a meter.

    Attributes:
        name: domain name, unique within the meter (``package-0``, ``dram-0``, ``gpu:0``).
        in_total: whether this domain's joules add into the run's total. Domains nested inside another
            (RAPL ``core`` inside ``package``, ``package`` inside ``psys``) are reported but not added,
            so nothing is counted twice.
        method: this domain's method when it differs from its meter's (e.g. one NVML GPU with an energy
            counter and one without); ``None`` means the meter's ``method``.
    """

    name: str
    in_total: bool = True
    method: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """Cumulative joules per domain since the meter was opened, at ``t_s`` (time.perf_counter)."""

    t_s: float
    joules: dict[str, float]


@dataclass(frozen=True)
class Probe:
    """Whether a meter is usable on this machine, and why not."""

    name: str
    usable: bool
    method: str
    reason: str = ""
    domains: tuple[Domain, ...] = ()
    detail: dict = field(default_factory=dict)


@runtime_checkable
class Meter(Protocol):
    name: str
    method: str

    def probe(self) -> Probe: ...

    def domains(self) -> tuple[Domain, ...]: ...

    def open(self) -> None: ...

    def snapshot(self) -> Snapshot: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class DomainEnergy:
    """Energy of one domain over a window: a row of the result's ``energy.meters``."""

    name: str
    domain: str
    method: str
    joules: float
    in_total: bool = True

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "domain": self.domain,
            "method": self.method,
            "joules": self.joules,
            "in_total": self.in_total,
        }


def window(meter: Meter, start: Snapshot, end: Snapshot) -> list[DomainEnergy]:
    """Per-domain energy of ``meter`` between two of its snapshots."""
    out = []
    for d in meter.domains():
        j = end.joules.get(d.name, 0.0) - start.joules.get(d.name, 0.0)
        out.append(DomainEnergy(meter.name, d.name, d.method or meter.method, max(j, 0.0), d.in_total))
    return out


def total_joules(rows: list[DomainEnergy]) -> float:
    """Sum of the rows that count into the total (nested domains excluded)."""
    return sum(r.joules for r in rows if r.in_total)


def now() -> float:
    return time.perf_counter()
