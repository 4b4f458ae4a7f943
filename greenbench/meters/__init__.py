"""Energy meters: probing, selection and the fallback to estimates.

Terms (see :mod:`greenbench.meters.base` for meter, domain, method, window):
    probe: asking a meter whether it is usable here and, if not, why and how to fix it.
    selection: the meters a run uses, within its device scope (:mod:`greenbench.meters.scope`).
        Implicitly (no ``--meter``): every usable hardware meter that covers a device in scope
        (``rapl`` for the CPU, ``nvml`` for the work's GPUs; ``amd`` only with scope ``machine``),
        plus ``estimate`` for CPU and RAM when no CPU counter is usable; that fallback is a *warning*
        recorded in the result. Explicitly: exactly the named meters; one that is unknown, unusable or
        covers no device in scope is an error (:class:`~greenbench.errors.MeterError`).
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
from greenbench.meters.rapl import DEFAULT_ROOT, powercap_root
from greenbench.meters.sampler import Sampler
from greenbench.meters.scope import GpuRef, Scope, machine_scope

__all__ = [
    "METHODS",
    "METER_NAMES",
    "Domain",
    "DomainEnergy",
    "GpuRef",
    "Scope",
    "Meter",
    "Probe",
    "Snapshot",
    "all_meters",
    "machine_scope",
    "make",
    "powercap_root",
    "probe_all",
    "select",
    "total_joules",
    "weakest_method",
    "window",
]

#: Meters that can be selected by name (``replay`` needs recorded readings and is built in code).
METER_NAMES = ("rapl", "nvml", "amd", "estimate")
_HARDWARE = ("rapl", "nvml", "amd")


def make(
    name: str, *, sysfs_root: str | os.PathLike | None = None, sampler: Sampler | None = None, gpus=None
) -> Meter:
    """A fresh, unopened meter by name.

    Args:
        sysfs_root: powercap root for ``rapl`` (default: :func:`powercap_root`).
        gpus: for ``nvml``, the GPUs to meter (:class:`GpuRef`); None: every visible GPU.

    Raises:
        MeterError: unknown name (the message lists the valid ones).
    """
    if name == "rapl":
        from greenbench.meters.rapl import RaplMeter

        return RaplMeter(sysfs_root, sampler=sampler)
    if name == "nvml":
        from greenbench.meters.nvml import NvmlMeter

        return NvmlMeter(sampler=sampler, gpus=gpus)
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


def all_meters(*, sysfs_root: str | os.PathLike | None = None, sampler: Sampler | None = None) -> list[Meter]:
    """One fresh instance of every selectable meter, in :data:`METER_NAMES` order."""
    return [make(n, sysfs_root=sysfs_root, sampler=sampler) for n in METER_NAMES]


def probe_all(*, sysfs_root: str | os.PathLike | None = None, sampler: Sampler | None = None) -> list[Probe]:
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


def _covers(name: str, scope: Scope) -> bool:
    """Whether meter ``name`` covers a device in ``scope``."""
    if scope.machine:
        return True
    if name in ("rapl", "estimate"):
        return scope.cpu
    if name == "nvml":
        return bool(scope.gpus)
    return False  # amd: greenbench runs no work on AMD GPUs (scope machine meters them)


def select(
    requested: list[str] | None = None,
    *,
    sysfs_root: str | os.PathLike | None = None,
    sampler: Sampler | None = None,
    scope: Scope | None = None,
) -> tuple[list[Meter], list[str]]:
    """The meters to use and the warnings to record.

    Args:
        requested: meter names (``--meter``, comma-separated values allowed); None or empty means
            "every usable hardware meter in scope, else estimates".
        sysfs_root: powercap root for the RAPL meter (default: :func:`powercap_root`).
        sampler: background sampler to hand to the meters (default: the shared one).
        scope: the devices to meter (default: the whole machine).

    Returns:
        (meters, warnings): unopened meters that probed usable, and human-readable warnings.

    Raises:
        MeterError: a requested meter is unknown, not usable here, or covers no device in scope (message:
            the reason; hint: the fix).
    """
    scope = scope or machine_scope()
    names = _split(requested or [])
    warnings: list[str] = []
    gpus = None if scope.machine else scope.gpus
    if names:
        for n in names:
            if n not in METER_NAMES:
                make(n)  # raises the "unknown meter" error
        if "rapl" in names and "estimate" in names:
            raise MeterError(
                "--meter rapl and --meter estimate both cover the CPU and RAM: together they would count that energy twice",
                "choose one: rapl measures the CPU packages and DRAM, estimate models this process tree",
            )
        chosen = []
        for n in names:
            if not _covers(n, scope):
                raise MeterError(
                    f"energy meter {n!r} was requested (--meter {n}) but covers no device this work runs on "
                    f"({scope.describe()})",
                    "add --scope machine to meter every device, or drop --meter",
                )
            m = make(n, sysfs_root=sysfs_root, sampler=sampler, gpus=gpus)
            p = m.probe()
            if not p.usable:
                reason, _, fix = p.reason.partition("; fix: ")
                raise MeterError(
                    f"energy meter {n!r} was requested (--meter {n}) but is not usable here: {reason}",
                    fix or "run `greenbench meters` to see which meters work here, and drop --meter to use them",
                )
            warnings.extend(getattr(m, "warnings", []) or [])
            chosen.append(m)
        return chosen, warnings

    chosen = []
    probes: dict[str, Probe] = {}
    for n in _HARDWARE:
        if not _covers(n, scope):
            continue
        m = make(n, sysfs_root=sysfs_root, sampler=sampler, gpus=gpus)
        p = m.probe()
        probes[n] = p
        if p.usable:
            chosen.append(m)
            warnings.extend(getattr(m, "warnings", []) or [])
    if scope.gpus and not (probes.get("nvml") and probes["nvml"].usable):
        why = probes["nvml"].reason.partition("; fix: ")[0] if probes.get("nvml") else "not probed"
        warnings.append(f"the work runs on a GPU but no GPU energy meter is usable, so GPU energy is NOT included: {why}")
    if (scope.machine or scope.cpu) and not probes["rapl"].usable:
        chosen.append(make("estimate", sampler=sampler))
        why = probes["rapl"].reason.partition("; fix: ")[0].partition(": ")[0]
        warnings.append(
            f"CPU and RAM energy is ESTIMATED, not measured: no usable RAPL counter ({why}); "
            "details and fix: greenbench meters"
        )
    return chosen, warnings
