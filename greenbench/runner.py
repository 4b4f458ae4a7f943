"""The runner: warmup, repeats and measurement windows around each phase of a workload.

A *repeat* of an inference workload is one prompt: *prefill* (the prompt's forward pass up to the
first generated token; its time is the time to first token, TTFT) and *decode* (the remaining
``max_new_tokens - 1`` greedy steps). Warmup repeats run the same work unmeasured.

Terms:
    timing run: each measured repeat first runs prefill and decode once, timed tightly around the work
        (``time.perf_counter`` right before and after, no meter read in between): TTFT and tokens/s
        always come from these single, unrepeated timings.
    window: the interval between two *edges*; its energy is the difference of every meter's
        snapshots. At an *aligned* edge the runner first busy-polls the slowest counter until it
        advances (:meth:`MeterSet.edge`), so the reading is fresh and the window's time runs from that
        counter update to the next one seen after the work. A counter that does not advance within three
        of its periods at an edge (stalled, or this process starved of CPU) may be stale by more than one
        period: that window is not accepted and is measured again.
    resolution rule: a counter that updates every P seconds is stale by up to P at an edge, so a window
        of N periods can be off by up to 1/N. A window counts as *resolved* only when it spans at least
        ``min_window_periods`` (default 20, :data:`~greenbench.meters.base.MIN_WINDOW_PERIODS`) periods of
        the slowest counter it reads when its edges are aligned to that counter, and twice as many
        periods of every counter whose edges are not (as MLPerf Power lengthens runs).
    inner repeats: when the timing run's window of a phase is not resolved, the phase is repeated back
        to back inside one longer window (prefill: reset + prefill; decode: rewind to the prefilled
        prompt + decode) until the window is long enough, and the window's joules and time are divided
        by the number of repetitions (``metrics.<phase>.inner_repeats``). A session that cannot repeat a
        phase (no ``rewind``) has that phase reported as ``below_resolution: true`` with
        ``j_per_token: null``: a number the counter cannot resolve is not reported.
    work energy: ``energy.total_j`` and ``energy.meters`` are the energy of the measured repeats' work:
        each window's joules divided by its inner repeats, summed. ``energy.windows_j`` is everything the
        meters read inside windows.
    contention: CPU time that other processes used while the repeats ran
        (:mod:`greenbench.meters.contention`); above a threshold the result is flagged.

Ctrl-C during the repeats stops the run; the repeats already completed are kept and the result is
marked ``partial``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from greenbench import stats
from greenbench.meters.base import (
    MIN_WINDOW_PERIODS,
    DomainEnergy,
    Meter,
    Snapshot,
    total_joules,
    update_period_s,
    weakest_method,
)
from greenbench.meters.base import window as meter_window
from greenbench.meters.idle import domain_key, idle_basis, marginal_total_j

Progress = Callable[[str, int, int], None]  # (description, completed, total)
clock = time.perf_counter

#: Attempts at lengthening a window before a phase is reported below resolution.
MAX_LENGTHEN_ATTEMPTS = 3


@dataclass
class Edge:
    """One window edge: when it was (s, perf_counter) and every meter's snapshot there."""

    t_s: float
    snaps: list[Snapshot]
    aligned: bool = False
    missed: bool = False  # the counter to align to did not advance in time: its reading may be stale by more


@dataclass
class Window:
    """One measured window.

    Attributes:
        duration_s: the window's time, edge to edge (s).
        rows: per-domain energy over the whole window.
        inner: how many times the phase ran back to back inside it.
        work_s: time spent in the work itself, without meter reads and edge alignment (s).
        resolved: the window is long enough for every counter it read (the resolution rule).
        need_s: the shortest window the resolution rule allowed.
    """

    duration_s: float
    rows: list[DomainEnergy]
    inner: int = 1
    work_s: float | None = None
    resolved: bool = True
    need_s: float = 0.0

    @property
    def energy_j(self) -> float:
        return total_joules(self.rows)

    @property
    def per_inner_j(self) -> float:
        return self.energy_j / self.inner


@dataclass
class RepeatRecord:
    prefill: Window
    decode: Window | None
    tokens: list[int]
    ttft_s: float = 0.0
    decode_s: float | None = None


