"""Repeated measurements of one block of code, and the result document they make (``workload.kind: measure``).

The pytest plugin and ``greenbench measure --runs`` measure a block several times, so that a gate can tell a
regression from noise. Each measurement (a *round*) is one sample of ``metrics.block``: its energy (J), its
duration (s) and, when the block says how many tokens it produced, J/token and tokens/s.

Terms:
    round: one sample. :func:`measure_rounds` runs a callable back to back inside each round's window until
        the window is long enough for the counters (the runner's resolution rule,
        :meth:`greenbench.runner.MeterSet.repeat_until_resolved`) and divides: ``inner_repeats``.
    block identity: what makes two block results comparable: a name (the pytest node id, or the command)
        and the tokens per call. Its digest is ``workload.digest``; the gate refuses blocks of different
        identity like runs of different work.
"""

from __future__ import annotations

from typing import Callable, Sequence

from greenbench import stats

__all__ = ["BlockSamples", "measure_rounds"]


class BlockSamples:
    """Samples of one block (see the module docstring) and the result document they make.

    Args:
        name: the block's name (a pytest node id, a command line); part of the identity.
        tokens: tokens the block produces per call (None: no J/token or tokens/s).
        identity: extra identity fields (e.g. ``{"command": [...]}``).
    """

    def __init__(self, name: str, *, tokens: int | None = None, identity: dict | None = None):
        self.name = name
        self.tokens = tokens
        self.identity = {"kind": "measure", "name": name, "tokens": tokens, **(identity or {})}
        self.energy_j: list[float | None] = []
        self.duration_s: list[float] = []
        self.inner: list[int] = []
        self.window_s: list[float] = []
        self.rows: dict[tuple[str, str], dict] = {}
        self.methods: set[str] = set()
        self.warnings: list[str] = []
        self.probes: dict = {}
        self.contention: dict | None = None
        self.below_resolution = 0

    def add(self, *, energy_j: float | None, duration_s: float, rows: Sequence[dict] = (), method: str | None = None,
            inner: int = 1, window_s: float | None = None) -> None:
        """One round: its energy per call (None when below resolution), duration per call and meter rows."""
        self.energy_j.append(energy_j)
        self.duration_s.append(duration_s)
        self.inner.append(inner)
        self.window_s.append(window_s if window_s is not None else duration_s * inner)
        if energy_j is None:
            self.below_resolution += 1
            return  # a round the counters could not resolve adds no energy rows
        if method:
            self.methods.add(method)
        for r in rows:
            if r.get("joules") is None:
                continue
            key = (r["name"], r["domain"])
            cur = self.rows.setdefault(key, {**r, "joules": 0.0})
            cur["joules"] += r["joules"]

    def document(self, *, region: str | None = None, pue: float | None = None) -> dict:
        """The result document (``schema`` greenbench.result/1, ``workload.kind`` ``measure``)."""
        from greenbench import environment, results
        from greenbench.meters.base import weakest_method
        from greenbench.workloads.identity import digest

        energies = [e for e in self.energy_j if e is not None]
        block: dict = {
            "energy_j": stats.median(energies) if energies else None,
            "energy_j_samples": energies,
            "energy_j_iqr": stats.iqr(energies) if energies else None,
            "duration_s": stats.median(self.duration_s),
            "duration_s_samples": list(self.duration_s),
            "duration_s_iqr": stats.iqr(self.duration_s),
            "inner_repeats_samples": list(self.inner),
            "window_s": stats.median(self.window_s),
            "rounds": len(self.duration_s),
            "below_resolution_rounds": self.below_resolution,
            "tokens": self.tokens,
        }
        if self.tokens:
            jpt = [e / self.tokens for e in energies]
            tps = [self.tokens / d for d in self.duration_s if d > 0]
            block.update(j_per_token=stats.median(jpt) if jpt else None, j_per_token_samples=jpt,
                         tokens_per_s=stats.median(tps) if tps else None, tokens_per_s_samples=tps)
        total = sum(energies)
        method = weakest_method(self.methods) if self.methods else "estimate"
        carbon = None
        if energies:
            from greenbench.carbon import attribute

            carbon = attribute(total, tokens=(self.tokens * len(energies)) if self.tokens else None, region=region,
                               pue=pue, energy_method=method)
            if carbon.get("warning"):
                self.warnings.append(carbon["warning"])
        env = environment.collect()
        if self.contention is not None:
            env["contention"] = self.contention
            if self.contention.get("flagged"):
                self.warnings.append(self.contention["warning"])
        ident = dict(self.identity)
        doc = {
            "schema": results.SCHEMA,
            "created": results.utc_now_iso(),
            "partial": False,
            "partial_reason": None,
            "profile": {"name": _safe_name(self.name), "digest": digest({"block": ident}), "source": self.name},
            "backend": "host",
            "workload": {"kind": "measure", "identity": ident, "digest": digest(ident), "generated_token_ids": [],
                         "repeats": len(self.duration_s), "repeats_completed": len(self.duration_s)},
            "metrics": {"block": block},
            "energy": {
                "method": method,
                "meters": [dict(r) for r in self.rows.values()],
                "total_j": total,
                "probes": self.probes,
                "scope": {"kind": "machine", "described": "every device on this machine (a block may use any)"},
            },
            "carbon": carbon,
            "environment": env,
            "warnings": list(dict.fromkeys(self.warnings)),
        }
        return results.sanitize(doc)


