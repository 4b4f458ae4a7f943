"""The shared background sampler thread (its cost is measured in tests/benchmarks/bench_sampler.py)."""

from __future__ import annotations

import threading
import time

import pytest

from greenbench.meters.sampler import Sampler, shared_sampler


def wait_for(cond, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.005)
    return cond()


def test_runs_tasks_in_one_thread_and_stops_when_empty():
    s = Sampler()
    assert not s.running
    threads = set()
    a = s.add(lambda: threads.add(threading.current_thread().name), 0.01, name="a")
    b = s.add(lambda: threads.add(threading.current_thread().name), 0.02, name="b")
    assert wait_for(lambda: s.task(a).runs >= 3 and s.task(b).runs >= 2)
    assert threads == {"greenbench-sampler"}
    assert s.remove(a).name == "a"
    assert s.running
    s.remove(b)
    s.join()
    assert not s.running
    # and it starts again
    c = s.add(lambda: None, 0.01)
    assert wait_for(lambda: s.task(c).runs >= 1)
    s.remove(c)
    s.join()
    assert not s.running
    assert s.cpu_time_s >= 0.0


def test_task_error_is_kept_and_thread_survives():
    s = Sampler()
    calls = []

    def bad():
        calls.append(1)
        raise OSError("sensor gone")

    t = s.add(bad, 0.01)
    ok = s.add(lambda: None, 0.01)
    assert wait_for(lambda: len(calls) >= 2 and s.task(ok).runs >= 2)
    assert isinstance(s.task(t).error, OSError)
    s.remove(t)
    s.remove(ok)
    s.join()


def test_bad_interval_and_shared_instance():
    with pytest.raises(ValueError):
        Sampler().add(lambda: None, 0)
    assert shared_sampler() is shared_sampler()