@dataclass
class MeterSet:
    """The meters of a run, opened together and snapshotted together at every window edge.

    ``idle_power_w`` maps ``"meter/domain"`` keys (:func:`greenbench.meters.idle.domain_key`) to idle watts.
    ``min_window_periods``: the resolution rule's N (see the module docstring).
    """

    meters: Sequence[Meter]
    idle_power_w: dict[str, float] = field(default_factory=dict)
    min_window_periods: int = MIN_WINDOW_PERIODS
    idle_note: str | None = None

    def __post_init__(self) -> None:
        counters = [(update_period_s(m), m) for m in self.meters]
        counters = [(p, m) for p, m in counters if p > 0]
        aligners = [(p, m) for p, m in counters if callable(getattr(m, "wait_for_update", None))]
        self.align_meter = max(aligners, key=lambda pm: pm[0])[1] if aligners else None
        self._periods = counters

    # -- the resolution rule --------------------------------------------------------------------
    def need_s(self, aligned: bool) -> float:
        """The shortest window the counters can resolve, with edges aligned (or not) to the slowest one."""
        n = self.min_window_periods
        need = 0.0
        for p, m in self._periods:
            fresh = aligned and m is self.align_meter and getattr(m, "aligns_all_domains", True)
            need = max(need, p * (n if fresh else 2 * n))
        return need

    @property
    def slowest_period_s(self) -> float:
        return max((p for p, _ in self._periods), default=0.0)

    # -- edges and windows ----------------------------------------------------------------------
    def edge(self, start: bool) -> Edge:
        """Snapshot every meter at a window edge.

        With a counter to align to: busy-poll it until it advances, note the time, then read every meter.
        Without: at a start edge read the meters first and then note the time, at an end edge the other way
        round, so that meter reads stay outside the window's time.
        """
        m = self.align_meter
        if m is not None:
            aligned = bool(m.wait_for_update(3 * update_period_s(m) + 0.002))
            t = clock()
            return Edge(t, [x.snapshot() for x in self.meters], aligned, missed=not aligned)
        if start:
            snaps = [x.snapshot() for x in self.meters]
            return Edge(clock(), snaps)
        t = clock()
        return Edge(t, [x.snapshot() for x in self.meters])

    def window(self, start: Edge, end: Edge, *, inner: int = 1, work_s: float | None = None) -> Window:
        """The window between two edges."""
        rows: list[DomainEnergy] = []
        for m, s0, s1 in zip(self.meters, start.snaps, end.snaps):
            rows.extend(meter_window(m, s0, s1))
        duration = end.t_s - start.t_s
        need = self.need_s(start.aligned and end.aligned)
        # an edge whose counter did not advance within three periods may be stale by more than one period, so
        # the 1/N bound does not hold for this window: it is not accepted (a repeated window is tried instead)
        ok = duration >= need and not (start.missed or end.missed)
        return Window(duration, rows, inner, work_s, ok, need)

    def repeat_until_resolved(self, once: Callable[[], object]) -> Window:
        """Run ``once()`` back to back inside one window until the window is long enough (see module docstring)."""
        need = self.need_s(self.align_meter is not None)
        w = None
        for _ in range(MAX_LENGTHEN_ATTEMPTS):
            e0 = self.edge(True)
            k = 0
            t0 = clock()
            while True:
                once()
                k += 1
                if clock() - e0.t_s >= need:
                    break
            t1 = clock()
            w = self.window(e0, self.edge(False), inner=k, work_s=t1 - t0)
            if w.resolved:
                return w
            need = max(need, w.need_s) * 1.05  # an edge missed its update: the unaligned rule applies
        return w

    # -- idle -----------------------------------------------------------------------------------
    def marginal_j(self, w: Window) -> float:
        """Window energy minus idle power x duration, per domain (signed: negative when idle exceeds it)."""
        return marginal_total_j(w.rows, self.idle_power_w, w.duration_s)

    def measure_idle(self, duration_s: float, sleep: Callable[[float], None] = time.sleep) -> dict[str, float]:
        """Idle power over ``duration_s`` seconds (0 disables), lengthened to what the counters can resolve.

        Process-scoped meters (the estimate) idle at 0 W by construction (basis ``assumed``).
        """
        if duration_s <= 0 or not self.meters:
            self.idle_power_w = {}
            return {}
        need = self.need_s(self.align_meter is not None)
        if duration_s < need:
            self.idle_note = (
                f"idle baseline lengthened from {duration_s:g} s to {need:.3g} s: a shorter window is below the "
                f"resolution of a counter that updates every {self.slowest_period_s * 1e3:.3g} ms"
            )
            duration_s = need
        for _ in range(MAX_LENGTHEN_ATTEMPTS):  # a missed edge may be stale: measure the idle window again
            e0 = self.edge(True)
            sleep(duration_s)
            e1 = self.edge(False)
            if not (e0.missed or e1.missed):
                break
        else:
            self.idle_note = ((self.idle_note + "; ") if self.idle_note else "") + (
                f"every idle window's edges missed a counter update ({MAX_LENGTHEN_ATTEMPTS} tries): the idle power may "
                "be off by more than the resolution rule allows")
        out: dict[str, float] = {}
        for m, s0, s1 in zip(self.meters, e0.snaps, e1.snaps):
            elapsed = s1.t_s - s0.t_s
            if elapsed <= 0:
                elapsed = duration_s
            for row in meter_window(m, s0, s1):
                key = domain_key(row.name, row.domain)
                out[key] = 0.0 if getattr(m, "process_scoped", False) else row.joules / elapsed
        self.idle_power_w = out
        return out


