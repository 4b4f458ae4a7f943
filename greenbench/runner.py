"""The runner: warmup, repeats and measurement windows around each phase of a workload.

A *repeat* of an inference workload is one prompt: the *prefill* window covers the prompt's forward
pass up to the first generated token (its duration is the time to first token, TTFT); the *decode*
window covers the remaining ``max_new_tokens - 1`` greedy steps. Each window's energy is the
difference of every meter's snapshots at its edges. Warmup repeats run the same work unmeasured.

Ctrl-C during the repeats stops the run; the repeats already completed are kept and the result is
marked ``partial``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from greenbench import stats
from greenbench.meters.base import DomainEnergy, Meter, Snapshot, total_joules, weakest_method
from greenbench.meters.base import window as meter_window
from greenbench.meters.idle import marginal_total_j, measure_idle

Progress = Callable[[str, int, int], None]  # (description, completed, total)


@dataclass
class Window:
    """One measured window: its duration and per-domain energy."""

    duration_s: float
    rows: list[DomainEnergy]

    @property
    def energy_j(self) -> float:
        return total_joules(self.rows)


@dataclass
class RepeatRecord:
    prefill: Window
    decode: Window | None
    tokens: list[int]


@dataclass
class MeterSet:
    """The meters of a run, opened together and snapshotted together at every window edge.

    ``idle_power_w`` maps ``"meter/domain"`` keys (:func:`greenbench.meters.idle.domain_key`) to idle watts.
    """

    meters: Sequence[Meter]
    idle_power_w: dict[str, float] = field(default_factory=dict)

    def snapshot(self) -> tuple[float, list[Snapshot]]:
        return time.perf_counter(), [m.snapshot() for m in self.meters]

    def window(self, start: tuple[float, list[Snapshot]], end: tuple[float, list[Snapshot]]) -> Window:
        rows: list[DomainEnergy] = []
        for m, s0, s1 in zip(self.meters, start[1], end[1]):
            rows.extend(meter_window(m, s0, s1))
        return Window(end[0] - start[0], rows)

    def marginal_j(self, w: Window) -> float:
        """Window energy minus idle power x duration, per domain, floored at zero."""
        return marginal_total_j(w.rows, self.idle_power_w, w.duration_s)

    def measure_idle(self, duration_s: float, sleep: Callable[[float], None] = time.sleep) -> dict[str, float]:
        """Measure idle power over ``duration_s`` seconds (0 disables); process-scoped meters idle at 0 W."""
        self.idle_power_w = measure_idle(self.meters, duration_s, sleep=sleep)
        return self.idle_power_w


def run_inference(
    session,
    meterset: MeterSet,
    *,
    repeats: int,
    warmup: int,
    max_new_tokens: int,
    progress: Progress | None = None,
) -> tuple[list[RepeatRecord], str | None]:
    """Run warmup + measured repeats. Returns (records, partial_reason or None)."""
    n_decode = max_new_tokens - 1
    total = warmup + repeats
    done = 0

    def tick(desc: str) -> None:
        if progress:
            progress(desc, done, total)

    records: list[RepeatRecord] = []
    try:
        for i in range(warmup):
            tick(f"warmup {i + 1}/{warmup}")
            session.reset()
            first = session.prefill()
            if n_decode:
                session.decode(first, n_decode)
            done += 1
        for i in range(repeats):
            tick(f"repeat {i + 1}/{repeats}")
            session.reset()
            s0 = meterset.snapshot()
            first = session.prefill()
            s1 = meterset.snapshot()
            tokens = [first]
            decode_w = None
            if n_decode:
                tokens += list(session.decode(first, n_decode))
                s2 = meterset.snapshot()
                decode_w = meterset.window(s1, s2)
            records.append(RepeatRecord(meterset.window(s0, s1), decode_w, tokens))
            done += 1
        tick("done")
    except KeyboardInterrupt:
        return records, f"interrupted (Ctrl-C) after {len(records)} of {repeats} measured repeats"
    return records, None


def _phase_metrics(windows: list[Window], tokens_per_window: int, meterset: MeterSet) -> dict:
    if not windows or tokens_per_window <= 0:
        return {
            "j_per_token": None, "tokens_per_s": None, "duration_s": None, "marginal_j_per_token": None,
            "j_per_token_samples": [], "tokens_per_s_samples": [], "duration_s_samples": [],
            "j_per_token_iqr": None, "tokens_per_s_iqr": None, "tokens": tokens_per_window,
        }
    jpt = [w.energy_j / tokens_per_window for w in windows]
    tps = [tokens_per_window / w.duration_s if w.duration_s > 0 else None for w in windows]
    tps = [x for x in tps if x is not None]
    marg = [meterset.marginal_j(w) / tokens_per_window for w in windows]
    return {
        "j_per_token": stats.median(jpt),
        "j_per_token_iqr": stats.iqr(jpt),
        "marginal_j_per_token": stats.median(marg) if meterset.idle_power_w else None,
        "tokens_per_s": stats.median(tps),
        "tokens_per_s_iqr": stats.iqr(tps),
        "duration_s": stats.median([w.duration_s for w in windows]),
        "j_per_token_samples": jpt,
        "tokens_per_s_samples": tps,
        "duration_s_samples": [w.duration_s for w in windows],
        "tokens": tokens_per_window,
    }


def summarize_energy(windows: list[Window], meterset: MeterSet) -> dict:
    """The result's ``energy`` block: per (meter, domain) joules summed over all measured windows."""
    sums: dict[tuple[str, str], DomainEnergy] = {}
    for w in windows:
        for r in w.rows:
            key = (r.name, r.domain)
            prev = sums.get(key)
            sums[key] = DomainEnergy(r.name, r.domain, r.method, (prev.joules if prev else 0.0) + r.joules, r.in_total)
    rows = list(sums.values())
    methods = [r.method for r in rows] or [m.method for m in meterset.meters]
    total = total_joules(rows)
    duration = sum(w.duration_s for w in windows)
    marginal = sum(meterset.marginal_j(w) for w in windows) if meterset.idle_power_w else None
    return {
        "method": weakest_method(methods) if methods else "estimate",
        "meters": [r.as_dict() for r in rows],
        "total_j": total,
        "marginal_j": marginal,
        "measured_s": duration,
        "idle_power_w": (
            [{"domain_key": k, "power_w": p} for k, p in meterset.idle_power_w.items()]
            if meterset.idle_power_w
            else None
        ),
    }


