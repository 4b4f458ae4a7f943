"""Measure the energy of any code block or command: ``greenbench.measure()`` and ``greenbench measure``.

Terms:
    measurement: one window from entering to leaving a ``with greenbench.measure():`` block (or from
        starting to reaping a command), over every selected meter (see :mod:`greenbench.meters`).
    total energy (``energy.total_j``): the sum of the domains that count into the total (nested
        domains such as RAPL ``core`` inside ``package`` are reported but not added).
    marginal energy (``energy.marginal_j``): total minus idle power x duration, when an idle
        baseline was measured first (``idle_s > 0``); see :mod:`greenbench.meters.idle`.
    partial: the block raised (e.g. Ctrl-C) or the command was interrupted; what was measured up to
        then is still reported, with ``partial: true``.

Example::

    with greenbench.measure(region="FRA") as m:
        out = generate(prompt)
        m.tokens = len(out)
    print(m.result["j_per_token"], m.result["carbon"]["g_co2e"])
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Sequence, Union

from greenbench.errors import GreenbenchError

__all__ = ["Measurement", "measure", "track", "run_command", "run_command_repeated"]


def _check_tokens(tokens) -> int | None:
    if tokens is None:
        return None
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise GreenbenchError(f"tokens must be a whole number >= 0, got {tokens!r}", "pass --tokens N with N >= 0")
    return tokens


class Measurement:
    """A context manager that measures the energy of its block; see :func:`measure`.

    Attributes:
        tokens: tokens produced in the block (settable inside it); gives ``j_per_token``.
        result: the result dict, set when the block exits (None before).
        warnings: meter-selection and carbon warnings, also recorded in ``result["warnings"]``.
    """

    def __init__(
        self,
        tokens: int | None = None,
        meters=None,
        region: str | None = None,
        *,
        idle_s: float = 0.0,
        pue: float | None = None,
        sysfs_root: str | os.PathLike | None = None,
        sampler=None,
        idle_at_edges: bool = False,
    ):
        self._idle_at_edges = idle_at_edges
        self.tokens = _check_tokens(tokens)
        self.region = region
        self.pue = pue
        self.idle_s = float(idle_s)
        from greenbench.profile import MAX_IDLE_S

        if not (math.isfinite(self.idle_s) and 0 <= self.idle_s <= MAX_IDLE_S):
            raise GreenbenchError(
                f"idle baseline must be a number of seconds from 0 to {MAX_IDLE_S:g}, got {idle_s}",
                "use --idle 5, or 0 for none",
            )
        self._requested = meters
        self._sysfs_root = sysfs_root
        self._sampler = sampler
        self.meters: list = []
        self.warnings: list[str] = []
        self.idle_power_w: dict[str, float] = {}
        self.result: dict | None = None
        self._start = None
        self._set = None
        self._probes: dict = {}
        self._contention = None
        self._t0 = 0.0

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> "Measurement":
        from greenbench.meters import select
        from greenbench.meters.contention import Contention
        from greenbench.runner import MeterSet

        self._carbon_preflight()
        req = self._requested
        if req is not None and not isinstance(req, str) and all(hasattr(m, "snapshot") for m in req) and len(req) > 0:
            self.meters, warnings = list(req), []
        else:
            if isinstance(req, str):
                req = [req]
            # a block or a command may use any device: the whole machine is metered (scope "machine")
            self.meters, warnings = select(list(req) if req else None, sysfs_root=self._sysfs_root, sampler=self._sampler)
        self.warnings.extend(warnings)
        if self._idle_at_edges:
            for m in self.meters:
                if hasattr(m, "idle_at_edges"):
                    m.idle_at_edges = True
        from greenbench.runner import _probe_details

        self._probes = _probe_details(self.meters)  # before opening: a probe re-discovers devices
        opened = []
        try:
            for m in self.meters:
                m.open()
                opened.append(m)
            self._set = MeterSet(self.meters)
            self.idle_power_w = self._set.measure_idle(self.idle_s)
            self._contention = Contention()
            self._contention.mark()
            self._start = self._set.edge(True)  # meters read (and aligned) before the block's time starts
            self._t0 = time.perf_counter()
        except BaseException:
            for m in reversed(opened):
                _close_quietly(m)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.finish(partial=exc_type is not None)
        return False

    def finish(self, *, partial: bool = False) -> dict:
        """Take the end snapshot, close the meters and build :attr:`result` (idempotent)."""
        if self.result is not None:
            return self.result
        if self._start is None:
            raise RuntimeError("Measurement.finish() before __enter__()")
        from greenbench.meters.base import weakest_method
        from greenbench.runner import summarize_energy

        try:
            duration_s = time.perf_counter() - self._t0
            end = self._set.edge(False)
            self._contention.mark()
            notes = []
            for m in self.meters:
                fn = getattr(m, "notes", None)
                if callable(fn):
                    notes.extend(fn())
        finally:
            for m in reversed(self.meters):
                _close_quietly(m)
        w = self._set.window(self._start, end, work_s=duration_s)
        tokens = _check_tokens(self.tokens)
        self.warnings.extend(n for n in notes if n not in self.warnings)
        if w.resolved:
            energy = summarize_energy([[w]], self._set, notes)
            total_j = energy["total_j"]
        else:
            method = weakest_method([r.method for r in w.rows] or [m.method for m in self.meters])
            energy = {
                "method": method,
                "meters": [{**r.as_dict(), "joules": None} for r in w.rows],
                "total_j": None,
                "marginal_j": None,
                "below_resolution": True,
                "below_resolution_note": (
                    f"the measured window lasted {w.duration_s * 1e3:.3g} ms, shorter than the {w.need_s * 1e3:.3g} ms "
                    f"({self._set.min_window_periods} update periods) the counters can resolve: no energy is reported; "
                    "measure a longer block (e.g. loop the work) to get one"
                ),
            }
            self.warnings.append(energy["below_resolution_note"])
            total_j = None
        energy["window_s"] = w.duration_s
        energy["slowest_period_s"] = self._set.slowest_period_s
        energy["probes"] = self._probes
        contention = self._contention.summary()
        if contention.get("flagged"):
            self.warnings.append(contention["warning"])
        marginal_j = energy.get("marginal_j")
        carbon = None
        if total_j is not None:
            carbon = self._carbon(total_j, tokens, marginal_j if marginal_j is None or marginal_j >= 0 else None,
                                  energy["method"])
        self.result = {
            "duration_s": duration_s,
            "tokens": tokens,
            "j_per_token": (total_j / tokens) if (tokens and total_j is not None) else None,
            "marginal_j_per_token": (marginal_j / tokens) if (tokens and marginal_j is not None) else None,
            "energy": energy,
            "carbon": carbon,
            "contention": contention,
            "warnings": list(self.warnings),
            "partial": bool(partial),
        }
        return self.result

    # -- carbon -----------------------------------------------------------------------------
    def _carbon_preflight(self) -> None:
        """Fail on a bad region/PUE before anything runs, not after."""
        from greenbench.carbon import check_settings

        check_settings(self.region, self.pue)

    def _carbon(self, total_j: float, tokens, marginal_j, method) -> dict | None:
        try:
            from greenbench.carbon import attribute
        except ImportError:
            self.warnings.append("greenbench.carbon is not available: no CO2e figures")
            return None
        block = attribute(
            total_j, tokens=tokens or None, region=self.region, pue=self.pue, marginal_energy_j=marginal_j,
            energy_method=method,
        )
        if block.get("warning"):
            self.warnings.append(block["warning"])
        return block


def _close_quietly(m) -> None:
    try:
        m.close()
    except Exception:
        pass


def measure(tokens: int | None = None, meters=None, region: str | None = None, **kwargs) -> Measurement:
    """Measure the energy of a ``with`` block.

    Args:
        tokens: tokens the block produces (or set ``m.tokens`` inside the block) for ``j_per_token``.
        meters: meter names (None: every usable hardware meter, else estimates with a warning) or
            already-built meter objects (e.g. a :class:`~greenbench.meters.replay.ReplayMeter`).
        region: grid region code for CO2e (see :mod:`greenbench.carbon`).
        **kwargs: ``idle_s`` (idle baseline seconds before the block, default 0), ``pue``,
            ``sysfs_root`` (powercap root), ``sampler``.

    Returns:
        A :class:`Measurement`; after the block, ``m.result`` holds ``duration_s``, ``tokens``,
        ``j_per_token``, ``energy`` (``method``, ``meters`` [{name, domain, method, joules, in_total}],
        ``total_j``, ``marginal_j``), ``carbon``, ``warnings`` and ``partial``.

    Raises:
        MeterError: a requested meter is unknown or unusable.
        GreenbenchError: bad tokens, region or PUE.
    """
    return Measurement(tokens, meters, region, **kwargs)


def track(_fn=None, *, tokens=None, meters=None, region: str | None = None, **kwargs):
    """Decorator: measure every call of a function, like ``with greenbench.measure(...)`` around its body.

    Args:
        tokens: tokens one call produces: a number, or a function of the call's return value
            (e.g. ``tokens=len``) for J/token.
        meters, region, **kwargs: as for :func:`measure`.

    Use it bare (``@greenbench.track``) or with options. The decorated function keeps each call's result
    dict in ``fn.measurements`` (a call that raised is recorded as ``partial``, and its exception
    propagates)::

        @greenbench.track(tokens=len)
        def generate(prompt):
            return model.generate(prompt)

        generate("hi")
        print(generate.measurements[-1]["j_per_token"])
    """
    import functools

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kw):
            m = Measurement(None, meters, region, **kwargs)
            try:
                with m:
                    out = fn(*args, **kw)
                    m.tokens = _check_tokens(tokens(out) if callable(tokens) else tokens)
            finally:
                if m.result is not None:
                    wrapper.measurements.append(m.result)
            return out

        wrapper.measurements = []
        return wrapper

    return decorate(_fn) if _fn is not None else decorate


StdoutTarget = Union[None, int, IO]


def run_command(
    argv: Sequence[str],
    *,
    tokens: int | None = None,
    meters=None,
    region: str | None = None,
    idle_s: float = 0.0,
    pue: float | None = None,
    child_stdout: StdoutTarget = None,
    sysfs_root: str | os.PathLike | None = None,
) -> dict:
    """Run ``argv`` (no shell) and measure it; the result adds ``command`` and ``exit_code``.

    The child inherits stdin and stderr, and stdout unless ``child_stdout`` redirects it (the CLI's
    ``--json`` sends it to stderr). Ctrl-C (SIGINT) while the child runs is forwarded to it when the
    terminal did not already deliver it (the child is not in the terminal's foreground process
    group); a second one sends SIGTERM, a third SIGKILL. The measurement then ends when the child
    has exited and is marked ``partial``. ``exit_code`` is the child's, or 128 + N if signal N ended it.

    Raises:
        GreenbenchError: empty command, command not found or not executable (nothing runs).
    """
    argv = [str(a) for a in argv]
    if not argv:
        raise GreenbenchError("no command given to measure", "put the command after --: greenbench measure -- CMD ARGS...")
    exe = argv[0]
    if os.sep not in exe:
        import shutil

        if shutil.which(exe) is None:
            raise GreenbenchError(f"command not found: {exe!r} (not on PATH)", "check the spelling, or give the path to the program")
    elif not os.path.exists(exe):
        raise GreenbenchError(f"command not found: {exe}", "check the path to the program")

    m = Measurement(tokens, meters, region, idle_s=idle_s, pue=pue, sysfs_root=sysfs_root, idle_at_edges=True)
    interrupts = 0
    proc: subprocess.Popen | None = None

    def on_sigint(signum, frame):
        nonlocal interrupts
        interrupts += 1
        if proc is None or proc.poll() is not None:
            return
        if interrupts == 1:
            if not _terminal_delivered(proc):
                proc.send_signal(signal.SIGINT)
        elif interrupts == 2:
            proc.terminate()
        else:
            proc.kill()

    in_main = threading.current_thread() is threading.main_thread()
    with m:
        try:
            proc = subprocess.Popen(argv, stdout=child_stdout)
        except OSError as exc:
            raise GreenbenchError(
                f"cannot run {exe!r}: {exc.strerror or exc}", "check that the program exists and is executable"
            ) from None
        old = signal.signal(signal.SIGINT, on_sigint) if in_main else None
        try:
            while True:
                try:
                    rc = proc.wait()
                    break
                except KeyboardInterrupt:  # no handler installed (not the main thread)
                    on_sigint(signal.SIGINT, None)
        finally:
            if in_main:
                signal.signal(signal.SIGINT, old)
    result = m.finish(partial=interrupts > 0)
    if interrupts:
        result["partial"] = True
    result["command"] = argv
    result["exit_code"] = rc if rc >= 0 else 128 - rc
    return result


def run_command_repeated(
    argv: Sequence[str],
    *,
    runs: int,
    warmup: int = 0,
    tokens: int | None = None,
    meters=None,
    region: str | None = None,
    child_stdout: StdoutTarget = None,
    sysfs_root: str | os.PathLike | None = None,
    progress=None,
) -> dict:
    """Run ``argv`` ``warmup`` times unmeasured, then ``runs`` times measured (hyperfine style).

    Returns the result document of the runs (``workload.kind: measure``, one sample per run; see
    :mod:`greenbench.blocks`) with ``command`` and ``exit_code`` added. Stops at the first run that fails
    (non-zero exit) or is interrupted, keeping the runs measured before it (``partial``).

    Raises:
        GreenbenchError: ``runs`` < 1 or ``warmup`` < 0, or the command cannot be started.
    """
    from greenbench.blocks import BlockSamples
    from greenbench.meters import select

    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise GreenbenchError(f"--runs must be a whole number >= 1, got {runs!r}", "e.g. --runs 10")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise GreenbenchError(f"--warmup must be a whole number >= 0, got {warmup!r}", "e.g. --warmup 1")
    argv = [str(a) for a in argv]
    if meters is None or all(isinstance(m, str) for m in meters):
        meters, warnings = select(list(meters) if meters else None, sysfs_root=sysfs_root)
    else:
        warnings = []
    samples = BlockSamples(" ".join(argv), tokens=tokens, identity={"command": argv})
    samples.warnings.extend(warnings)
    from greenbench.meters.contention import Contention
    from greenbench.runner import _probe_details

    samples.probes = _probe_details(meters)
    contention = Contention()  # over all measured runs: each run alone may be too short to tell
    total = warmup + runs
    exit_code, partial = 0, None
    try:
        for i in range(total):
            if progress:
                progress(f"{'warmup' if i < warmup else 'run'} {i + 1 if i < warmup else i - warmup + 1}/"
                         f"{warmup if i < warmup else runs}", i, total)
            if i == warmup:
                contention.mark()
            r = run_command(argv, tokens=tokens, meters=meters, region=region, child_stdout=child_stdout)
            if r["exit_code"] != 0 or r.get("partial"):
                exit_code = r["exit_code"] if not r.get("partial") else 130
                partial = (f"run {i + 1} of {total} " + ("was interrupted" if r.get("partial") else
                           f"exited with code {exit_code}") + ": stopped there")
                break
            if i < warmup:
                continue
            contention.mark()
            e = r["energy"]
            samples.add(energy_j=e.get("total_j"), duration_s=r["duration_s"], rows=e.get("meters") or [],
                        method=e.get("method"), window_s=e.get("window_s"))
            own_contention = (r.get("contention") or {}).get("warning")
            samples.warnings.extend(w for w in r.get("warnings", []) if w not in samples.warnings and w != own_contention)
    except KeyboardInterrupt:  # between two runs: keep what was measured
        exit_code, partial = 130, "interrupted (Ctrl-C) between runs: stopped there"
    samples.contention = contention.summary()
    if progress:
        progress("done", total, total)
    if not samples.duration_s:
        return {"command": argv, "exit_code": exit_code, "partial": True, "partial_reason": partial, "runs": 0}
    doc = samples.document(region=region)
    doc["command"] = argv
    doc["exit_code"] = exit_code
    if partial:
        doc["partial"], doc["partial_reason"] = True, partial
    return doc


def _terminal_delivered(proc: subprocess.Popen) -> bool:
    """Whether a terminal Ctrl-C already reached the child (it is in the terminal's foreground group)."""
    for stream in (sys.stdin, sys.stderr, sys.stdout):
        try:
            fd = stream.fileno()
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgid(proc.pid)
        except (AttributeError, OSError, ValueError):
            continue
    return False