def _contention():
    from greenbench.meters.contention import Contention

    return Contention()


def run_inference(
    session,
    meterset: MeterSet,
    *,
    repeats: int,
    warmup: int,
    max_new_tokens: int,
    progress: Progress | None = None,
    contention=None,
    notes: list[str] | None = None,
) -> tuple[list[RepeatRecord], str | None]:
    """Run warmup + measured repeats (see the module docstring). Returns (records, partial_reason or None)."""
    n_decode = max_new_tokens - 1
    total = repeats  # the bar counts measured repeats; warmup shows in its label
    done = 0
    rewind = getattr(session, "rewind", None)
    notes = notes if notes is not None else []

    def tick(desc: str) -> None:
        if progress:
            progress(desc, done, total)

    def prefill_once():
        session.reset()
        session.prefill()

    records: list[RepeatRecord] = []
    try:
        for i in range(warmup):
            tick(f"warmup {i + 1}/{warmup}")
            session.reset()
            first = session.prefill()
            if n_decode:
                session.decode(first, n_decode)
        if contention is not None:
            contention.mark()
        for i in range(repeats):
            tick(f"repeat {i + 1}/{repeats}")
            # the timing run: TTFT and tokens/s, and the windows when they are long enough
            session.reset()
            e0 = meterset.edge(True)
            ta = clock()
            first = session.prefill()
            tb = clock()
            e1 = meterset.edge(False)
            prefill_w = meterset.window(e0, e1, work_s=tb - ta)
            tokens = [first]
            decode_w = None
            decode_s = None
            if n_decode:
                tc = clock()
                tokens += list(session.decode(first, n_decode))
                td = clock()
                decode_s = td - tc
                decode_w = meterset.window(e1, meterset.edge(False), work_s=decode_s)
            # lengthen the windows the counters cannot resolve
            if not prefill_w.resolved:
                prefill_w = meterset.repeat_until_resolved(prefill_once)
            if decode_w is not None and not decode_w.resolved:
                if callable(rewind):  # the session holds a prefilled prompt: rewind() returns to it
                    last: list = []

                    def decode_once():
                        rewind()
                        last[:] = session.decode(first, n_decode)

                    decode_w = meterset.repeat_until_resolved(decode_once)
                    if last and list(last) != tokens[1:]:
                        notes.append("decode gave other tokens when repeated inside its window: the session is "
                                     "not deterministic, so repeated windows may not be the same work")
            records.append(RepeatRecord(prefill_w, decode_w, tokens, tb - ta, decode_s))
            done += 1
            if contention is not None:
                contention.mark()
        tick("done")
    except KeyboardInterrupt:
        return records, f"interrupted (Ctrl-C) after {len(records)} of {repeats} measured repeats"
    return records, None


