"""RAPL energy counters read through the Linux powercap sysfs interface (method ``counter``).

Terms:
    RAPL: Running Average Power Limit, the energy counters of Intel (Sandy Bridge+) and AMD (Zen+)
        CPUs. Linux exposes them under ``/sys/class/powercap`` when the ``intel_rapl_msr`` driver is
        loaded (it serves AMD CPUs too, with the same ``intel-rapl`` names).
    zone: one powercap directory with an ``energy_uj`` file, e.g. ``intel-rapl:0`` (name ``package-0``)
        or its nested sub-zone ``intel-rapl:0:0`` (name ``core``). Zone names seen in practice:
        ``package-N``, ``core``, ``uncore`` (client GPU), ``dram`` and ``psys`` (the whole platform).
    domain: the name greenbench gives a zone's energy: ``package-0``, ``core-0``, ``uncore-0``,
        ``dram-0``, ``psys`` (a sub-zone gets its socket number from its parent package).
    wraparound: ``energy_uj`` counts up to ``max_energy_range_uj`` and restarts from 0. Every read adds
        the delta since the previous read; a negative delta means one wrap, so the range is added.

What adds into the total (``Domain.in_total``): if a ``psys`` zone exists it *is* the total and
every other zone is reported but not added. Otherwise the total is package + dram per socket.
``core`` and ``uncore`` are parts of their package and are never added. ``dram`` is a sysfs child of
its package but not part of the package's energy, so it is added.

Zones that appear twice (the MSR interface ``intel-rapl`` and the MMIO mirror ``intel-rapl-mmio``
of the same package on some laptops) are read once: the MSR zone wins.

Maximum safe read interval: two wraps between reads would lose a whole range without a trace, so a
zone must be read at least every ``max_energy_range_uj / max power``. Typical ranges are 262 kJ
(package) and 65 kJ (dram); with an assumed worst-case draw of :data:`ASSUMED_MAX_POWER_W` per zone
(or the zone's own ``constraint_*_max_power_uw`` when larger) that is >= 65 s. While the meter is
open, the background sampler reads every zone at a quarter of the smallest safe interval (clamped to
:data:`MIN_POLL_S`..:data:`MAX_POLL_S`; 16 s for a 65 kJ zone), so at most one wrap can happen
between reads even at four times the assumed power.

Permissions: since Linux 5.10, ``energy_uj`` is readable only by root (CVE-2020-8694, the
"PLATYPUS" power side channel). The probe then says why and how to grant read access
(:func:`permission_hint`); widening access re-opens that side channel to local users, so prefer a
group over world-readable on shared machines.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from greenbench.errors import MeterError
from greenbench.meters.base import Domain, Probe, Snapshot, now
from greenbench.meters.sampler import Sampler, shared_sampler

__all__ = ["RaplMeter", "DEFAULT_ROOT", "permission_hint", "ASSUMED_MAX_POWER_W"]

DEFAULT_ROOT = "/sys/class/powercap"
#: Worst-case draw assumed for one zone when computing the safe read interval (W).
ASSUMED_MAX_POWER_W = 1000.0
MIN_POLL_S = 1.0
MAX_POLL_S = 60.0

_ZONE_RE = re.compile(r"^(?P<type>[a-z][a-z0-9_-]*):(?P<idx>\d+(?::\d+)*)$")


@dataclass
class _Zone:
    zone_id: str  # directory name, e.g. intel-rapl:0:1
    control_type: str  # intel-rapl, intel-rapl-mmio, ...
    path: Path
    name: str  # contents of the zone's `name` file
    range_uj: int
    max_power_w: float | None
    domain: str = ""
    in_total: bool = False

    @property
    def parent_id(self) -> str | None:
        head, sep, _ = self.zone_id.rpartition(":")
        return head if sep and ":" in head else None

    @property
    def safe_interval_s(self) -> float:
        power = max(ASSUMED_MAX_POWER_W, self.max_power_w or 0.0)
        return (self.range_uj / 1e6) / power


def _read_int(path: Path) -> int:
    with open(path, "rb") as fh:
        return int(fh.read().strip())


def _read_text(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read().strip()


def permission_hint(control_type: str = "intel-rapl") -> str:
    """How to let a non-root user read the counters (per boot, or permanently with udev)."""
    t = control_type
    return (
        f"for this boot: sudo chmod a+r /sys/class/powercap/{t}:*/energy_uj /sys/class/powercap/{t}:*:*/energy_uj ; "
        "to keep it across reboots, put this line in /etc/udev/rules.d/99-greenbench-rapl.rules: "
        f'ACTION=="add", SUBSYSTEM=="powercap", KERNEL=="{t}:*", RUN+="/bin/chmod a+r /sys%p/energy_uj" '
        "and run: sudo udevadm trigger --action=add --subsystem-match=powercap "
        '(on a shared machine use a group instead: RUN+="/bin/chgrp power /sys%p/energy_uj", '
        'RUN+="/bin/chmod g+r /sys%p/energy_uj"; readable counters re-open the CVE-2020-8694 power side channel)'
    )


class RaplMeter:
    """Cumulative joules per RAPL zone, from powercap sysfs.

    Args:
        sysfs_root: the powercap directory (tests pass a fake tree in tmp_path).
        sampler: the background sampler used for wraparound-safety reads (default: the shared one).
        poll_interval_s: override the wraparound-safety read interval (default: derived from the
            zones' ranges, see the module docstring).
    """

    name = "rapl"
    method = "counter"

    def __init__(
        self,
        sysfs_root: str | os.PathLike = DEFAULT_ROOT,
        *,
        sampler: Sampler | None = None,
        poll_interval_s: float | None = None,
    ):
        self.root = Path(sysfs_root)
        self._sampler = sampler
        self._poll_override = poll_interval_s
        self._zones: list[_Zone] | None = None
        self._lock = threading.Lock()
        self._last_uj: dict[str, int] = {}
        self._acc_uj: dict[str, int] = {}
        self._wraps: dict[str, int] = {}
        self._task: int | None = None

    # -- discovery ------------------------------------------------------------------------
    def _discover(self) -> list[_Zone]:
        if self._zones is not None:
            return self._zones
        found: dict[str, Path] = {}

        def walk(d: Path, depth: int) -> None:
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except OSError:
                return
            for e in entries:
                if not _ZONE_RE.match(e.name) or not e.is_dir():
                    continue
                p = Path(e.path)
                if (p / "energy_uj").exists() and e.name not in found:
                    found[e.name] = p
                if depth < 3:
                    walk(p, depth + 1)

        walk(self.root, 0)
        zones: list[_Zone] = []
        for zone_id, path in found.items():
            m = _ZONE_RE.match(zone_id)
            assert m is not None
            try:
                name = _read_text(path / "name")
            except OSError:
                name = zone_id
            try:
                range_uj = _read_int(path / "max_energy_range_uj")
            except (OSError, ValueError):
                range_uj = 2**32  # the architectural counter is 32 bits of energy units
            max_power = None
            for c in sorted(path.glob("constraint_*_max_power_uw")):
                try:
                    v = _read_int(c) / 1e6
                except (OSError, ValueError):
                    continue
                if v > 0:
                    max_power = max(max_power or 0.0, v)
            zones.append(_Zone(zone_id, m.group("type"), path, name, range_uj, max_power))
        # MSR zones first, so an MMIO mirror of the same domain is the one dropped.
        zones.sort(key=lambda z: (z.control_type != "intel-rapl", z.control_type, _sort_key(z.zone_id)))
        by_id = {z.zone_id: z for z in zones}
        used: set[str] = set()
        kept: list[_Zone] = []
        for z in zones:
            domain = _domain_name(z, by_id)
            if domain in used:
                if z.control_type != "intel-rapl" and any(k.domain == domain and k.control_type == "intel-rapl" for k in kept):
                    continue  # mirrored counter (intel-rapl-mmio)
                domain = f"{domain}@{z.zone_id}"
            z.domain = domain
            used.add(domain)
            kept.append(z)
        has_psys = any(z.name.startswith("psys") for z in kept)
        for z in kept:
            if has_psys:
                z.in_total = z.name.startswith("psys")
            else:
                z.in_total = z.name.startswith("package") or z.name.startswith("dram")
        self._zones = kept
        return kept

    def poll_interval_s(self) -> float:
        """Seconds between the sampler's wraparound-safety reads."""
        if self._poll_override is not None:
            return self._poll_override
        zones = self._discover()
        if not zones:
            return MAX_POLL_S
        safe = min(z.safe_interval_s for z in zones)
        return min(MAX_POLL_S, max(MIN_POLL_S, safe / 4))

    # -- Meter protocol -------------------------------------------------------------------
    def probe(self) -> Probe:
        if not self.root.is_dir():
            return Probe(
                self.name,
                False,
                self.method,
                f"{self.root} does not exist: this kernel exposes no powercap interface (not Linux, a VM or "
                "container without it, or the intel_rapl_msr driver is not loaded); fix: sudo modprobe intel_rapl_msr",
            )
        zones = self._discover()
        if not zones:
            return Probe(
                self.name,
                False,
                self.method,
                f"no RAPL zone with an energy_uj file under {self.root} (no RAPL on this CPU, or a VM that hides it; "
                "on bare metal try: sudo modprobe intel_rapl_msr)",
            )
        for z in zones:
            try:
                _read_int(z.path / "energy_uj")
            except PermissionError:
                return Probe(
                    self.name,
                    False,
                    self.method,
                    f"permission denied reading {z.path / 'energy_uj'}: since Linux 5.10 RAPL counters are "
                    f"root-only (CVE-2020-8694); fix: {permission_hint(z.control_type)}",
                    self.domains(),
                    self._detail(zones),
                )
            except (OSError, ValueError) as exc:
                return Probe(
                    self.name, False, self.method, f"cannot read {z.path / 'energy_uj'}: {exc}", self.domains(), self._detail(zones)
                )
        return Probe(self.name, True, self.method, "", self.domains(), self._detail(zones))

    def _detail(self, zones: list[_Zone]) -> dict:
        return {
            "sysfs_root": str(self.root),
            "zones": [
                {
                    "zone": z.zone_id,
                    "name": z.name,
                    "domain": z.domain,
                    "in_total": z.in_total,
                    "max_energy_range_j": z.range_uj / 1e6,
                    "max_safe_interval_s": round(z.safe_interval_s, 3),
                }
                for z in zones
            ],
            "poll_interval_s": self.poll_interval_s(),
            "total": "psys" if any(z.name.startswith("psys") for z in zones) else "package + dram",
        }

    def domains(self) -> tuple[Domain, ...]:
        return tuple(Domain(z.domain, z.in_total) for z in self._discover())

    def open(self) -> None:
        p = self.probe()
        if not p.usable:
            hint = None
            reason = p.reason
            if "; fix: " in reason:
                reason, hint = reason.split("; fix: ", 1)
            raise MeterError(f"RAPL meter not usable: {reason}", hint)
        with self._lock:
            self._acc_uj = {z.domain: 0 for z in self._zones or ()}
            self._wraps = {z.domain: 0 for z in self._zones or ()}
            self._last_uj = {z.domain: _read_int(z.path / "energy_uj") for z in self._zones or ()}
        sampler = self._sampler or shared_sampler()
        self._task = sampler.add(self._poll, self.poll_interval_s(), name="rapl-wrap")

    def _poll(self) -> None:
        with self._lock:
            self._update()

    def _update(self) -> None:
        for z in self._zones or ():
            raw = _read_int(z.path / "energy_uj")
            delta = raw - self._last_uj[z.domain]
            if delta < 0:
                delta += z.range_uj
                self._wraps[z.domain] += 1
            self._acc_uj[z.domain] += delta
            self._last_uj[z.domain] = raw

    def snapshot(self) -> Snapshot:
        if self._task is None:
            raise RuntimeError("RaplMeter.snapshot() before open()")
        task = (self._sampler or shared_sampler()).task(self._task)
        if task is not None and task.error is not None:  # a wraparound may have gone unseen
            raise MeterError(
                f"a background RAPL counter read failed under {self.root}: {task.error}",
                "check that the powercap zones still exist and stay readable during the run",
            )
        try:
            with self._lock:
                self._update()
                joules = {d: uj / 1e6 for d, uj in self._acc_uj.items()}
        except (OSError, ValueError) as exc:
            raise MeterError(f"RAPL counter read failed under {self.root}: {exc}", "check that the powercap zones still exist") from None
        return Snapshot(now(), joules)

    @property
    def wraps(self) -> dict[str, int]:
        """How many wraparounds each domain has had since ``open()`` (for tests and diagnostics)."""
        with self._lock:
            return dict(self._wraps)

    def close(self) -> None:
        if self._task is not None:
            (self._sampler or shared_sampler()).remove(self._task)
            self._task = None


def _sort_key(zone_id: str) -> tuple:
    return tuple(int(x) for x in zone_id.split(":")[1:])


def _domain_name(z: _Zone, by_id: dict[str, _Zone]) -> str:
    name = z.name
    if re.search(r"-\d+$", name):
        return name  # package-0 already names its socket
    parent = by_id.get(z.parent_id) if z.parent_id else None
    if parent is not None:
        m = re.search(r"-(\d+)$", parent.name)
        socket = m.group(1) if m else parent.zone_id.split(":")[-1]
        return f"{name}-{socket}"
    if name == "psys":
        idx = z.zone_id.split(":")[-1]
        return "psys" if not any(o is not z and o.name == "psys" for o in by_id.values()) else f"psys-{idx}"
    return name