def _safe_name(name: str) -> str:
    import re

    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_.")[:120]
    return s or "block"


def file_name(name: str) -> str:
    """A file name for a block's result: readable, and unique per name (a hash of it, since distinct names such
    as ``test_x[a b]`` and ``test_x[a_b]`` read the same once made safe)."""
    import hashlib

    return f"{_safe_name(name)[:100]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}.json"


def measure_rounds(
    fn: Callable[[], object],
    meters,
    samples: BlockSamples,
    *,
    rounds: int = 5,
    warmup: int = 1,
    min_window_periods: int | None = None,
) -> BlockSamples:
    """Call ``fn`` for ``warmup`` unmeasured calls, then ``rounds`` measured rounds (each as many back-to-back
    calls as the counters need to resolve the window); the meters are opened and closed here."""
    from greenbench.meters.base import MIN_WINDOW_PERIODS, weakest_method
    from greenbench.meters.contention import Contention
    from greenbench.runner import MeterSet, _probe_details

    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a whole number >= 1, got {rounds!r}")
    ms = MeterSet(list(meters), min_window_periods=min_window_periods or MIN_WINDOW_PERIODS)
    samples.probes = _probe_details(ms.meters)
    opened = []
    contention = Contention()
    try:
        for m in ms.meters:
            m.open()
            opened.append(m)
        for _ in range(warmup):
            fn()
        contention.mark()
        for _ in range(rounds):
            w = ms.repeat_until_resolved(fn)
            contention.mark()
            per_call = w.work_s / w.inner if w.work_s is not None else w.duration_s / w.inner
            energy = w.per_inner_j if w.resolved else None
            rows = [{**r.as_dict(), "joules": r.joules / w.inner} for r in w.rows]
            samples.add(energy_j=energy, duration_s=per_call, rows=rows,
                        method=weakest_method([r.method for r in w.rows]) if w.rows else None,
                        inner=w.inner, window_s=w.duration_s)
    finally:
        for m in opened:
            notes = getattr(m, "notes", None)
            if callable(notes):
                try:
                    samples.warnings.extend(notes())
                except Exception:
                    pass
            try:
                m.close()
            except Exception:
                pass
    samples.contention = contention.summary()
    if samples.below_resolution:
        samples.warnings.append(f"{samples.below_resolution} round(s) were below what the counters can resolve "
                                "and report no energy")
    return samples

