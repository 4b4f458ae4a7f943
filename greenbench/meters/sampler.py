"""The background sampler: one daemon thread shared by every meter that needs polling.

Terms:
    task: a callable the sampler runs every ``interval_s`` seconds (NVML power sampling, RAPL
        wraparound safety reads, RSS samples of the estimate meter). A task must be quick (a few
        sysfs/NVML reads) and must not raise; if it does, the exception is kept on the task
        (:attr:`Task.error`) for its owner to report, and the thread carries on.
    cost: CPU time of the sampler thread itself, measured *inside* the thread with
        :func:`time.thread_time` (``Sampler.cpu_time_s``). At the default rates the sampler must
        cost < 1% of one core; ``tests/benchmarks/bench_sampler.py`` measures it.

The thread starts when the first task is added and ends when the last one is removed, so a
process that never measures anything never has a sampler thread. Meters share
:func:`shared_sampler` unless a test hands them its own :class:`Sampler`.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Sampler", "Task", "shared_sampler"]


@dataclass
class Task:
    """One periodic job of the sampler."""

    fn: Callable[[], None]
    interval_s: float
    name: str = ""
    due_s: float = 0.0
    runs: int = 0
    error: BaseException | None = field(default=None, repr=False)


class Sampler:
    """A single daemon thread that runs periodic tasks.

    Args:
        clock: monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self._clock = clock
        self._cond = threading.Condition()
        self._tasks: dict[int, Task] = {}
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._cpu_done_s = 0.0  # CPU time of threads that have already exited
        self._cpu_live: dict[int, float] = {}  # CPU time of running threads, updated after each wake-up
        self.wakeups = 0

    # -- public API -------------------------------------------------------------------------
    def add(self, fn: Callable[[], None], interval_s: float, name: str = "") -> int:
        """Run ``fn`` every ``interval_s`` seconds (first run one interval from now); returns a task id."""
        if not interval_s > 0:
            raise ValueError(f"sampler interval must be > 0 s, got {interval_s!r}")
        with self._cond:
            task_id = next(self._ids)
            self._tasks[task_id] = Task(fn, float(interval_s), name, self._clock() + interval_s)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="greenbench-sampler", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return task_id

    def remove(self, task_id: int) -> Task | None:
        """Stop running a task (unknown ids are ignored); returns the task, with its ``error`` if any."""
        with self._cond:
            task = self._tasks.pop(task_id, None)
            self._cond.notify_all()
        return task

    def task(self, task_id: int) -> Task | None:
        with self._cond:
            return self._tasks.get(task_id)

    @property
    def running(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    @property
    def cpu_time_s(self) -> float:
        """CPU seconds the sampler thread(s) have used so far (measured inside the thread)."""
        with self._cond:
            return self._cpu_done_s + sum(self._cpu_live.values())

    def join(self, timeout_s: float = 1.0) -> None:
        """Wait for the thread to end (after the last task was removed)."""
        t = self._thread
        if t is not None:
            t.join(timeout_s)

    # -- the thread -------------------------------------------------------------------------
    def _run(self) -> None:
        cpu0 = time.thread_time()
        me = threading.get_ident()
        try:
            while True:
                with self._cond:
                    if not self._tasks:
                        self._thread = None  # under the lock: add() now starts a fresh thread
                        return
                    now = self._clock()
                    next_due = min(t.due_s for t in self._tasks.values())
                    if next_due > now:
                        self._cond.wait(next_due - now)
                        continue
                    due = [t for t in self._tasks.values() if t.due_s <= now]
                self.wakeups += 1
                for t in due:
                    try:
                        t.fn()
                    except Exception as exc:  # keep the thread alive; the owner reports it
                        t.error = exc
                    t.runs += 1
                    t.due_s += t.interval_s
                    now = self._clock()
                    if t.due_s <= now:  # fell behind (suspend, slow read): do not burst to catch up
                        t.due_s = now + t.interval_s
                self._cpu_live[me] = time.thread_time() - cpu0
        finally:
            with self._cond:
                self._cpu_done_s += time.thread_time() - cpu0
                self._cpu_live.pop(me, None)
                if self._thread is threading.current_thread():
                    self._thread = None


_shared: Sampler | None = None
_shared_lock = threading.Lock()


def shared_sampler() -> Sampler:
    """The process-wide sampler that meters use by default."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Sampler()
        return _shared