def inference_metrics(records: list[RepeatRecord], prompt_tokens: int, batch: int, meterset: MeterSet) -> dict:
    prefill = _phase_metrics([r.prefill for r in records], prompt_tokens * batch, meterset)
    decode_windows = [r.decode for r in records if r.decode is not None]
    n_decode = (len(records[0].tokens) - 1) * batch if records else 0
    decode = _phase_metrics(decode_windows, n_decode, meterset)
    ttft = [r.prefill.duration_s for r in records]
    return {
        "ttft_s": stats.median(ttft),
        "ttft_s_samples": ttft,
        "ttft_s_iqr": stats.iqr(ttft),
        "prefill": prefill,
        "decode": decode,
    }


def run_training(
    session, meterset: MeterSet, *, repeats: int, warmup: int, steps: int, progress: Progress | None = None
) -> tuple[list[tuple[Window, list[float]]], str | None]:
    """Warmup steps, then ``repeats`` windows of ``steps`` training steps. Returns ([(window, losses)], partial)."""
    total = warmup + repeats
    records: list[tuple[Window, list[float]]] = []
    try:
        for i in range(warmup):
            if progress:
                progress(f"warmup {i + 1}/{warmup}", i, total)
            session.steps(steps)
        for i in range(repeats):
            if progress:
                progress(f"repeat {i + 1}/{repeats}", warmup + i, total)
            s0 = meterset.snapshot()
            losses = session.steps(steps)
            records.append((meterset.window(s0, meterset.snapshot()), losses))
        if progress:
            progress("done", total, total)
    except KeyboardInterrupt:
        return records, f"interrupted (Ctrl-C) after {len(records)} of {repeats} measured repeats"
    return records, None


def training_metrics(records, tokens_per_window: int, meterset: MeterSet) -> dict:
    phase = _phase_metrics([w for w, _ in records], tokens_per_window, meterset)
    losses = [l for _, ls in records for l in ls]
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
) -> dict:
    """Benchmark ``profile`` and return its result document (not yet written).

    Args:
        profile: a loaded :class:`greenbench.profile.Profile` (CLI overrides already applied).
        meters: the meters to use (opened and closed here); default: :func:`greenbench.meters.select`
            on ``profile.run.meters``.
        backend: a Backend for inference; default: :func:`greenbench.backends.get_backend` on
            ``profile.run.backend``.
        warnings: warnings so far (e.g. from meter selection); recorded in the result.
        progress: called as ``progress(description, completed, total)``.
        status: called with one-line status messages (model building, idle baseline).
        measure_bandwidth: measure memory bandwidth for ``metrics.decode.roofline_fraction``.
    """
    warnings = list(warnings or [])
    say = status or (lambda msg: None)
    from greenbench.profile import SIMULATED_BACKENDS

    if meters is None and profile.run.backend in SIMULATED_BACKENDS:
        meters = []  # the simulated session brings its own (simulated) meters
    elif meters is None:
        from greenbench.meters import select

        meters, meter_warnings = select(list(profile.run.meters) if profile.run.meters else None)
        warnings.extend(meter_warnings)
    training = profile.run.workload == "training"
    if training:
        if profile.run.backend != "cpu":
            from greenbench.errors import BackendError

            raise BackendError(
                f"the training workload runs on the cpu backend only in this version (got {profile.run.backend!r})",
                "use --backend cpu",
            )
        from greenbench.workloads.training import TrainingSession

        say(f"building {profile.name} for training (PyTorch)")
        session = TrainingSession(profile, threads=profile.run.threads)
        backend_name = "cpu"
    else:
        if backend is None:
            from greenbench.backends import get_backend

            backend = get_backend(profile.run.backend)
        say(f"preparing {profile.name} on {backend.name}")
        session = backend.prepare(profile, progress=say)
        backend_name = backend.name

    try:
        return _measure_session(
            profile, session, backend_name, list(meters), warnings, progress, say, measure_bandwidth, training
        )
    finally:
        close = getattr(session, "close", None)
        if close:
            close()


