"""A synthetic RAPL powercap tree whose counters advance at known watts, written by another process.

Run as a script: ``python powercap_writer.py ROOT PERIOD_S ZONE=WATTS ...`` where each ZONE is a path
relative to ROOT (``intel-rapl:0`` ...). Every PERIOD_S seconds (on an absolute schedule) it sets each zone's
``energy_uj`` to ``watts x seconds since start`` (modulo the zone's range), replacing the file atomically
(a new file renamed over the old), so that a reader sees an old or a new value, never half of one. A reader
that snapshots right after a change therefore sees exactly ``watts x elapsed``: the implied power of any
window between two observed changes is the writer's watts.

A separate process (not a thread) so that the writer keeps its cadence while the benchmark's own threads
busy-poll and hold the GIL.
"""

from __future__ import annotations

import os
import sys
import time


def main(argv: list[str]) -> None:
    root, period = argv[0], float(argv[1])
    zones = []
    for spec in argv[2:]:
        rel, watts = spec.split("=")
        d = os.path.join(root, rel)
        with open(os.path.join(d, "max_energy_range_uj")) as fh:
            rng = int(fh.read())
        zones.append((d, float(watts), rng))
    t0 = time.perf_counter()
    n = 0
    while True:
        n += 1
        due = t0 + n * period
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        elapsed = time.perf_counter() - t0
        for d, watts, rng in zones:
            tmp = os.path.join(d, ".energy_uj.tmp")
            with open(tmp, "w") as fh:
                fh.write(f"{int(watts * elapsed * 1e6) % rng}\n")
            os.replace(tmp, os.path.join(d, "energy_uj"))


if __name__ == "__main__":
    main(sys.argv[1:])
