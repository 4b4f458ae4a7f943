"""Energy meters: one protocol for hardware counters, power samplers and estimates.

Terms:
    meter: a source of energy readings (``rapl``, ``nvml``, ``amd``, ``estimate``, ``replay``).
    domain: what one reading covers, e.g. RAPL ``package-0``/``dram-0``, NVML ``gpu:0``.
    method: how a joule was obtained, in trust order ``counter`` < ``estimate`` < ``simulated``
        (``counter`` is best): read from a hardware energy counter, computed from a model
        (TDP x utilisation, RAM W/GB), or produced by a simulated backend's cost model.
    window: the interval between two snapshots; its energy is the per-domain difference.
    basis: what a domain's joules rest on: ``energy-counter`` (a hardware energy counter),
        ``polled-power`` (power readings integrated over time), ``tdp-model`` (CPU TDP x CPU time),
        ``rss-model`` (RAM W/GB x resident GB), ``cost-model`` (a simulated backend's figures).
    update period: how often a counter's value changes (RAPL ~1 ms, NVML's energy counter ~100 ms).
        A reading is stale by up to one period, so a window spanning N periods can be off by up to
        1/N; :mod:`greenbench.runner` never reports a counter window shorter than ``N`` periods
        (:data:`MIN_WINDOW_PERIODS`). Meters without a period (estimates, simulations) report 0.
    aligned edge: a snapshot taken right after the counter was seen to advance (the meter's
        :meth:`wait_for_update` busy-polls for it), so that the reading is fresh, not stale.

A meter is opened once, snapshotted at every window edge (cheap: a few sysfs/NVML reads), and closed.
A snapshot holds *cumulative* joules per domain since ``open()``; counter wraparound and background
sampling are the meter's own business, so window arithmetic is a plain subtraction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, runtime_checkable

METHODS = ("counter", "estimate", "simulated")
_TRUST = {m: i for i, m in enumerate(METHODS)}
BASES = ("energy-counter", "polled-power", "tdp-model", "rss-model", "cost-model")

#: A window must span at least this many update periods of the slowest counter it reads when its edges
#: are aligned to that counter's updates (twice as many when they are not): a stale edge reading then
#: misses at most 1/20 (1/40 per unaligned edge pair) of the window. Configurable per run
#: (``[run] min_window_periods``).
MIN_WINDOW_PERIODS = 20
#: How long a probe may busy-poll a counter to time its updates (s), and how long it waits for the first
#: change before deciding the counter does not move here (s).
PERIOD_PROBE_TIMEOUT_S = 0.5
PERIOD_PROBE_GIVEUP_S = 0.25


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
        basis: what the joules rest on (:data:`BASES`); ``None``: ``energy-counter`` for ``counter``
            domains.
    """

    name: str
    in_total: bool = True
    method: str | None = None
    basis: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """Cumulative joules per domain since the meter was opened, at ``t_s`` (time.perf_counter).

    ``inputs``: for model-based meters, cumulative model inputs per domain (e.g. ``{"cpu": {"cpu_s": 1.2}}``).
    """

    t_s: float
    joules: dict[str, float]
    inputs: dict[str, dict[str, float]] | None = None


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
    """What every meter implements.

    Optional, read with ``getattr`` so that simple meters (replay, test fakes) need not have them:
    ``update_period_s`` (float, 0 when continuous; see :func:`update_period_s`), ``period_source``
    (``measured``/``default``), ``wait_for_update(timeout_s) -> bool`` (busy-poll until the counter
    advances: an aligned edge), ``devices() -> list[dict]`` (what the meter covers, for the result's
    ``energy.scope``), ``process_scoped`` (True: idle power is 0 by construction) and ``notes() -> list[str]``
    (anomalies seen while open: counter resets, a dropped psys zone).
    """

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
    basis: str | None = None
    inputs: dict | None = None  # additive model inputs over the window (estimates: cpu_s, gib_s)

    def as_dict(self) -> dict:
        d = {
            "name": self.name,
            "domain": self.domain,
            "method": self.method,
            "joules": self.joules,
            "in_total": self.in_total,
        }
        if self.basis:
            d["basis"] = self.basis
        if self.inputs:
            d["inputs"] = dict(self.inputs)
        return d

    def plus(self, other: "DomainEnergy") -> "DomainEnergy":
        """This row and another of the same domain added (joules and inputs)."""
        inputs = None
        if self.inputs or other.inputs:
            inputs = dict(self.inputs or {})
            for k, v in (other.inputs or {}).items():
                inputs[k] = inputs.get(k, 0.0) + v
        return DomainEnergy(self.name, self.domain, self.method, self.joules + other.joules, self.in_total,
                            self.basis, inputs)


