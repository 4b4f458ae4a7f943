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

What adds into the total (``Domain.in_total``): package + dram per socket, the CPU and RAM the work
uses. ``core`` and ``uncore`` are parts of their package and are never added. ``dram`` is a sysfs child
of its package but not part of the package's energy, so it is added. ``psys`` (the whole platform, where
a laptop or client board has it) is recorded beside them but not added: it covers devices the work may
not use, and on some boards it never advances. It is checked instead: over a run psys should be at least
package + dram (within :data:`PSYS_TOLERANCE`); a psys that does not advance while the packages do is
dropped with a note. Only when a tree has psys and no package zone is psys the total.
CPUs without a ``dram`` zone (every AMD CPU, some Intel client parts) leave RAM out: the probe says so.

Update period: the counters change about every 1 ms (Intel SDM vol. 3B, 15.10.1; AMD: "updated every
1ms", Linux Documentation/hwmon/amd_energy.rst). The probe times it: it reads one package zone's
``energy_uj`` in a tight loop and takes the median interval between changes; when the counter does not
move during the probe the 1 ms default is used and the detail says so (``period_source``).

Resets: a drop in ``energy_uj`` is a wrap when one wrap explains it, i.e. the wrapped delta implies at
most :data:`ASSUMED_MAX_POWER_W` (or the zone's own limit) over the time since the previous read.
Otherwise the counter was reset (firmware, a CPU hotplug, a driver reload): the read counts the new value
as the energy since the reset and the meter notes the reset instead of adding a whole range. A zone
without ``max_energy_range_uj`` has an unknown range: every drop in it is a reset, never a guessed wrap.

Root: ``GREENBENCH_POWERCAP_DIR`` (default ``/sys/class/powercap``) moves the tree, for containers that
mount the host's sysfs elsewhere (as Kepler and Scaphandre deployments do).

Zones that appear twice (the MSR interface ``intel-rapl`` and the MMIO mirror ``intel-rapl-mmio``
of the same package on some laptops) are read once: the MSR zone wins.

Maximum safe read interval: two wraps between reads would lose a whole range without a trace, so a
zone must be read at least every ``max_energy_range_uj / max power``. Typical ranges are 262 kJ
(package) and 65 kJ (dram) (a zone of unknown range is read every :data:`MIN_POLL_S`); with an assumed worst-case draw of :data:`ASSUMED_MAX_POWER_W` per zone
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
from greenbench.meters import base
from greenbench.meters.base import Domain, Probe, Snapshot, measure_update_period, now, wait_for_change
from greenbench.meters.sampler import Sampler, shared_sampler

__all__ = ["RaplMeter", "DEFAULT_ROOT", "permission_hint", "powercap_root", "ASSUMED_MAX_POWER_W",
           "DEFAULT_PERIOD_S", "PSYS_TOLERANCE"]

DEFAULT_ROOT = "/sys/class/powercap"
ROOT_ENV = "GREENBENCH_POWERCAP_DIR"
#: RAPL counter update period when the probe cannot time it (s): Intel SDM vol. 3B 15.10.1, AMD amd_energy.rst.
DEFAULT_PERIOD_S = 0.001
#: psys may read this much below package + dram before the check complains (fraction).
PSYS_TOLERANCE = 0.05
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
    range_uj: int | None  # None: the zone has no max_energy_range_uj (unknown range)
    max_power_w: float | None
    domain: str = ""
    in_total: bool = False

    @property
    def is_psys(self) -> bool:
        return self.name.startswith("psys")

    @property
    def parent_id(self) -> str | None:
        head, sep, _ = self.zone_id.rpartition(":")
        return head if sep and ":" in head else None

    @property
    def max_plausible_w(self) -> float:
        return max(ASSUMED_MAX_POWER_W, self.max_power_w or 0.0)

    @property
    def safe_interval_s(self) -> float:
        if self.range_uj is None:
            return MIN_POLL_S * 4  # unknown range: poll as often as the sampler allows
        return (self.range_uj / 1e6) / self.max_plausible_w


def _read_int(path: Path) -> int:
    with open(path, "rb") as fh:
        return int(fh.read().strip())


def _read_text(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read().strip()


def powercap_root() -> str:
    """The powercap root: ``GREENBENCH_POWERCAP_DIR`` if set, else ``/sys/class/powercap``."""
    return os.environ.get(ROOT_ENV) or DEFAULT_ROOT


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
        sysfs_root: the powercap directory (default: :func:`powercap_root`; tests pass a fake tree).
        sampler: the background sampler used for wraparound-safety reads (default: the shared one).
        poll_interval_s: override the wraparound-safety read interval (default: derived from the
            zones' ranges, see the module docstring).
        clock: monotonic clock (s) for reset detection (the time between reads).
    """

    name = "rapl"
    method = "counter"

    def __init__(
        self,
        sysfs_root: str | os.PathLike | None = None,
        *,
        sampler: Sampler | None = None,
        poll_interval_s: float | None = None,
        clock=None,
    ):
        self.root = Path(sysfs_root if sysfs_root is not None else powercap_root())
        self._sampler = sampler
        self._poll_override = poll_interval_s
        self._clock = clock or now
        self._zones: list[_Zone] | None = None
        self._lock = threading.Lock()
        self._last_uj: dict[str, int] = {}
        self._last_t: float = 0.0
        self._acc_uj: dict[str, int] = {}
        self._wraps: dict[str, int] = {}
        self._resets: dict[str, int] = {}
        self._task: int | None = None
        self._period: tuple[float, str] | None = None  # (seconds, "measured" | "default")
        self._dropped: dict[str, str] = {}  # zone domain -> why it is not read (a psys that does not advance)

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
                range_uj: int | None = _read_int(path / "max_energy_range_uj")
                if range_uj <= 0:
                    range_uj = None
            except (OSError, ValueError):
                range_uj = None  # unknown: a drop is a reset, never a guessed wrap
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
        has_package = any(z.name.startswith("package") for z in kept)
        for z in kept:
            if has_package:
                z.in_total = z.name.startswith("package") or z.name.startswith("dram")
            else:  # a platform-only tree: psys is all there is
                z.in_total = z.is_psys
        self._zones = kept
        return kept

    def _live_zones(self) -> list[_Zone]:
        return [z for z in self._discover() if z.domain not in self._dropped]

    def _align_zone(self) -> _Zone | None:
        """The zone whose updates mark aligned edges and whose period is timed: the first package zone."""
        zones = self._live_zones()
        for z in zones:
            if z.in_total and not z.is_psys:
                return z
        return zones[0] if zones else None

    # -- update period --------------------------------------------------------------------
    def _time_updates(self) -> tuple[float, str]:
        """Time the align zone's updates; drop a psys zone that stays still while the packages move."""
        if self._period is not None:
            return self._period
        z = self._align_zone()
        if z is None:
            return DEFAULT_PERIOD_S, "default"
        path = z.path / "energy_uj"
        others = [o for o in self._live_zones() if o is not z]
        before = {o.domain: _read_int(o.path / "energy_uj") for o in others}
        period, changes = measure_update_period(lambda: _read_int(path))
        if changes:  # the package moves: a psys that stays still for a while longer does not count here
            import time

            deadline = time.perf_counter() + base.PERIOD_PROBE_GIVEUP_S
            still = [o for o in others if o.is_psys]
            while still:
                still = [o for o in still if _read_int(o.path / "energy_uj") == before[o.domain]]
                if time.perf_counter() > deadline:
                    break
            for o in still:
                self._dropped[o.domain] = (
                    f"RAPL {o.domain} did not advance while {z.domain} did: dropped (this board's platform "
                    "counter does not count here)"
                )
        self._period = (period, base.period_source(changes)) if period is not None else (
            DEFAULT_PERIOD_S, "default (the counter did not move while probed)")
        return self._period

    @property
    def update_period_s(self) -> float:
        return self._time_updates()[0]

    @property
    def period_source(self) -> str:
        return self._time_updates()[1]

    @property
    def aligns_all_domains(self) -> bool:
        """An edge aligned to the package counter is fresh for every zone in the total only if it is the only one
        (other packages and DRAM update on their own schedule)."""
        return sum(1 for z in self._live_zones() if z.in_total) <= 1

    def wait_for_update(self, timeout_s: float) -> bool:
        """Busy-poll the package counter until it advances (an aligned window edge)."""
        z = self._align_zone()
        if z is None:
            return False
        path = z.path / "energy_uj"
        try:
            return wait_for_change(lambda: _read_int(path), timeout_s)
        except (OSError, ValueError):
            return False

    def poll_interval_s(self) -> float:
        """Seconds between the sampler's wraparound-safety reads."""
        if self._poll_override is not None:
            return self._poll_override
        zones = self._live_zones()
        if not zones:
            return MAX_POLL_S
        safe = min(z.safe_interval_s for z in zones)
        return min(MAX_POLL_S, max(MIN_POLL_S, safe / 4))

    # -- Meter protocol -------------------------------------------------------------------
    def probe(self) -> Probe:
        if not self.root.is_dir():
            env = f" (from {ROOT_ENV})" if os.environ.get(ROOT_ENV) else ""
            return Probe(
                self.name,
                False,
                self.method,
                f"{self.root}{env} does not exist: this kernel exposes no powercap interface (not Linux, a VM or "
                "container without it, or the intel_rapl_msr driver is not loaded); fix: sudo modprobe intel_rapl_msr "
                f"(in a container that mounts the host's sysfs elsewhere, set {ROOT_ENV} to its powercap directory)",
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
        try:
            self._time_updates()
        except (OSError, ValueError) as exc:
            return Probe(self.name, False, self.method, f"RAPL counter read failed under {self.root}: {exc}")
        return Probe(self.name, True, self.method, "", self.domains(), self._detail(zones))

    def ram_covered(self) -> bool:
        return any(z.name.startswith("dram") for z in self._live_zones())

    def _detail(self, zones: list[_Zone]) -> dict:
        period, source = self._period or (DEFAULT_PERIOD_S, "default")
        live = [z for z in zones if z.domain not in self._dropped]
        has_package = any(z.name.startswith("package") for z in live)
        d = {
            "sysfs_root": str(self.root),
            "zones": [
                {
                    "zone": z.zone_id,
                    "name": z.name,
                    "domain": z.domain,
                    "in_total": z.in_total,
                    "max_energy_range_j": None if z.range_uj is None else z.range_uj / 1e6,
                    "max_safe_interval_s": round(z.safe_interval_s, 3),
                    **({"dropped": self._dropped[z.domain]} if z.domain in self._dropped else {}),
                }
                for z in zones
            ],
            "poll_interval_s": self.poll_interval_s(),
            "total": "package + dram" if has_package else "psys (no package zone)",
            "update_period_s": period,
            "period_source": source,
            "ram_covered": self.ram_covered(),
        }
        if not d["ram_covered"]:
            d["ram_note"] = (
                "no RAPL dram zone here: RAM energy is not covered (AMD CPUs expose no DRAM domain; some Intel "
                "client CPUs neither)"
            )
        return d

    def domains(self) -> tuple[Domain, ...]:
        return tuple(Domain(z.domain, z.in_total) for z in self._live_zones())

    def devices(self) -> list[dict]:
        doms = [z.domain for z in self._live_zones()]
        return [{"device": "cpu", "meter": self.name, "domains": doms, "ram_covered": self.ram_covered()}]

    def open(self) -> None:
        p = self.probe()
        if not p.usable:
            hint = None
            reason = p.reason
            if "; fix: " in reason:
                reason, hint = reason.split("; fix: ", 1)
            raise MeterError(f"RAPL meter not usable: {reason}", hint)
        zones = self._live_zones()
        with self._lock:
            self._acc_uj = {z.domain: 0 for z in zones}
            self._wraps = {z.domain: 0 for z in zones}
            self._resets = {z.domain: 0 for z in zones}
            self._last_uj = {z.domain: _read_int(z.path / "energy_uj") for z in zones}
            self._last_t = self._clock()
        sampler = self._sampler or shared_sampler()
        self._task = sampler.add(self._poll, self.poll_interval_s(), name="rapl-wrap")

    def _poll(self) -> None:
        with self._lock:
            self._update()

    def _update(self) -> None:
        t = self._clock()
        elapsed = max(t - self._last_t, 1e-6)
        for z in self._live_zones():
            raw = _read_int(z.path / "energy_uj")
            delta = raw - self._last_uj[z.domain]
            if delta < 0:
                wrapped = None if z.range_uj is None else delta + z.range_uj
                if wrapped is not None and wrapped / 1e6 <= z.max_plausible_w * elapsed:
                    delta = wrapped
                    self._wraps[z.domain] += 1
                else:  # a reset: count what the counter has gathered since, never a guessed range
                    delta = raw
                    self._resets[z.domain] += 1
            self._acc_uj[z.domain] += delta
            self._last_uj[z.domain] = raw
        self._last_t = t

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

    def notes(self) -> list[str]:
        """What a reader of the result must know: resets, a dropped psys, psys below package + dram, RAM not covered."""
        out = list(self._dropped.values())
        with self._lock:
            acc = dict(self._acc_uj)
            resets = {d: n for d, n in self._resets.items() if n}
        for d, n in resets.items():
            out.append(
                f"RAPL {d} was reset {n} time(s) while measuring (a drop no single wrap explains): the energy since "
                "each reset was counted, the energy between the last read and the reset is missing"
            )
        psys = [z for z in self._live_zones() if z.is_psys and not z.in_total]
        if psys and acc:
            cpu_ram = sum(acc.get(z.domain, 0) for z in self._live_zones() if z.in_total) / 1e6
            for z in psys:
                pj = acc.get(z.domain, 0) / 1e6
                if cpu_ram > 0 and pj == 0:
                    out.append(f"RAPL {z.domain} did not advance while package + dram read {cpu_ram:.4g} J: "
                               "its reading is meaningless and not used")
                elif pj < cpu_ram * (1 - PSYS_TOLERANCE):
                    out.append(
                        f"RAPL {z.domain} read {pj:.4g} J, less than package + dram ({cpu_ram:.4g} J) by more than "
                        f"{PSYS_TOLERANCE:.0%}: the platform counter is inconsistent here (not used in the total)"
                    )
        if not self.ram_covered():
            out.append("RAM energy is not covered: this CPU exposes no RAPL dram zone (AMD CPUs have none)")
        return out

    @property
    def wraps(self) -> dict[str, int]:
        """How many wraparounds each domain has had since ``open()`` (for tests and diagnostics)."""
        with self._lock:
            return dict(self._wraps)

    @property
    def resets(self) -> dict[str, int]:
        """How many resets (drops no single wrap explains) each domain has had since ``open()``."""
        with self._lock:
            return dict(self._resets)

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