def _phase_metrics(windows: list[Window], tokens_per_window: int, meterset: MeterSet, times: list[float] | None = None) -> dict:
    """Per-phase statistics: energy from the windows (per inner repeat), speed from the single timings."""
    if not windows or tokens_per_window <= 0:
        return {
            "j_per_token": None, "tokens_per_s": None, "duration_s": None, "marginal_j_per_token": None,
            "j_per_token_samples": [], "tokens_per_s_samples": [], "duration_s_samples": [],
            "j_per_token_iqr": None, "tokens_per_s_iqr": None, "tokens": tokens_per_window,
            "inner_repeats": None, "inner_repeats_samples": [], "window_s": None, "below_resolution": False,
        }
    resolved = [w for w in windows if w.resolved]
    jpt = [w.per_inner_j / tokens_per_window for w in resolved]
    times = times if times is not None else [w.work_s if w.work_s is not None else w.duration_s / w.inner for w in windows]
    tps = [tokens_per_window / t for t in times if t and t > 0]
    marg = [meterset.marginal_j(w) / (w.inner * tokens_per_window) for w in resolved]
    below = not resolved
    out = {
        "j_per_token": stats.median(jpt) if jpt else None,
        "j_per_token_iqr": stats.iqr(jpt) if jpt else None,
        "marginal_j_per_token": stats.median(marg) if (meterset.idle_power_w and marg) else None,
        "tokens_per_s": stats.median(tps) if tps else None,
        "tokens_per_s_iqr": stats.iqr(tps) if tps else None,
        "duration_s": stats.median([w.duration_s / w.inner for w in windows]),
        "j_per_token_samples": jpt,
        "tokens_per_s_samples": tps,
        "duration_s_samples": [w.duration_s / w.inner for w in windows],
        "tokens": tokens_per_window,
        "inner_repeats": int(stats.median([w.inner for w in windows])),
        "inner_repeats_samples": [w.inner for w in windows],
        "window_s": stats.median([w.duration_s for w in windows]),
        "below_resolution": below,
    }
    if below:
        out["below_resolution_note"] = (
            f"no window was accepted: each was shorter than the {windows[0].need_s * 1e3:.3g} ms the counters can "
            f"resolve ({meterset.min_window_periods} update periods of {meterset.slowest_period_s * 1e3:.3g} ms, twice "
            "that for edges not aligned to the counter) or an edge missed a counter update, and the phase could not "
            "be measured in a longer window: no energy is reported for it"
        )
    elif len(resolved) < len(windows):
        out["unresolved_windows"] = len(windows) - len(resolved)
    return out


def summarize_energy(repeats: list[list[Window]], meterset: MeterSet, meter_notes: list[str] | None = None) -> dict:
    """The result's ``energy`` block: per (meter, domain) work energy of the complete repeats.

    ``repeats`` holds each measured repeat's windows (prefill and decode, or one training window). Only
    repeats whose every window was resolved count: a repeat with a window the counters could not resolve
    has no trustworthy energy as a whole, so it is left out (``repeats_in_total`` says how many count) and
    carbon, which divides this energy by the tokens of the same repeats, stays consistent. Each window's
    joules (and model inputs) are divided by its inner repeats: the energy of the work done once.
    With no complete repeat, nothing is reported (``total_j`` null, ``below_resolution``), never 0 J.
    """
    complete = [ws for ws in repeats if ws and all(w.resolved for w in ws)]
    measured = [w for ws in complete for w in ws]
    sums: dict[tuple[str, str], DomainEnergy] = {}
    for w in measured:
        for r in w.rows:
            scaled = DomainEnergy(r.name, r.domain, r.method, r.joules / w.inner, r.in_total, r.basis,
                                  {k: v / w.inner for k, v in r.inputs.items()} if r.inputs else None)
            key = (r.name, r.domain)
            sums[key] = sums[key].plus(scaled) if key in sums else scaled
    rows = list(sums.values())
    methods = [r.method for r in rows] or [m.method for m in meterset.meters]
    out = {
        "method": weakest_method(methods) if methods else "estimate",
        "meters": [r.as_dict() for r in rows],
        "total_j": total_joules(rows) if complete else None,
        "windows_j": sum(w.energy_j for w in measured) if complete else None,
        "marginal_j": None,
        "measured_s": sum(w.duration_s / w.inner for w in measured),
        "repeats_in_total": len(complete),
        "repeats_measured": len(repeats),
        "idle_power_w": None,
        "idle_exceeds_measured": False,
    }
    if not complete and repeats:
        out["below_resolution"] = True
    elif len(complete) < len(repeats):
        out["repeats_note"] = (
            f"{len(repeats) - len(complete)} of {len(repeats)} measured repeats had a window the counters could not "
            "resolve (too short, or an edge missed a counter update): the energy total and carbon cover the other "
            f"{len(complete)}"
        )
    if meterset.idle_power_w:
        basis = idle_basis(meterset.meters, meterset.idle_power_w)
        out["idle_power_w"] = [{"domain_key": k, "power_w": p, "basis": basis[k]} for k, p in meterset.idle_power_w.items()]
        # per domain over the summed windows, signed (never floored per window)
        per_domain: dict[str, float] = {}
        for w in measured:
            for r in w.rows:
                if r.in_total:
                    k = domain_key(r.name, r.domain)
                    per_domain[k] = per_domain.get(k, 0.0) + (
                        r.joules - meterset.idle_power_w.get(k, 0.0) * w.duration_s) / w.inner
        if complete:
            out["marginal_j"] = sum(per_domain.values())
        neg = [k for k, v in per_domain.items() if v < 0]
        if neg:
            out["idle_exceeds_measured"] = True
            out["idle_note"] = (
                f"idle draw exceeds what was measured in {', '.join(neg)}: the machine drew more while idling than "
                "while working, or the idle window was noisy; marginal energy is negative there and reported as is"
            )
        if meterset.idle_note:
            out["idle_lengthened_note"] = meterset.idle_note
    notes = list(meter_notes or [])
    if notes:
        out["notes"] = notes
    return out