def default_basis(method: str) -> str | None:
    return {"counter": "energy-counter", "simulated": "cost-model"}.get(method)


def window(meter: Meter, start: Snapshot, end: Snapshot) -> list[DomainEnergy]:
    """Per-domain energy of ``meter`` between two of its snapshots.

    Model inputs that a meter records beside its joules (``Snapshot.inputs``, cumulative like the
    joules) are differenced the same way and kept on the row.
    """
    out = []
    for d in meter.domains():
        j = end.joules.get(d.name, 0.0) - start.joules.get(d.name, 0.0)
        method = d.method or meter.method
        inputs = None
        if end.inputs and d.name in end.inputs:
            s_in = (start.inputs or {}).get(d.name, {})
            inputs = {k: v - s_in.get(k, 0.0) for k, v in end.inputs[d.name].items()}
        out.append(DomainEnergy(meter.name, d.name, method, max(j, 0.0), d.in_total,
                                d.basis or default_basis(method), inputs))
    return out


def update_period_s(meter) -> float:
    """A meter's counter update period in seconds (0: continuous or not a counter)."""
    return float(getattr(meter, "update_period_s", 0.0) or 0.0)


def measure_update_period(
    read: Callable[[], float],
    *,
    timeout_s: float | None = None,
    giveup_s: float | None = None,
    changes: int = 4,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[float | None, int]:
    """Time a counter's updates by reading it in a tight loop.

    Returns ``(period_s, changes_seen)``. With two or more changes the period is the median interval
    between consecutive changes. With one change, a slow counter: the period is bounded by the whole time
    watched, which is returned (a window sized to it is long enough; one sized to a fast default would not
    be). With none, None (a counter that does not move here). Polling stops after ``changes`` changes, after
    ``timeout_s``, or after ``giveup_s`` without any change.
    """
    timeout_s = PERIOD_PROBE_TIMEOUT_S if timeout_s is None else timeout_s
    giveup_s = PERIOD_PROBE_GIVEUP_S if giveup_s is None else giveup_s
    t0 = clock()
    last = read()
    stamps: list[float] = []
    while True:
        t = clock()
        if t - t0 > timeout_s or (not stamps and t - t0 > giveup_s) or len(stamps) >= changes:
            break
        v = read()
        if v != last:
            stamps.append(clock())
            last = v
    if not stamps:
        return None, 0
    if len(stamps) == 1:
        return clock() - t0, 1
    gaps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
    return gaps[len(gaps) // 2], len(stamps)


def period_source(changes: int) -> str:
    """How a period from :func:`measure_update_period` was known."""
    return "measured" if changes >= 2 else "bounded (one update seen while probing: the period is at most this)"


def wait_for_change(read: Callable[[], float], timeout_s: float, clock: Callable[[], float] = time.perf_counter,
                    precision_s: float | None = None) -> bool:
    """Busy-poll ``read()`` until its value changes (True) or ``timeout_s`` passes (False).

    A change only counts when the poll that saw it began within ``precision_s`` of the previous poll's end
    (default: 1/40 of ``timeout_s``, i.e. about a tenth of a counter period as the runner calls it): if this
    thread was descheduled in between, the counter moved at some unknown moment during the gap, so the edge
    would be late by up to the gap; the wait then goes on to the next change.
    """
    precision_s = timeout_s / 40 if precision_s is None else precision_s
    first = read()
    t_prev = clock()
    deadline = t_prev + timeout_s
    while t_prev < deadline:
        v = read()
        t = clock()
        if v != first:
            if t - t_prev <= precision_s:
                return True
            first = v  # seen late: wait for the next update
        t_prev = t
    return False


def total_joules(rows: list[DomainEnergy]) -> float:
    """Sum of the rows that count into the total (nested domains excluded)."""
    return sum(r.joules for r in rows if r.in_total)


def now() -> float:
    return time.perf_counter()
