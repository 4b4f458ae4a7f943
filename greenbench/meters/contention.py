"""Contention: how much CPU other processes used while a benchmark ran.

A benchmark on a busy machine is a different benchmark: other processes take cores, caches and memory
bandwidth, and on a machine-wide counter (RAPL) their energy lands in the windows too.

Terms:
    mark: a sample of (time, the whole machine's busy CPU seconds, steal seconds, this process tree's CPU
        seconds). The runner marks before the first measured repeat and after each one, outside windows.
    other CPU fraction: over an interval, (machine busy CPU seconds - this process tree's CPU seconds) /
        (interval x logical CPUs), clamped to 0..1: the share of all CPUs that other processes kept busy.
        Machine busy time is user + nice + system + irq + softirq from /proc/stat (psutil.cpu_times; guest
        time is inside user); steal (time the hypervisor gave this VM's CPUs to others) is reported apart.
    interval: consecutive marks are merged until an interval lasts at least :data:`MIN_INTERVAL_S`, since
        /proc/stat counts in clock ticks (10 ms per CPU); the largest fraction over the intervals is the
        result's ``environment.contention.other_cpu_fraction``. Above :data:`THRESHOLD` the result carries a
        warning and ``flagged: true``, which ``gate`` and ``leaderboard`` read.
"""

from __future__ import annotations

import os
import time
from typing import Callable

__all__ = ["Contention", "THRESHOLD", "MIN_INTERVAL_S"]

#: Other processes' share of all CPUs above which a result is flagged as run on a busy machine.
THRESHOLD = 0.10
#: Shortest interval a fraction is computed over (s): 50 ticks per CPU at 100 Hz.
MIN_INTERVAL_S = 0.5


def _machine_cpu() -> tuple[float, float]:
    import psutil

    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    return busy, getattr(t, "steal", 0.0)


def _own_cpu() -> float:
    from greenbench.meters.estimate import tree_cpu_seconds

    return tree_cpu_seconds()


class Contention:
    """Marks taken between repeats, and their summary (see the module docstring).

    Args:
        machine_cpu: () -> (busy_s, steal_s) of the whole machine; own_cpu: () -> this process tree's CPU
            seconds; clock: seconds; logical_cpus: CPUs the machine has (all injectable for tests).
    """

    def __init__(
        self,
        *,
        machine_cpu: Callable[[], tuple[float, float]] | None = None,
        own_cpu: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        logical_cpus: int | None = None,
        threshold: float = THRESHOLD,
    ):
        self._machine = machine_cpu or (lambda: _machine_cpu())
        self._own = own_cpu or (lambda: _own_cpu())
        self._clock = clock
        self.cpus = logical_cpus or os.cpu_count() or 1
        self.threshold = threshold
        self.marks: list[tuple[float, float, float, float]] = []
        self.error: str | None = None

    def mark(self) -> None:
        try:
            busy, steal = self._machine()
            self.marks.append((self._clock(), busy, steal, self._own()))
        except Exception as exc:  # contention is context, not a measurement: note why it is missing
            self.error = f"{type(exc).__name__}: {exc}"

    def intervals(self) -> list[tuple[float, float, float]]:
        """(seconds, other CPU fraction, steal fraction) per merged interval of at least :data:`MIN_INTERVAL_S`.

        A short last stretch joins the interval before it; a measurement shorter than :data:`MIN_INTERVAL_S`
        in all has no interval (/proc/stat's 10 ms ticks cannot tell its contention).
        """
        marks = self.marks
        bounds = [0]
        for j in range(1, len(marks)):
            if marks[j][0] - marks[bounds[-1]][0] >= MIN_INTERVAL_S:
                bounds.append(j)
        if len(marks) > 1 and bounds[-1] != len(marks) - 1:
            if len(bounds) > 1:
                bounds[-1] = len(marks) - 1  # the short remainder joins the last full interval
            else:
                return []
        out = []
        for i, j in zip(bounds, bounds[1:]):
            (t0, b0, s0, o0), (t1, b1, s1, o1) = marks[i], marks[j]
            cap = (t1 - t0) * self.cpus
            other = min(1.0, max(0.0, ((b1 - b0) - (o1 - o0)) / cap))
            steal = min(1.0, max(0.0, (s1 - s0) / cap))
            out.append((t1 - t0, other, steal))
        return out

    def summary(self) -> dict:
        """The result's ``environment.contention`` block."""
        iv = self.intervals()
        block: dict = {
            "other_cpu_fraction": max((o for _, o, _ in iv), default=None),
            "steal_fraction": max((s for _, _, s in iv), default=None),
            "threshold": self.threshold,
            "intervals": len(iv),
            "shortest_interval_s": min((d for d, _, _ in iv), default=None),
            "logical_cpus": self.cpus,
            "method": "machine busy CPU time (/proc/stat, psutil.cpu_times) minus this process tree's CPU time, "
            f"per interval of >= {MIN_INTERVAL_S:g} s between repeats, over all logical CPUs",
            "flagged": False,
        }
        if self.error:
            block["error"] = self.error
        if not iv:
            block["note"] = (f"measured for less than {MIN_INTERVAL_S:g} s in all: too short for /proc/stat's clock "
                             "ticks to tell how busy the machine was")
        frac = block["other_cpu_fraction"]
        if frac is not None and frac > self.threshold:
            block["flagged"] = True
            block["warning"] = (
                f"other processes used {frac:.0%} of this machine's CPUs while the repeats ran (threshold "
                f"{self.threshold:.0%}): this result was measured on a busy machine and may not compare with others"
            )
        return block
