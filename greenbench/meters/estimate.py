"""CPU and RAM energy *estimated* for this process tree (method ``estimate``), when no counter exists.

Terms:
    TDP: thermal design power, the CPU's rated sustained draw in watts. Looked up in codecarbon's
        bundled table ``codecarbon/data/hardware/cpu_power.csv`` (read from the installed codecarbon
        package, never copied into greenbench) by the CPU's model name (see :func:`match_cpu`).
    fallback TDP: for a CPU the table does not know, codecarbon's own default of
        :data:`FALLBACK_W_PER_THREAD` = 4 W per logical CPU (``DEFAULT_POWER_PER_CORE`` in
        ``codecarbon/core/cpu.py``, multiplied there by ``psutil.cpu_count()``, i.e. logical CPUs).
        The probe's detail says when the fallback is in use.
    process tree: this process, its live descendants, and the descendants it has already waited
        for (their CPU time is in ``RUSAGE_CHILDREN``).
    CPU seconds: cumulative user + system time of the process tree.

The model:
    cpu joules = TDP / logical_cpus x CPU seconds of the process tree
        (one fully busy logical CPU is charged its share of the package's TDP);
    ram joules = integral over the window of RAM W/GB x GB resident (RSS) in the process tree,
        trapezoid rule over samples taken at every snapshot and by the background sampler every
        :data:`RSS_INTERVAL_S`. GB are GiB (2**30 bytes) as in codecarbon.
    RAM W/GB: codecarbon 3.x models the machine's RAM power from an estimated DIMM count with
        ``RAM_SLOT_POWER_X86`` = 5 W per DIMM (``codecarbon/external/ram.py``,
        ``RAM._calculate_ram_power``). greenbench calls that model for the machine's total RAM and
        divides by the total GB, i.e. charges the process tree its share of the modelled RAM power.
        If that function is not available (another codecarbon version), codecarbon's earlier
        figure is used: 3 W per 8 GB = :data:`LEGACY_RAM_W_PER_GB` (quoted in the same file).

Only the process tree's own activity is counted: the idle draw of the machine is not part of the
estimate (so its idle baseline is ~0 by construction). Shared pages count once per process that
maps them, which overstates RSS for forked workers. A process that detaches from the tree (a
double-forked daemon, re-parented to init) stops being counted when it detaches.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import os
import platform
import re
import resource
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from greenbench.errors import MeterError
from greenbench.meters.base import Domain, Probe, Snapshot
from greenbench.meters.sampler import Sampler, shared_sampler

__all__ = [
    "EstimateMeter",
    "TdpInfo",
    "FALLBACK_W_PER_THREAD",
    "LEGACY_RAM_W_PER_GB",
    "RSS_INTERVAL_S",
    "cpu_model_name",
    "cpu_power_table_path",
    "load_cpu_power_table",
    "match_cpu",
    "lookup_tdp",
    "ram_w_per_gb",
    "tree_cpu_seconds",
    "tree_rss_bytes",
]

#: codecarbon.core.cpu.DEFAULT_POWER_PER_CORE (W per logical CPU for a CPU not in its table).
FALLBACK_W_PER_THREAD = 4.0
#: codecarbon's pre-3.0 RAM figure: 3 W per 8 GB of DDR3/DDR4.
LEGACY_RAM_W_PER_GB = 3.0 / 8.0
#: How often the background sampler records the process tree's RSS (s).
RSS_INTERVAL_S = 2.0
_GIB = float(2**30)


# ---------------------------------------------------------------------------------------------
# CPU model and TDP
# ---------------------------------------------------------------------------------------------
def cpu_model_name(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str | None:
    """The CPU's marketing name (``model name`` in /proc/cpuinfo on Linux, else platform.processor())."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, sep, val = line.partition(":")
                if sep and key.strip() in ("model name", "Model", "cpu model") and val.strip():
                    return val.strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            import subprocess

            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=2
            ).stdout.strip()
            if out:
                return out
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or None