def inference_metrics(records: list[RepeatRecord], prompt_tokens: int, batch: int, meterset: MeterSet) -> dict:
    prefill = _phase_metrics([r.prefill for r in records], prompt_tokens * batch, meterset,
                             times=[r.ttft_s for r in records])
    decode_windows = [r.decode for r in records if r.decode is not None]
    n_decode = (len(records[0].tokens) - 1) * batch if records else 0
    decode = _phase_metrics(decode_windows, n_decode, meterset,
                            times=[r.decode_s for r in records if r.decode_s is not None])
    ttft = [r.ttft_s for r in records]
    return {
        "ttft_s": stats.median(ttft) if ttft else None,
        "ttft_s_samples": ttft,
        "ttft_s_iqr": stats.iqr(ttft) if ttft else None,
        "prefill": prefill,
        "decode": decode,
    }


def run_training(
    session, meterset: MeterSet, *, repeats: int, warmup: int, steps: int, progress: Progress | None = None,
    contention=None,
) -> tuple[list[tuple[Window, list[float], float]], str | None]:
    """Warmup blocks, then ``repeats`` windows of ``steps`` training steps (lengthened by whole blocks of
    ``steps`` when the counters cannot resolve one). Returns ([(window, losses, block_seconds)], partial)."""
    total = repeats  # the bar counts measured repeats; warmup shows in its label
    records: list[tuple[Window, list[float], float]] = []
    try:
        for i in range(warmup):
            if progress:
                progress(f"warmup {i + 1}/{warmup}", 0, total)
            session.steps(steps)
        if contention is not None:
            contention.mark()
        for i in range(repeats):
            if progress:
                progress(f"repeat {i + 1}/{repeats}", i, total)
            e0 = meterset.edge(True)
            ta = clock()
            losses = list(session.steps(steps))
            tb = clock()
            w = meterset.window(e0, meterset.edge(False), work_s=tb - ta)
            if not w.resolved:
                w = meterset.repeat_until_resolved(lambda: losses.extend(session.steps(steps)))
            records.append((w, losses, tb - ta))
            if contention is not None:
                contention.mark()
        if progress:
            progress("done", total, total)
    except KeyboardInterrupt:
        return records, f"interrupted (Ctrl-C) after {len(records)} of {repeats} measured repeats"
    return records, None


def training_metrics(records, tokens_per_window: int, meterset: MeterSet) -> dict:
    phase = _phase_metrics([w for w, _, _ in records], tokens_per_window, meterset, times=[t for _, _, t in records])
    losses = [l for _, ls, _ in records for l in ls]
    empty = _phase_metrics([], 0, meterset)
    return {
        "ttft_s": None,
        "ttft_s_samples": [],
        "prefill": empty,
        "decode": dict(empty),
        "train": {
            **phase,
            "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else None,
            "steps_per_repeat": None,
        },
    }