def _measure_session(profile, session, backend_name, meters, warnings, progress, say, measure_bandwidth, training):
    """Meter windows around the prepared session's work, then the result document (the caller closes the session)."""
    from greenbench import environment, results

    sim_meters = getattr(session, "energy_meters", None)
    if callable(sim_meters) and sim_meters():
        # A simulated backend: its energy comes from its cost model, per window, as `simulated` meters.
        # The host's own draw while simulating says nothing about the simulated hardware, so host meters
        # are not used.
        meters = list(sim_meters())
        warnings.append(
            f"backend {backend_name!r} is simulated: every joule in this result is SIMULATED from its published "
            "cost model, not measured"
        )
    meterset = MeterSet(list(meters))
    opened: list[Meter] = []
    try:
        for m in meterset.meters:
            m.open()
            opened.append(m)
        if profile.run.idle_s > 0:
            say(f"measuring idle power for {profile.run.idle_s:g} s")
            meterset.measure_idle(profile.run.idle_s)
        if training:
            train_records, partial_reason = run_training(
                session, meterset, repeats=profile.run.repeats, warmup=profile.run.warmup,
                steps=profile.train.steps, progress=progress,
            )
        else:
            records, partial_reason = run_inference(
                session,
                meterset,
                repeats=profile.run.repeats,
                warmup=profile.run.warmup,
                max_new_tokens=profile.generation.max_new_tokens,
                progress=progress,
            )
    finally:
        for m in opened:
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
        windows = [w for w, _ in train_records]
        completed = len(train_records)
        workload = {
            "kind": "training",
            "prompt_tokens": session.seq_len,
            "new_tokens": 0,
            "batch_size": session.batch_size,
            "tokens_per_repeat": tokens_per_window,
            "generated_token_ids": [],
        }
        carbon_tokens = tokens_per_window * completed
        basis = "trained"
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
            from greenbench import models

            llc = models.last_level_cache_bytes()
            if cost["bytes_per_token"] <= llc:
                # The weights stay in cache between tokens: DRAM bandwidth is not the ceiling.
                decode["roofline_note"] = (
                    f"not computed: {cost['bytes_per_token'] / 2**20:.3g} MiB per token fits in the "
                    f"{llc / 2**20:.3g} MiB last-level cache, so memory bandwidth does not bound decode"
                )
            else:
                say("measuring memory bandwidth for the roofline")
                try:
                    bw = models.memory_bandwidth_bytes_per_s()
                except KeyboardInterrupt:  # the repeats are complete: keep them, skip the roofline
                    decode["roofline_note"] = "not measured: interrupted (Ctrl-C) after the repeats"
                else:
                    decode["memory_bandwidth_bytes_per_s"] = bw
                    # tokens/s over all batch rows: bytes_per_token already shares the weight reads across the batch
                    decode["roofline_fraction"] = models.roofline(cost, decode["tokens_per_s"], bw)
        metrics["cost"] = cost
        windows = [r.prefill for r in records] + [r.decode for r in records if r.decode is not None]
        completed = len(records)
        new_tokens = len(records[0].tokens) if records else profile.generation.max_new_tokens
        workload = {
            "kind": "inference",
            "prompt_tokens": prompt_tokens,
            "new_tokens": new_tokens,
            "batch_size": batch,
            "generated_token_ids": records[0].tokens if records else [],
        }
        carbon_tokens = new_tokens * batch * completed
        basis = "generated"

    energy = summarize_energy(windows, meterset)
    from greenbench.carbon import attribute

    carbon = attribute(
        energy["total_j"],
        tokens=carbon_tokens or None,
        region=profile.carbon.region,
        pue=profile.carbon.pue,
        marginal_energy_j=energy["marginal_j"],
        energy_method=energy["method"],
    )
    carbon["tokens_basis"] = basis
    if carbon.get("warning"):
        warnings.append(carbon["warning"])
    workload.update(
        repeats=profile.run.repeats,
        repeats_completed=completed,
        warmup=profile.run.warmup,
        model=dict(session.describe() or {}),
    )
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
        "environment": environment.collect(),
        "warnings": warnings,
    }
    return results.sanitize(doc)
