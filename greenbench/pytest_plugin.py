"""The pytest plugin: measure energy in tests, save the results, gate them against a baseline.

Loaded automatically when greenbench is installed (entry point ``pytest11``). In a test::

    def test_generate(greenbench):
        greenbench.run(lambda: model.generate(prompt), tokens=32)      # rounds of back-to-back calls

        with greenbench.measure(tokens=32):                            # or one measured block per use
            model.generate(prompt)

``greenbench.run(fn, tokens=N, rounds=5, warmup=1)`` calls ``fn`` as often as each round's window needs for
the energy counters to resolve it (see :mod:`greenbench.blocks`); ``greenbench.measure(tokens=N)`` measures
one block per use with the same meters and labels as :func:`greenbench.measure` (a block shorter than the
counters resolve reports no energy). Each test that measured something becomes one result document
(``workload.kind: measure``).

Options:
    ``--greenbench-save DIR``: write one result per test to DIR (the baseline, e.g. on main).
    ``--greenbench-compare DIR``: gate each test against DIR's result with the rules of ``greenbench gate``
        (same work, same method and hardware; size AND Holm-adjusted significance), print a summary, and
        fail the session on a significant regression (or an inconclusive one with ``--greenbench-strict``,
        or a refused comparison). ``--greenbench-max-regression PCT`` (default 5), ``--greenbench-junit
        FILE`` and ``--greenbench-markdown FILE``; ``$GITHUB_STEP_SUMMARY`` and GitHub annotations as the CLI.

The header says which meters measure here, and that energy is ESTIMATED when no counter is readable.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

_KEY = "greenbench_state"


class _State:
    def __init__(self, config):
        self.config = config
        self.save = config.getoption("greenbench_save")
        self.compare = config.getoption("greenbench_compare")
        self.meters = None
        self.warnings: list[str] = []
        self.reports: list[tuple[str, dict | None, str | None]] = []  # (nodeid, report, refusal or missing note)

    def get_meters(self):
        if self.meters is None:
            from greenbench.meters import select

            self.meters, self.warnings = select(None)
        return self.meters


class GreenbenchFixture:
    """The ``greenbench`` fixture: ``run(fn, tokens=...)`` and ``measure(tokens=...)``."""

    def __init__(self, state: _State, nodeid: str):
        self._state = state
        self.nodeid = nodeid
        self.samples = None

    def _samples(self, tokens):
        from greenbench.blocks import BlockSamples

        if self.samples is None:
            self._state.get_meters()  # selects the meters, and with them the warnings every result carries
            self.samples = BlockSamples(self.nodeid, tokens=tokens)
            self.samples.warnings.extend(self._state.warnings)
        elif self.samples.tokens != tokens:
            raise ValueError(f"{self.nodeid}: every measurement in one test must give the same tokens "
                             f"({self.samples.tokens!r}, then {tokens!r})")
        return self.samples

    def run(self, fn, *, tokens: int | None = None, rounds: int = 5, warmup: int = 1):
        """Measure ``fn()`` over ``rounds`` rounds; returns the samples so far."""
        from greenbench.blocks import measure_rounds

        return measure_rounds(fn, self._state.get_meters(), self._samples(tokens), rounds=rounds, warmup=warmup)

    @contextlib.contextmanager
    def measure(self, tokens: int | None = None):
        """Measure the ``with`` block once (one sample), with the meters of :func:`greenbench.measure`."""
        from greenbench.measurement import Measurement

        samples = self._samples(tokens)
        m = Measurement(tokens, meters=self._state.get_meters())
        with m:
            yield m
        r = m.result
        e = r["energy"]
        samples.add(energy_j=e.get("total_j"), duration_s=r["duration_s"], rows=e.get("meters") or [],
                    method=e.get("method"), window_s=e.get("window_s"))
        if r.get("contention"):
            samples.contention = r["contention"]
        samples.warnings.extend(r.get("warnings", []))


def pytest_addoption(parser):
    g = parser.getgroup("greenbench", "energy measurement and gating (greenbench)")
    g.addoption("--greenbench-save", metavar="DIR", default=None, help="Write one greenbench result per test to DIR.")
    g.addoption("--greenbench-compare", metavar="DIR", default=None,
                help="Gate each test against the result saved in DIR; fail the session on a significant regression.")
    g.addoption("--greenbench-max-regression", metavar="PCT", default="5", help="Allowed worsening in percent (default 5).")
    g.addoption("--greenbench-strict", action="store_true", default=False, help="Fail on inconclusive comparisons too.")
    g.addoption("--greenbench-junit", metavar="FILE", default=None, help="Write the comparisons as JUnit XML.")
    g.addoption("--greenbench-markdown", metavar="FILE", default=None, help="Write the comparisons as Markdown.")


def pytest_configure(config):
    setattr(config, _KEY, _State(config))
    if config.getoption("greenbench_compare"):
        from greenbench.gate import threshold

        try:
            threshold(config.getoption("greenbench_max_regression"), "--greenbench-max-regression")
        except Exception as exc:
            raise pytest.UsageError(getattr(exc, "message", str(exc))) from None


def pytest_report_header(config):
    state: _State = getattr(config, _KEY)
    if not (state.save or state.compare or config.getoption("verbose") > 0):
        return None
    from greenbench.meters import select

    meters, warnings = select(None)
    names = ", ".join(f"{m.name} ({m.method})" for m in meters)
    line = f"greenbench: energy by {names}"
    if any(m.method == "estimate" for m in meters):
        line += " -- no energy counter readable here: energy is ESTIMATED, not measured (see `greenbench meters`)"
    return line


@pytest.fixture
def greenbench(request):
    """Measure energy in a test: ``greenbench.run(fn, tokens=N)`` or ``with greenbench.measure(tokens=N): ...``."""
    state: _State = getattr(request.config, _KEY)
    fx = GreenbenchFixture(state, request.node.nodeid)
    yield fx
    if fx.samples is None or not fx.samples.duration_s:
        return
    from greenbench.blocks import file_name

    doc = fx.samples.document()
    name = file_name(fx.nodeid)
    if state.save:
        from greenbench import results
        from greenbench.fsutil import atomic_write_bytes

        atomic_write_bytes(Path(state.save) / name, results.canonical_bytes(doc))
    if state.compare:
        _compare(state, fx.nodeid, doc, Path(state.compare) / name)


def _compare(state: _State, nodeid: str, doc: dict, baseline: Path) -> None:
    from greenbench import gate
    from greenbench.errors import GreenbenchError

    if not baseline.is_file():
        state.reports.append((nodeid, None, f"no baseline ({baseline} does not exist): not compared"))
        return
    try:
        base = gate.collect_runs([str(baseline)], "baseline")
        report = gate.compare_runs(
            base, [gate.Run(nodeid, doc)],
            max_regression_pct=state.config.getoption("greenbench_max_regression"),
            strict=state.config.getoption("greenbench_strict"),
        )
    except GreenbenchError as exc:
        state.reports.append((nodeid, None, f"REFUSED: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")))
        return
    state.reports.append((nodeid, report, None))


def _failed(state: _State) -> list[str]:
    return [n for n, r, note in state.reports if (r is not None and r["exit_code"]) or (note or "").startswith("REFUSED")]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    state: _State = getattr(config, _KEY)
    if not state.compare:
        return
    tr = terminalreporter
    tr.section("greenbench gate")
    if not state.reports:
        tr.write_line("no test measured anything with the greenbench fixture")
    for nodeid, report, note in state.reports:
        if report is None:
            tr.write_line(f"{nodeid}: {note}")
            continue
        status = "FAIL" if report["exit_code"] else "PASS"
        tr.write_line(f"{nodeid}: {status} ({report['noise']})")
        for c in report["checks"]:
            worse = "-" if c["change_pct"] is None else f"{c['change_pct']:+.2f}%"
            p = "-" if c["p_adjusted"] is None else f"{c['p_adjusted']:.3g}"
            tr.write_line(f"    {c['metric']:<22} worse by {worse:>9}  threshold {c['threshold_pct']:g}%  "
                          f"adjusted p {p:>7}  {c['verdict']}" + (f"  ({c['note']})" if c["note"] else ""))
        for f in report["warnings"] + report["flags"]:
            tr.write_line(f"    warning: {f}")
    _write_outputs(state)


def _write_outputs(state: _State) -> None:
    from greenbench import gate
    from greenbench.fsutil import atomic_write_bytes

    done = [(n, r) for n, r, _ in state.reports if r is not None]
    md = "".join(f"#### {n}\n\n" + gate.to_markdown(r) + "\n" for n, r in done)
    md += "".join(f"- `{n}`: {note}\n" for n, r, note in state.reports if r is None)
    if state.config.getoption("greenbench_markdown"):
        atomic_write_bytes(Path(state.config.getoption("greenbench_markdown")), md.encode())
    if os.environ.get("GITHUB_STEP_SUMMARY") and md:
        gate.append_step_summary(md)
    if state.config.getoption("greenbench_junit"):
        atomic_write_bytes(Path(state.config.getoption("greenbench_junit")), gate.to_junit_many(done))
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for n, r in done:
            for line in gate.github_annotations(r, prefix=f"{n}: "):
                print(line)


def pytest_sessionfinish(session, exitstatus):
    state: _State = getattr(session.config, _KEY, None)
    if state is None or not state.compare:
        return
    if _failed(state) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