def run_profile(
    profile,
    *,
    meters: Sequence[Meter] | None = None,
    backend=None,
    warnings: list[str] | None = None,
    progress: Progress | None = None,
    status: Callable[[str], None] | None = None,
    measure_bandwidth: bool = True,
    scope=None,
) -> dict:
    """Benchmark ``profile`` and return its result document (not yet written).

    Args:
        profile: a loaded :class:`greenbench.profile.Profile` (CLI overrides already applied).
        meters: the meters to use (opened and closed here); default: :func:`greenbench.meters.select`
            on ``profile.run.meters`` within the backend's device scope.
        backend: the backend (inference or training); default: :func:`greenbench.backends.backend_for`.
        warnings: warnings so far (e.g. from meter selection); recorded in the result.
        progress: called as ``progress(description, measured repeats completed, repeats)`` between repeats,
            never inside a window (warmup repeats show in the description only).
        status: called with one-line status messages (model building, idle baseline).
        measure_bandwidth: measure memory bandwidth for ``metrics.decode.roofline_fraction``.
        scope: the :class:`~greenbench.meters.scope.Scope` the meters cover (recorded in the result);
            default: what the backend declares, or the whole machine with ``[run] scope = "machine"``.
    """
    warnings = list(warnings or [])
    say = status or (lambda msg: None)
    from greenbench.backends import device_scope
    from greenbench.profile import SIMULATED_BACKENDS

    training = profile.run.workload == "training"
    if backend is None:
        from greenbench.backends import backend_for

        backend = backend_for(profile)  # training: the PyTorch trainer on the device the backend names
    if scope is None:
        scope = device_scope(profile.run.backend, kind=profile.run.scope, backend=backend)
    if meters is None and profile.run.backend in SIMULATED_BACKENDS:
        meters = []  # the simulated session brings its own (simulated) meters
    elif meters is None:
        from greenbench.meters import select

        meters, meter_warnings = select(list(profile.run.meters) if profile.run.meters else None, scope=scope)
        warnings.extend(meter_warnings)
    say(f"preparing {profile.name} on {backend.name}")
    session = backend.prepare(profile, progress=say)
    backend_name = backend.name

    try:
        return _measure_session(
            profile, session, backend_name, list(meters), warnings, progress, say, measure_bandwidth, training, scope
        )
    finally:
        close = getattr(session, "close", None)
        if close:
            close()


def _probe_details(meters) -> dict:
    """Each meter's probe detail (zones, total rule, counter vs polled power, update period), for ``energy.probes``."""
    out = {}
    for m in meters:
        try:
            detail = dict(m.probe().detail or {})
        except Exception as exc:  # a detail is for the reader; failing to get one must not lose a run
            detail = {"error": f"{type(exc).__name__}: {exc}"}
        detail["update_period_s"] = update_period_s(m)
        detail["period_source"] = getattr(m, "period_source", "n/a (not a counter)" if not update_period_s(m) else "given")
        out[m.name] = detail
    return out


def _scope_block(scope, meters) -> dict:
    devices = []
    for m in meters:
        devs = getattr(m, "devices", None)
        devices.extend(devs() if callable(devs) else [{"device": "unknown", "meter": m.name}])
    return {**scope.as_dict(), "described": scope.describe(), "devices": devices}


