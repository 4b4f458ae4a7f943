"""Batch sweeps: one run, one result per batch size.

Terms:
    batch sweep: a profile with ``[generation] batch = [1, 4, 16, 64]`` (or ``--batch`` given more than once).
        Each size is a separate measurement of separate work (the batch is part of ``workload.digest``), run in
        the order listed, each with its own warmup, repeats and idle baseline, and written as its own result.
    sweep block: every result of a sweep carries ``workload.sweep`` = ``{"of": "batch_size", "values": [...],
        "index": i, "digest": ...}``; ``digest`` is the sweep profile's digest (the same for every point of one
        sweep, and for a later run of the same sweep), so ``show`` and the leaderboard can gather the points
        into one curve of J/token against tokens/s (the trade-off the ML.ENERGY leaderboard plots).

Batch changes J/token more than anything else on a GPU: one decode step reads every weight once for all the
batch's rows (``shared/gpu-machine.md``: 0.357 J/token at batch 1, 0.025 at batch 16 on an H200).
"""

from __future__ import annotations

from typing import Callable, Iterator


def sweep_block(base, index: int) -> dict | None:
    """``workload.sweep`` for point ``index`` of ``base``'s sweep (None when ``base`` is no sweep)."""
    values = base.generation.batch
    if not values:
        return None
    return {"of": "batch_size", "values": [int(v) for v in values], "index": int(index), "digest": base.digest}


def run_sweep(base, run_one: Callable[[object], dict]) -> Iterator[dict]:
    """Run every point of ``base`` (:meth:`greenbench.profile.Profile.sweep`) through ``run_one(profile) -> doc``;
    yield each result document with its sweep block, as soon as it is measured.

    The caller writes each document before asking for the next, so an interrupted sweep keeps its finished
    points; a partial document ends the sweep.
    """
    for i, point in enumerate(base.sweep()):
        doc = run_one(point)
        block = sweep_block(base, i)
        if block is not None:
            doc.setdefault("workload", {})["sweep"] = block
        yield doc
        if doc.get("partial"):
            return


def curve(docs: list[dict]) -> list[dict]:
    """The points of a sweep for a table or plot: batch size, decode J/token and tokens/s (all rows), TTFT."""
    rows = []
    for d in docs:
        dec = (d.get("metrics") or {}).get("decode") or {}
        rows.append({
            "batch_size": (d.get("workload") or {}).get("batch_size"),
            "j_per_token": dec.get("j_per_token"),
            "tokens_per_s": dec.get("tokens_per_s"),
            "ttft_s": (d.get("metrics") or {}).get("ttft_s"),
            "roofline_fraction": dec.get("roofline_fraction"),
            "method": (d.get("energy") or {}).get("method"),
        })
    return rows
