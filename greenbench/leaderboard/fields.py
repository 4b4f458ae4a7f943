"""What the leaderboard reads from one verified result: a flat *record* (pure; no I/O).

Terms:
    record: the fields of one signed result that the leaderboard ranks, filters and shows, extracted once
        when the result is stored (:func:`record`) and kept in the store's result index, so that a
        leaderboard is a query rather than a re-reading of every envelope.
    group: the work a result did, ``workload.digest`` (a hash of the model and its weights, the prompt,
        max_new_tokens, batch, dtype, backend: :mod:`greenbench.workloads.identity`). Only results of one
        group are compared. A result made before ``workload.digest`` existed is grouped by its
        ``profile.digest`` instead (``group_basis: "profile"``), which also changes with ``--repeats``.
    task: the group without the backend, its device, the dtype and a simulated device's parameters
        (:func:`greenbench.workloads.identity.task_digest` of ``workload.identity``): results of one task did
        the same job on different backends, so the "J/token by backend" chart compares them (ranks stay per
        group). None for a result without ``workload.identity``.
    lane: how the ranked joules were obtained, ``energy.method``: ``counter`` (a hardware energy counter),
        ``estimate`` (a model) or ``simulated`` (a simulator's cost model). Each lane is ranked apart, so an
        estimate never outranks a measurement.
    primary metric: what a row is ranked by, lower first: ``decode.j_per_token`` for inference,
        ``train.j_per_token`` for training, ``block.j_per_token`` for a measured command. A phase below
        the meters' resolution has ``j_per_token: null``; such a row is listed but never ranked.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

__all__ = ["FIELDS_VERSION", "LANES", "MAX_BATCH_SIZE", "DYNAMIC", "Malformed", "record", "primary", "number", "static_json"]

#: Bumped whenever :func:`record` changes what it extracts: index rows of an older version are extracted
#: again from their stored envelopes (``greenbench store reindex``, or the leaderboard on first use).
FIELDS_VERSION = 2
LANES = ("counter", "estimate", "simulated")
#: Row fields that depend on the other stored results and the trust policy, not on the result alone.
DYNAMIC = ("cid", "cids", "signers", "signer", "trusted", "rank", "lane_size")


class Malformed(ValueError):
    """A validly signed result that cannot be ranked (the message says why)."""


def _get(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


#: Largest batch size a result may claim. Larger ones are implausible (and beyond 2**63 - 1 they do not fit
#: an SQLite INTEGER): such a result is malformed, listed as skipped.
MAX_BATCH_SIZE = 2**24


def number(value: Any) -> bool:
    """A finite JSON number (not a boolean) that a float can hold: an integer beyond the float range
    (``2**1024``, valid JSON) is not one."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def primary(doc: dict) -> tuple[str, str]:
    """``(metric name, phase)`` a result is ranked by (module docstring)."""
    kind = _get(doc, "workload.kind")
    if kind == "training":
        return "train.j_per_token", "train"
    if kind == "measure":
        return "block.j_per_token", "block"
    return "decode.j_per_token", "decode"


def _num(doc: dict, path: str, nonneg: bool = True) -> float | None:
    value = _get(doc, path)
    if value is None:
        return None
    if not number(value) or (nonneg and value < 0):
        raise Malformed(f"{path} is not a {'non-negative ' if nonneg else ''}finite number")
    return float(value)


def _str(doc: dict, path: str) -> str | None:
    value = _get(doc, path)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Malformed(f"{path} is not a string")
    return value


def _task(result: dict) -> str | None:
    """The task digest (module docstring) of a result, None without a usable ``workload.identity``."""
    from greenbench.workloads.identity import task_digest

    ident = _get(result, "workload.identity")
    if not isinstance(ident, dict):
        return None
    try:
        return task_digest(ident)
    except (ValueError, TypeError, RecursionError):
        return None


def static_json(rec: dict) -> str:
    """The record's fields that do not change with other results or the trust policy, as compact JSON
    (kept in the index beside the columns, so a leaderboard of 100,000 rows is written without encoding
    each field again)."""
    import json

    return json.dumps({k: v for k, v in rec.items() if k not in DYNAMIC and k not in ("cpu_model", "gpu_models")},
                      ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def record(result: Any, *, signers: Iterable[str], sha256: str) -> dict:
    """The leaderboard record of a verified result document.

    Args:
        result: the result document (the statement's predicate).
        signers: every did:key that signed it (in envelope order).
        sha256: the in-toto subject digest (sha256 of the result's canonical bytes): results with the same
            digest are the same result, whoever signed them.

    Raises:
        Malformed: a field the leaderboard reads has the wrong type, a negative or non-finite number, an
            energy method outside :data:`LANES`, or nothing to group it by.
    """
    if not isinstance(result, dict):
        raise Malformed("the result is not a JSON object")
    metric, phase = primary(result)
    method = _get(result, "energy.method")
    if method not in LANES:
        raise Malformed(f"energy.method {method!r} is not one of {', '.join(LANES)}")
    work, profile_digest = _str(result, "workload.digest"), _str(result, "profile.digest")
    if work:
        group, basis = work, "workload"
    elif profile_digest:
        group, basis = f"profile:{profile_digest}", "profile"
    else:
        raise Malformed("it has neither workload.digest nor profile.digest to group it by")
    gpus = _get(result, "environment.gpu_models")
    if gpus is not None and not (isinstance(gpus, list) and all(isinstance(g, str) for g in gpus)):
        raise Malformed("environment.gpu_models is not a list of names")
    cpu = _str(result, "environment.cpu_model")
    batch = _get(result, "workload.batch_size")
    if batch is not None and not (isinstance(batch, int) and not isinstance(batch, bool)
                                  and 0 <= batch <= MAX_BATCH_SIZE):
        raise Malformed(f"workload.batch_size is not a count from 0 to {MAX_BATCH_SIZE}")
    flagged = _get(result, "environment.contention.flagged")
    partial = result.get("partial")
    below = _get(result, f"metrics.{phase}.below_resolution")
    value = _num(result, f"metrics.{phase}.j_per_token")
    created = _get(result, "created")
    return {
        "task": _task(result),
        "sha256": sha256,
        "signers": list(dict.fromkeys(signers)),
        "group": group,
        "group_basis": basis,
        "kind": _str(result, "workload.kind"),
        "lane": method,
        "method": method,
        "profile": _str(result, "profile.name"),
        "profile_digest": profile_digest,
        "sweep": _str(result, "workload.sweep.digest"),
        "batch_size": batch,
        "backend": _str(result, "backend"),
        "hardware": ", ".join(gpus) if gpus else cpu,
        "cpu_model": cpu,
        "gpu_models": list(gpus or []),
        "region": _str(result, "carbon.region"),
        "created": created if isinstance(created, str) else None,
        "partial": bool(partial),
        "flagged": flagged is True,
        "metric": metric,
        "j_per_token": value,
        "below_resolution": below is True,
        "prefill_j_per_token": _num(result, "metrics.prefill.j_per_token"),
        "decode_j_per_token": _num(result, "metrics.decode.j_per_token"),
        "train_j_per_token": _num(result, "metrics.train.j_per_token"),
        "tokens_per_s": _num(result, f"metrics.{phase}.tokens_per_s"),
        "prefill_tokens_per_s": _num(result, "metrics.prefill.tokens_per_s"),
        "ttft_s": _num(result, "metrics.ttft_s"),
        "energy_j": _num(result, "energy.total_j", nonneg=False),
        "g_co2e_per_1k_tokens": _num(result, "carbon.g_co2e_per_1k_tokens"),
    }