def _measure_session(profile, session, backend_name, meters, warnings, progress, say, measure_bandwidth, training,
                     scope):
    """Meter windows around the prepared session's work, then the result document (the caller closes the session)."""
    from greenbench import environment, results

    sim_meters = getattr(session, "energy_meters", None)
    simulated = bool(callable(sim_meters) and sim_meters())
    if simulated:
        # A simulated backend: its energy comes from its cost model, per window, as `simulated` meters.
        # The host's own draw while simulating says nothing about the simulated hardware, so host meters
        # are not used.
        meters = list(sim_meters())
        warnings.append(
            f"backend {backend_name!r} is simulated: every joule in this result is SIMULATED from its published "
            "cost model, not measured"
        )
    meterset = MeterSet(list(meters), min_window_periods=profile.run.min_window_periods)
    probes = _probe_details(meterset.meters)
    contention = _contention()
    run_notes: list[str] = []
    opened: list[Meter] = []
    try:
        for m in meterset.meters:
            m.open()
            opened.append(m)
        if profile.run.idle_s > 0:
            say(f"measuring idle power for {max(profile.run.idle_s, meterset.need_s(True)):.3g} s")
            meterset.measure_idle(profile.run.idle_s)
        if training:
            train_records, partial_reason = run_training(
                session, meterset, repeats=profile.run.repeats, warmup=profile.run.warmup,
                steps=profile.train.steps, progress=progress, contention=contention,
            )
        else:
            records, partial_reason = run_inference(
                session,
                meterset,
                repeats=profile.run.repeats,
                warmup=profile.run.warmup,
                max_new_tokens=profile.generation.max_new_tokens,
                progress=progress,
                contention=contention,
                notes=run_notes,
            )
    finally:
        meter_notes = []
        for m in opened:
            notes = getattr(m, "notes", None)
            if callable(notes):
                try:
                    meter_notes.extend(notes())
                except Exception:
                    pass
            try:
                m.close()
            except Exception:  # a meter failing to close must not lose the measurements
                pass

    if training:
        tokens_per_window = session.tokens_per_step * profile.train.steps
        metrics = training_metrics(train_records, tokens_per_window, meterset)
        metrics["train"]["steps_per_repeat"] = profile.train.steps
        extra = getattr(session, "train_metrics", None)  # MFU, its peak and loss_before, from the session
        if extra:
            metrics["train"].update(extra(metrics["train"]))
        metrics["cost"] = session.cost()
        repeat_windows = [[w] for w, _, _ in train_records]
        completed = len(train_records)
        workload = {
            "kind": "training",
            "prompt_tokens": session.seq_len,
            "new_tokens": 0,
            "batch_size": session.batch_size,
            "tokens_per_repeat": tokens_per_window,
            "generated_token_ids": [],
        }
        tokens_per_repeat = tokens_per_window
        basis = "trained"
        unresolved = ["train"] if metrics["train"].get("below_resolution") else []
    else:
        prompt_tokens = len(session.prompt_ids)
        batch = getattr(session, "batch_size", 1)
        metrics = inference_metrics(records, prompt_tokens, batch, meterset)
        cost = dict(session.cost() or {})
        decode = metrics["decode"]
        decode["macs_per_token"] = cost.get("macs_per_token")
        decode["bytes_per_token"] = cost.get("bytes_per_token")
        decode["roofline_fraction"] = None
        decode["roofline_note"] = None
        if measure_bandwidth and decode["tokens_per_s"] and cost.get("bytes_per_token") and partial_reason is None:
            _roofline(decode, cost, session, say)
        metrics["cost"] = cost
        repeat_windows = [[r.prefill] + ([r.decode] if r.decode is not None else []) for r in records]
        completed = len(records)
        new_tokens = len(records[0].tokens) if records else profile.generation.max_new_tokens
        workload = {
            "kind": "inference",
            "prompt_tokens": prompt_tokens,
            "new_tokens": new_tokens,
            "batch_size": batch,
            "generated_token_ids": records[0].tokens if records else [],
        }
        tokens_per_repeat = new_tokens * batch
        basis = "generated"
        unresolved = [ph for ph in ("prefill", "decode") if metrics[ph].get("below_resolution")]

    energy = summarize_energy(repeat_windows, meterset, meter_notes + run_notes)
    energy["scope"] = _scope_block(scope, meterset.meters) if not simulated else {
        "kind": "simulated", "described": "the simulated device (no host device is metered)", "devices": []}
    energy["probes"] = probes
    energy["min_window_periods"] = meterset.min_window_periods
    energy["slowest_period_s"] = meterset.slowest_period_s
    for note in meter_notes + run_notes:
        warnings.append(note)
    if unresolved:
        warnings.append(
            f"{' and '.join(unresolved)} energy is below what the counters can resolve and is not reported, so "
            "neither is the energy total or carbon of a repeat"
        )
    if energy.get("repeats_note"):
        warnings.append(energy["repeats_note"])
    contention_block = contention.summary()
    if contention_block.get("flagged"):
        warnings.append(contention_block["warning"])
    from greenbench.carbon import attribute

    marginal = energy["marginal_j"]
    carbon_tokens = tokens_per_repeat * energy["repeats_in_total"]
    carbon = attribute(
        energy["total_j"] or 0.0,
        tokens=carbon_tokens or None,
        region=profile.carbon.region,
        pue=profile.carbon.pue,
        marginal_energy_j=marginal if marginal is None or marginal >= 0 else None,
        energy_method=energy["method"],
    )
    if energy["total_j"] is None:  # nothing measured: grams of nothing are not 0 g
        for key in ("it_energy_j", "energy_j", "g_co2e", "g_co2e_per_1k_tokens", "kwh_per_million_tokens",
                    "idle_subtracted_energy_j", "idle_subtracted_g_co2e", "marginal_energy_j", "marginal_g_co2e"):
            if key in carbon:
                carbon[key] = None
        carbon["note"] = "no energy was resolved, so no carbon is attributed"
    carbon["tokens_basis"] = basis
    if carbon.get("warning"):
        warnings.append(carbon["warning"])
    from greenbench.workloads.identity import digest as work_digest
    from greenbench.workloads.identity import identity as work_identity

    model_info = dict(session.describe() or {})
    ident = work_identity(
        profile, backend=backend_name, prompt_ids=None if training else session.prompt_ids, model_info=model_info,
        batch_size=workload["batch_size"], device=model_info.get("device"),
    )
    workload.update(
        repeats=profile.run.repeats,
        repeats_completed=completed,
        warmup=profile.run.warmup,
        model=model_info,
        identity=ident,
        digest=work_digest(ident),
    )
    env = environment.collect()
    env["contention"] = contention_block
    doc = {
        "schema": results.SCHEMA,
        "created": results.utc_now_iso(),
        "partial": partial_reason is not None,
        "partial_reason": partial_reason,
        "profile": {
            "name": profile.name,
            "digest": profile.digest,
            "source": profile.source,
            "resolved": profile.resolved(),
        },
        "backend": backend_name,
        "workload": workload,
        "metrics": metrics,
        "energy": energy,
        "carbon": carbon,
        "environment": env,
        "warnings": _dedupe(warnings),
    }
    return results.sanitize(doc)


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return [x for x in items if not (x in seen or seen.add(x))]


