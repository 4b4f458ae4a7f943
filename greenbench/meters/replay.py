"""A meter that replays recorded cumulative readings (for tests of the runner and for CI).

Like Zeus's ``ReplayZeusMonitor``: the whole measurement pipeline runs without hardware, on
readings recorded elsewhere or made up by a test.

Terms:
    reading: cumulative joules per domain, ``{"package-0": 12.5, "dram-0": 3.0}``, optionally paired
        with its time as ``(t_s, {...})``.

``open()`` consumes the first reading as the baseline; each ``snapshot()`` consumes the next one
and reports it minus the baseline. When the readings run out the last one repeats (the counter
stops). A callable source is called once per ``open()``/``snapshot()`` instead.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Mapping, Sequence, Union

from greenbench.meters.base import METHODS, Domain, Probe, Snapshot

__all__ = ["ReplayMeter"]

Reading = Union[Mapping[str, float], tuple]


class ReplayMeter:
    """Replays cumulative readings.

    Args:
        readings: a sequence of readings (see the module docstring) or a callable returning one.
        name: the meter's name in results.
        method: the method the recorded joules were obtained with (the caller knows; default ``counter``).
        domains: the domains (default: the keys of the first reading, all in the total).
        clock: time source for readings without their own time.
    """

    def __init__(
        self,
        readings: Sequence[Reading] | Callable[[], Reading],
        *,
        name: str = "replay",
        method: str = "counter",
        domains: Iterable[Domain] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        if method not in METHODS:
            raise ValueError(f"unknown energy method {method!r}; expected one of {METHODS}")
        if not callable(readings) and len(readings) == 0:
            raise ValueError("ReplayMeter needs at least one reading")
        self.name = name
        self.method = method
        self._readings = readings
        self._clock = clock
        self._i = 0
        self._base: dict[str, float] = {}
        self._domains = tuple(domains) if domains is not None else None
        self.snapshots_taken = 0

    def _next(self) -> tuple[float, dict[str, float]]:
        if callable(self._readings):
            r = self._readings()
        else:
            r = self._readings[min(self._i, len(self._readings) - 1)]
            self._i += 1
        if isinstance(r, tuple):
            t, vals = r
            return float(t), {k: float(v) for k, v in vals.items()}
        return self._clock(), {k: float(v) for k, v in r.items()}

    def probe(self) -> Probe:
        return Probe(self.name, True, self.method, "", self.domains(), {"replay": True})

    def domains(self) -> tuple[Domain, ...]:
        if self._domains is None:
            if callable(self._readings):
                return ()
            first = self._readings[0]
            vals = first[1] if isinstance(first, tuple) else first
            self._domains = tuple(Domain(k) for k in vals)
        return self._domains

    def open(self) -> None:
        self._i = 0
        _, self._base = self._next()
        if self._domains is None:
            self._domains = tuple(Domain(k) for k in self._base)

    def snapshot(self) -> Snapshot:
        t, vals = self._next()
        self.snapshots_taken += 1
        return Snapshot(t, {k: v - self._base.get(k, 0.0) for k, v in vals.items()})

    def close(self) -> None:
        pass