def cpu_power_table_path() -> Path | None:
    """Path of ``cpu_power.csv`` inside the installed codecarbon package (without importing it)."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "data" / "hardware" / "cpu_power.csv"
        if p.is_file():
            return p
    return None


@functools.lru_cache(maxsize=4)
def load_cpu_power_table(path: str | None = None) -> dict[str, float]:
    """``{cpu name: TDP watts}`` from codecarbon's table (empty if codecarbon is not installed)."""
    p = Path(path) if path else cpu_power_table_path()
    if p is None:
        return {}
    table: dict[str, float] = {}
    with open(p, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                table[row["Name"].strip()] = float(row["TDP"])
            except (KeyError, TypeError, ValueError):
                continue
    return table


_NOISE = [
    r"\((?:R|TM|tm|r)\)",
    r"\bCPU\s*@.*$",
    r"@\s*\d+(?:\.\d+)?\s*GHz",
    r"\b\d+-Core Processor\b",
    r"\bProcessor\b",
    r"\bwith Radeon (?:Vega )?Graphics\b",
    r"\bCPU\b",
]


def _clean(model: str) -> str:
    s = model
    for pat in _NOISE:
        s = re.sub(pat, " ", s)
    return " ".join(s.split())


def _tokens(s: str) -> frozenset[str]:
    return frozenset(re.sub(r"[^0-9a-z]+", " ", s.lower()).split())


def match_cpu(model: str, names) -> str | None:
    """The table entry for CPU ``model``, or None when there is no unambiguous match.

    Like codecarbon's ``TDP._get_matching_cpu``: an exact (case-insensitive) match of the raw name,
    then of the name without vendor noise ("(R)", "(TM)", "CPU @ 2.40GHz", "8-Core Processor"), then a
    token-set match (one name's words contained in the other's). codecarbon gives up whenever two
    entries tie on the token-set score; greenbench instead prefers entries whose words are all in
    the model name, takes the most specific one (most words, at least two) if it is unique, and
    accepts the reverse containment (the model's words inside an entry) only when a single entry has
    them, so a bare "AMD EPYC" does not pick one EPYC at random.
    """
    names = list(names)
    low = {n.lower(): n for n in names}
    for cand in (model, _clean(model)):
        key = " ".join(cand.split()).lower()
        if key in low:
            return low[key]
    mt = _tokens(_clean(model))
    if not mt:
        return None
    inside = [(len(_tokens(n)), n) for n in names if len(_tokens(n)) >= 2 and _tokens(n) <= mt]
    if inside:
        inside.sort(reverse=True)
        if len(inside) == 1 or inside[0][0] != inside[1][0]:
            return inside[0][1]
        return None
    around = [n for n in names if mt <= _tokens(n)]
    return around[0] if len(around) == 1 else None


@dataclass(frozen=True)
class TdpInfo:
    """The TDP the estimate uses and where it came from."""

    tdp_w: float
    source: str  # "codecarbon cpu_power.csv: <entry>", "fallback: ...", or "given"
    cpu_model: str | None
    matched: str | None
    logical_cpus: int


def lookup_tdp(
    model: str | None = None, *, logical_cpus: int | None = None, table_path: str | None = None
) -> TdpInfo:
    """Find the CPU's TDP in codecarbon's table, else codecarbon's 4 W per logical CPU fallback."""
    if model is None:
        model = cpu_model_name()
    n = logical_cpus or os.cpu_count() or 1
    table = load_cpu_power_table(table_path)
    matched = match_cpu(model, table) if (model and table) else None
    if matched is not None:
        return TdpInfo(table[matched], f"codecarbon cpu_power.csv entry {matched!r}", model, matched, n)
    why = "codecarbon is not installed" if not table else f"CPU model {model!r} is not in codecarbon's cpu_power.csv"
    return TdpInfo(
        FALLBACK_W_PER_THREAD * n,
        f"fallback: {why}; codecarbon's default {FALLBACK_W_PER_THREAD:g} W per logical CPU x {n}",
        model,
        None,
        n,
    )


def ram_w_per_gb(total_gb: float | None = None) -> tuple[float, str]:
    """RAM watts per GiB resident, and where the figure comes from (see the module docstring)."""
    if total_gb is None:
        import psutil

        total_gb = psutil.virtual_memory().total / _GIB
    try:
        from codecarbon.external.ram import RAM

        w = float(RAM(tracking_mode="machine")._calculate_ram_power(total_gb))
        if w > 0 and total_gb > 0:
            return w / total_gb, (
                f"codecarbon RAM model: {w:g} W for this machine's {total_gb:.1f} GB (5 W per estimated DIMM), "
                "shared per GB resident"
            )
    except Exception:
        pass
    return LEGACY_RAM_W_PER_GB, "codecarbon's pre-3.0 figure: 3 W per 8 GB"


# ---------------------------------------------------------------------------------------------
# the process tree
# ---------------------------------------------------------------------------------------------
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_HAS_PROC_CHILDREN = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def _descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (cheap /proc/<pid>/task/*/children on Linux, else psutil)."""
    if _HAS_PROC_CHILDREN:
        out: list[int] = []
        stack = [pid]
        while stack:
            p = stack.pop()
            try:
                tids = os.listdir(f"/proc/{p}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    with open(f"/proc/{p}/task/{tid}/children", "rb") as fh:
                        kids = [int(x) for x in fh.read().split()]
                except OSError:
                    continue
                out.extend(kids)
                stack.extend(kids)
        return out
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _proc_stat(pid: int) -> tuple[float, int] | None:
    """(CPU seconds incl. waited-for children, RSS bytes) of a live process, or None if it is gone."""
    if _HAS_PROC_CHILDREN:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                rest = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            return None
        # fields after the command: state(3) ... utime(14) stime(15) cutime(16) cstime(17) ... rss(24)
        ticks = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
        return ticks / _CLK_TCK, int(rest[21]) * _PAGE
    import psutil

    try:
        p = psutil.Process(pid)
        t = p.cpu_times()
        return t.user + t.system + t.children_user + t.children_system, p.memory_info().rss
    except psutil.Error:
        return None


def tree_cpu_seconds() -> float:
    """User + system CPU seconds of this process, its live descendants and its waited-for children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    for pid in _descendants(os.getpid()):
        st = _proc_stat(pid)
        if st is not None:
            total += st[0]
    return total


def tree_rss_bytes() -> int:
    """Resident bytes of this process and its live descendants."""
    total = 0
    for pid in [os.getpid(), *_descendants(os.getpid())]:
        st = _proc_stat(pid)
        if st is not None:
            total += st[1]
    return total


#: CPU-time granularity assumed when it cannot be timed (s): one tick of the slowest common kernel (HZ=100).
DEFAULT_CPU_TIME_GRANULARITY_S = 0.01


@functools.lru_cache(maxsize=1)
def cpu_time_granularity_s() -> tuple[float, str]:
    """How coarsely this process's CPU time advances, as one thread sees the others' (s), and how it is known.

    The kernel adds a running thread's CPU time to the process total only at its scheduler ticks
    (1/CONFIG_HZ: 1-10 ms) and context switches, so the CPU time of worker threads (onnxruntime's, BLAS's)
    shows up in steps of about a tick: a window shorter than a few ticks can read 0 or several times its
    real CPU time. Timed once per process: a thread hashes a large buffer (sha256 releases the GIL) while
    this thread reads the process's CPU time minus its own and times the steps
    (:func:`greenbench.meters.base.measure_update_period`).
    """
    import hashlib

    from greenbench.meters import base

    if not hasattr(resource, "RUSAGE_THREAD"):
        return DEFAULT_CPU_TIME_GRANULARITY_S, "default (no per-thread CPU time on this OS)"
    buf = bytes(32 << 20)
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            hashlib.sha256(buf).digest()

    shown = [0.0]

    def others() -> float:
        # the two reads are microseconds apart, so small differences are this thread's own time: a step is
        # counted only when the others' time grew by more than 0.2 ms
        a = resource.getrusage(resource.RUSAGE_SELF)
        b = resource.getrusage(resource.RUSAGE_THREAD)
        v = (a.ru_utime + a.ru_stime) - (b.ru_utime + b.ru_stime)
        if abs(v - shown[0]) > 2e-4:
            shown[0] = v
        return shown[0]

    t = threading.Thread(target=work, name="greenbench-cpu-time-probe", daemon=True)
    t.start()
    try:
        period, changes = base.measure_update_period(others, timeout_s=0.25, giveup_s=0.1, changes=6)
    finally:
        stop.set()
        t.join()
    if period is None or changes < 2:
        return DEFAULT_CPU_TIME_GRANULARITY_S, "default (could not be timed here)"
    return period, "measured (steps of other threads' CPU time in the process total)"


# ---------------------------------------------------------------------------------------------
# the meter
# ---------------------------------------------------------------------------------------------
class EstimateMeter:
    """Estimated ``cpu`` and ``ram`` joules of this process tree (method ``estimate``).

    Every input is injectable so the arithmetic can be tested exactly.

    Args:
        tdp_w: CPU TDP in watts (default: :func:`lookup_tdp`).
        logical_cpus: logical CPUs sharing that TDP (default: ``os.cpu_count()``).
        ram_w_per_gb: RAM watts per GiB resident (default: :func:`ram_w_per_gb`).
        cpu_seconds: cumulative CPU seconds source (default: :func:`tree_cpu_seconds`).
        rss_bytes: resident-bytes source (default: :func:`tree_rss_bytes`).
        clock: monotonic clock in seconds (default ``time.perf_counter``).
        sampler: background sampler for RSS samples; ``False`` disables background sampling.
        rss_interval_s: RSS sampling interval.
        cpu_model: CPU model name for the TDP lookup (default: detected).
    """

    name = "estimate"
    method = "estimate"
    #: counts only this process tree, so its idle baseline is 0 (see greenbench.meters.idle)
    process_scoped = True

    def __init__(
        self,
        *,
        tdp_w: float | None = None,
        logical_cpus: int | None = None,
        ram_w_per_gb: float | None = None,
        cpu_seconds: Callable[[], float] = tree_cpu_seconds,
        rss_bytes: Callable[[], float] = tree_rss_bytes,
        clock: Callable[[], float] = time.perf_counter,
        sampler: Sampler | None | bool = None,
        rss_interval_s: float = RSS_INTERVAL_S,
        cpu_model: str | None = None,
    ):
        self._tdp_given = tdp_w
        self._cpus_given = logical_cpus
        self._ram_given = ram_w_per_gb
        self._cpu_model = cpu_model
        self._cpu_seconds = cpu_seconds
        self._rss_bytes = rss_bytes
        self._clock = clock
        self._sampler = sampler
        self._rss_interval = rss_interval_s
        self._tdp: TdpInfo | None = None
        self._ram: tuple[float, str] | None = None
        self._lock = threading.Lock()
        self._cpu0 = 0.0
        self._last_rss: tuple[float, float] | None = None  # (t_s, GiB)
        self._ram_j = 0.0
        self._gib_s = 0.0
        self._task: int | None = None

    #: True when nothing of the process tree runs at the window edges (``greenbench measure -- CMD``: the
    #: command starts after the first edge and is reaped before the last), so its CPU time, read from
    #: RUSAGE_CHILDREN, is exact and the tick granularity does not apply.
    idle_at_edges = False

    @property
    def update_period_s(self) -> float:
        """How coarsely the process tree's CPU time advances (see :func:`cpu_time_granularity_s`)."""
        return 0.0 if self.idle_at_edges else cpu_time_granularity_s()[0]

    @property
    def period_source(self) -> str:
        if self.idle_at_edges:
            return "exact (the measured command is reaped before the window ends)"
        return cpu_time_granularity_s()[1]

    def devices(self) -> list[dict]:
        return [{"device": "cpu", "meter": self.name, "domains": ["cpu", "ram"], "scope": "this process tree only"}]

    def tdp(self) -> TdpInfo:
        if self._tdp is None:
            n = self._cpus_given or os.cpu_count() or 1
            if self._tdp_given is not None:
                self._tdp = TdpInfo(float(self._tdp_given), "given", self._cpu_model, None, n)
            else:
                self._tdp = lookup_tdp(self._cpu_model, logical_cpus=n)
        return self._tdp

    def ram_figure(self) -> tuple[float, str]:
        if self._ram is None:
            self._ram = (float(self._ram_given), "given") if self._ram_given is not None else ram_w_per_gb()
        return self._ram

    def probe(self) -> Probe:
        t = self.tdp()
        w_gb, ram_src = self.ram_figure()
        detail = {
            "cpu_model": t.cpu_model,
            "tdp_w": t.tdp_w,
            "tdp_source": t.source,
            "tdp_fallback": t.matched is None and t.source != "given",
            "logical_cpus": t.logical_cpus,
            "w_per_cpu_second": t.tdp_w / t.logical_cpus,
            "ram_w_per_gb": w_gb,
            "ram_source": ram_src,
            "scope": "this process tree only (idle ~0 by construction)",
            "model": "cpu J = tdp_w / logical_cpus x cpu_s; ram J = ram_w_per_gb x gib_s (GiB resident x seconds)",
            "update_period_s": self.update_period_s,
            "period_source": self.period_source,
        }
        return Probe(self.name, True, self.method, "", self.domains(), detail)

    def domains(self) -> tuple[Domain, ...]:
        return (Domain("cpu", basis="tdp-model"), Domain("ram", basis="rss-model"))

    def open(self) -> None:
        self.tdp()
        self.ram_figure()
        try:
            with self._lock:
                self._cpu0 = float(self._cpu_seconds())
                self._ram_j = 0.0
                self._gib_s = 0.0
                self._last_rss = (self._clock(), float(self._rss_bytes()) / _GIB)
        except OSError as exc:
            raise MeterError(f"cannot read this process tree's CPU time/RSS: {exc}") from None
        if self._sampler is not False:
            s = self._sampler if isinstance(self._sampler, Sampler) else shared_sampler()
            self._task = s.add(self.sample, self._rss_interval, name="estimate-rss")

    def sample(self) -> None:
        """Record one RSS sample (the sampler calls this; tests may call it directly)."""
        with self._lock:
            if self._last_rss is None:
                return
            t, gb = self._clock(), float(self._rss_bytes()) / _GIB
            t0, gb0 = self._last_rss
            gib_s = (gb0 + gb) / 2.0 * max(t - t0, 0.0)
            self._gib_s += gib_s
            self._ram_j += self.ram_figure()[0] * gib_s
            self._last_rss = (t, gb)

    def snapshot(self) -> Snapshot:
        if self._last_rss is None:
            raise RuntimeError("EstimateMeter.snapshot() before open()")
        self.sample()
        t = self.tdp()
        with self._lock:
            cpu_s = max(float(self._cpu_seconds()) - self._cpu0, 0.0)
            cpu_j = t.tdp_w / t.logical_cpus * cpu_s
            return Snapshot(
                self._last_rss[0],
                {"cpu": cpu_j, "ram": self._ram_j},
                {"cpu": {"cpu_s": cpu_s}, "ram": {"gib_s": self._gib_s}},
            )

    def close(self) -> None:
        if self._task is not None:
            s = self._sampler if isinstance(self._sampler, Sampler) else shared_sampler()
            s.remove(self._task)
            self._task = None