def _roofline(decode: dict, cost: dict, session, say) -> None:
    """The roofline: decode tokens/s against the lower of the memory and compute ceilings.

    A session may bring its own ceilings (``ceilings() -> {"memory_bytes_per_s", "peak_macs_per_s", ...}``,
    e.g. a GPU's); otherwise they are measured on this CPU with the decode's own thread count and kernels
    (:mod:`greenbench.models.ceilings`). Only computed for models larger than the last-level cache: a model
    that fits in it is bound by neither DRAM nor the kernels' peak, but by per-op overheads.
    """
    from greenbench import models

    own = getattr(session, "ceilings", None)
    info = dict(session.describe() or {})
    if not callable(own):
        llc = models.last_level_cache_bytes()
        if cost["bytes_per_token"] <= llc:
            decode["roofline_note"] = (
                f"not computed: {cost['bytes_per_token'] / 2**20:.3g} MiB per token fits in the "
                f"{llc / 2**20:.3g} MiB last-level cache, so memory bandwidth does not bound decode"
            )
            return
    say("measuring the memory and compute ceilings for the roofline")
    try:
        if callable(own):
            c = own()
            bw, peak, how = c["memory_bytes_per_s"], c.get("peak_macs_per_s"), c
        else:
            threads = info.get("intra_op_threads")
            bw_detail: dict = {}
            bw = models.memory_bandwidth_bytes_per_s(threads, detail=bw_detail) if threads else \
                models.memory_bandwidth_bytes_per_s()
            peak, how = None, {"memory": bw_detail}
            if cost.get("macs_per_token") and threads:
                cfg = info.get("config") or {}
                p = models.matmul_peak_macs_per_s(
                    info.get("dtype") if info.get("dtype") in ("fp32", "fp16", "int4") else "fp32",
                    threads=threads, batch=int(info.get("batch_size") or 1),
                    block_size=int(cfg.get("int4_block_size") or 32),
                    accuracy_level=int(cfg.get("int4_accuracy_level", 4)),
                )
                peak = p["peak_macs_per_s"]
                how["compute"] = p
    except KeyboardInterrupt:  # the repeats are complete: keep them, skip the roofline
        decode["roofline_note"] = "not measured: interrupted (Ctrl-C) after the repeats"
        return
    except Exception as exc:  # a probe that fails (memory, a kernel) must not lose the measured repeats
        decode["roofline_note"] = f"not measured: the ceiling probe failed ({type(exc).__name__}: {exc})"
        return
    decode["memory_bandwidth_bytes_per_s"] = bw
    decode["peak_macs_per_s"] = peak
    decode["ceilings_probe"] = how
    # tokens/s over all batch rows: bytes_per_token already shares the weight reads across the batch
    decode.update(models.roofline_bounds(cost, decode["tokens_per_s"], bw, peak))
