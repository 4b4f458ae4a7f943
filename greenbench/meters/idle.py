"""Idle baseline: the machine's draw when greenbench is doing nothing, and marginal energy.

Terms:
    idle power: per domain, joules over an idle interval divided by its length (W), measured just
        before a run with every meter already open (:meth:`greenbench.runner.MeterSet.measure_idle`, which
        lengthens the interval to what the counters resolve).
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

from typing import Iterable, Mapping

from greenbench.meters.base import DomainEnergy, Meter, total_joules

__all__ = ["domain_key", "idle_basis", "marginal", "marginal_total_j"]


def domain_key(meter_name: str, domain: str) -> str:
    return f"{meter_name}/{domain}"


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
