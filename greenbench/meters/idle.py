"""Idle baseline: the machine's draw when greenbench is doing nothing, and marginal energy.

Terms:
    idle power: per domain, joules over an idle interval divided by its length (W), measured just
        before a run with every meter already open.
    marginal energy: joules minus idle power x duration, per domain, over the summed windows of a
        run (never floored per window: two 1 s windows of 9 J and 11 J at 10 W idle add nothing, not
        1 J). It answers "what did the workload add?", while total energy answers "what did the machine
        use?"; results report both. When the idle draw exceeds what a domain measured (the machine was
        busier while idling, or the counter is coarse), the marginal energy is negative: it is reported
        as it is and flagged, never hidden.
    domain key: ``"<meter>/<domain>"``, e.g. ``"rapl/package-0"``, ``"nvml/gpu:0"``.

Meters that count only this process tree (the ``estimate`` meter: TDP x this tree's CPU time, RAM
W/GB x this tree's RSS) have no machine idle draw to subtract: their idle power is 0 by
construction (recorded with basis ``assumed``, not ``measured``), so their marginal energy equals their
total.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Mapping

from greenbench.meters.base import DomainEnergy, Meter, total_joules, window

__all__ = ["domain_key", "measure_idle", "idle_basis", "marginal", "marginal_total_j", "negative_domains"]


def domain_key(meter_name: str, domain: str) -> str:
    return f"{meter_name}/{domain}"


def measure_idle(
    meters: Iterable[Meter], duration_s: float, *, sleep: Callable[[float], None] = time.sleep
) -> dict[str, float]:
    """Idle power (W) per domain key over ``duration_s`` seconds; ``duration_s <= 0`` disables it ({}).

    The meters must already be open. Process-scoped meters (``process_scoped = True``) get 0 W.
    """
    meters = list(meters)
    if duration_s <= 0 or not meters:
        return {}
    starts = [m.snapshot() for m in meters]
    sleep(duration_s)
    ends = [m.snapshot() for m in meters]
    out: dict[str, float] = {}
    for m, s, e in zip(meters, starts, ends):
        elapsed = e.t_s - s.t_s
        if elapsed <= 0:
            elapsed = duration_s
        for row in window(m, s, e):
            key = domain_key(row.name, row.domain)
            out[key] = 0.0 if getattr(m, "process_scoped", False) else row.joules / elapsed
    return out


def idle_basis(meters: Iterable[Meter], power_w: Mapping[str, float]) -> dict[str, str]:
    """``measured`` or ``assumed`` (0 W by construction, a process-scoped meter) per domain key of ``power_w``."""
    assumed = {domain_key(m.name, d.name) for m in meters if getattr(m, "process_scoped", False) for d in m.domains()}
    return {k: ("assumed" if k in assumed else "measured") for k in power_w}


def marginal(rows: Iterable[DomainEnergy], idle_w: Mapping[str, float], duration_s: float) -> list[DomainEnergy]:
    """Each row minus its domain's idle power x ``duration_s`` (signed: negative when idle exceeds it)."""
    out = []
    for r in rows:
        j = r.joules - idle_w.get(domain_key(r.name, r.domain), 0.0) * duration_s
        out.append(DomainEnergy(r.name, r.domain, r.method, j, r.in_total, r.basis))
    return out


def marginal_total_j(rows: Iterable[DomainEnergy], idle_w: Mapping[str, float], duration_s: float) -> float:
    """Marginal joules of the rows that count into the total (signed)."""
    return total_joules(marginal(rows, idle_w, duration_s))


def negative_domains(rows: Iterable[DomainEnergy], idle_w: Mapping[str, float], duration_s: float) -> list[str]:
    """Domain keys (of rows in the total) whose idle draw x ``duration_s`` exceeds what they measured."""
    return [domain_key(r.name, r.domain) for r in marginal(rows, idle_w, duration_s) if r.in_total and r.joules < 0]
