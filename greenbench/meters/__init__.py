"""Energy meters: probing, selection and the fallback to estimates.

Terms (see :mod:`greenbench.meters.base` for meter, domain, method, window):
    probe: asking a meter whether it is usable here and, if not, why and how to fix it.
    selection: the meters a run uses. Implicitly (no ``--meter``): every usable hardware meter
        (``rapl``, ``nvml``, ``amd``), plus ``estimate`` for CPU and RAM when no CPU counter is
        usable; that fallback is a *warning* recorded in the result. Explicitly: exactly the named
        meters; one that is unknown or unusable is an error (:class:`~greenbench.errors.MeterError`).
"""

from __future__ import annotations

import os

from greenbench.errors import MeterError
from greenbench.meters.base import (
    METHODS,
    Domain,
    DomainEnergy,
    Meter,
    Probe,
    Snapshot,
    total_joules,
    weakest_method,
    window,
)
from greenbench.meters.rapl import DEFAULT_ROOT
from greenbench.meters.sampler import Sampler

__all__ = [
    "METHODS",
    "METER_NAMES",
    "Domain",
    "DomainEnergy",
    "Meter",
    "Probe",
    "Snapshot",
    "all_meters",
    "make",
    "probe_all",
    "select",
    "total_joules",
    "weakest_method",
    "window",
]

#: Meters that can be selected by name (``replay`` needs recorded readings and is built in code).
METER_NAMES = ("rapl", "nvml", "amd", "estimate")
_HARDWARE = ("rapl", "nvml", "amd")


def make(name: str, *, sysfs_root: str | os.PathLike = DEFAULT_ROOT, sampler: Sampler | None = None) -> Meter:
    """A fresh, unopened meter by name.

    Raises:
        MeterError: unknown name (the message lists the valid ones).
    """
    if name == "rapl":
        from greenbench.meters.rapl import RaplMeter

        return RaplMeter(sysfs_root, sampler=sampler)
    if name == "nvml":
        from greenbench.meters.nvml import NvmlMeter

        return NvmlMeter(sampler=sampler)
    if name == "amd":
        from greenbench.meters.amd import AmdMeter

        return AmdMeter()
    if name == "estimate":
        from greenbench.meters.estimate import EstimateMeter

        return EstimateMeter(sampler=sampler)
    raise MeterError(
        f"unknown energy meter {name!r} (--meter)",
        f"use one of: {', '.join(METER_NAMES)} (see `greenbench meters`)",
    )


def all_meters(*, sysfs_root: str | os.PathLike = DEFAULT_ROOT, sampler: Sampler | None = None) -> list[Meter]:
    """One fresh instance of every selectable meter, in :data:`METER_NAMES` order."""
    return [make(n, sysfs_root=sysfs_root, sampler=sampler) for n in METER_NAMES]


def probe_all(*, sysfs_root: str | os.PathLike = DEFAULT_ROOT, sampler: Sampler | None = None) -> list[Probe]:
    """The probe of every selectable meter, usable or not (for ``greenbench meters``)."""
    return [m.probe() for m in all_meters(sysfs_root=sysfs_root, sampler=sampler)]


def _split(requested) -> list[str]:
    names: list[str] = []
    for item in requested:
        for n in str(item).split(","):
            n = n.strip().lower()
            if n and n not in names:
                names.append(n)
    return names


def select(
    requested: list[str] | None = None,
    *,
    sysfs_root: str | os.PathLike = DEFAULT_ROOT,
    sampler: Sampler | None = None,
) -> tuple[list[Meter], list[str]]:
    """The meters to use and the warnings to record.

    Args:
        requested: meter names (``--meter``, comma-separated values allowed); None or empty means
            "every usable hardware meter, else estimates".
        sysfs_root: powercap root for the RAPL meter (tests pass a fake tree).
        sampler: background sampler to hand to the meters (default: the shared one).

    Returns:
        (meters, warnings): unopened meters that probed usable, and human-readable warnings.

    Raises:
        MeterError: a requested meter is unknown or not usable here (message: the probe's reason;
            hint: the fix).
    """
    names = _split(requested or [])
    warnings: list[str] = []
    if names:
        for n in names:
            if n not in METER_NAMES:
                make(n)  # raises the "unknown meter" error
        chosen = []
        for n in names:
            m = make(n, sysfs_root=sysfs_root, sampler=sampler)
            p = m.probe()
            if not p.usable:
                reason, _, fix = p.reason.partition("; fix: ")
                raise MeterError(
                    f"energy meter {n!r} was requested (--meter {n}) but is not usable here: {reason}",
                    fix or "run `greenbench meters` to see which meters work here, and drop --meter to use them",
                )
            chosen.append(m)
        return chosen, warnings

    chosen = []
    probes: dict[str, Probe] = {}
    for n in _HARDWARE:
        m = make(n, sysfs_root=sysfs_root, sampler=sampler)
        p = m.probe()
        probes[n] = p
        if p.usable:
            chosen.append(m)
    if not probes["rapl"].usable:
        est = make("estimate", sampler=sampler)
        ep = est.probe()
        chosen.append(est)
        why = probes["rapl"].reason.partition("; fix: ")[0]
        warnings.append(
            "no CPU energy counter is usable, so CPU and RAM energy is ESTIMATED, not measured: "
            f"CPU = {ep.detail['tdp_w']:g} W TDP / {ep.detail['logical_cpus']} logical CPUs x this process tree's CPU seconds "
            f"(TDP source: {ep.detail['tdp_source']}); RAM = {ep.detail['ram_w_per_gb']:.3g} W/GB x its RSS. "
            f"Why no counter: rapl: {why}"
        )
    return chosen, warnings
