"""Ratios between results, with their uncertainty: what ``greenbench compare`` prints (no verdict; that is ``gate``).

For every metric with per-repeat samples in the results (:mod:`greenbench.metrics`), each result's median
is set against the first result's (the reference), like hyperfine's "B ran 1.32 ± 0.04 times faster than
A". The spread of a result is its samples' robust standard deviation, 1.4826 x the median absolute
deviation (which estimates the standard deviation of normal data; Rousseeuw & Croux 1993), and the ratio's
uncertainty is propagated to first order as hyperfine does for means and standard deviations:
``sigma_r = r x sqrt((sigma_a / a)^2 + (sigma_b / b)^2)``.

Results of different work (``workload.digest``) or energy methods are still compared, with a warning on
each line the difference affects: the numbers are what they are, but a reader must know they do not
measure the same thing.
"""

from __future__ import annotations

import math

from greenbench import stats
from greenbench.metrics import METRICS
from greenbench.results import get_path

__all__ = ["robust_sd", "compare_results", "to_markdown", "to_csv"]


def robust_sd(xs: list[float]) -> float:
    """1.4826 x the median absolute deviation (0 for fewer than two samples)."""
    if len(xs) < 2:
        return 0.0
    m = stats.median(xs)
    return 1.4826 * stats.median([abs(x - m) for x in xs])


def _samples(doc: dict, metric: str) -> list[float]:
    vals = get_path(doc, f"metrics.{metric}_samples", None) or []
    return [float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def compare_results(named: list[tuple[str, dict]]) -> dict:
    """``[(label, result document), ...]`` -> ``{"reference", "metrics": [...], "warnings": [...]}``.

    Each metric entry: ``metric``, ``direction``, ``unit`` and one row per result with its ``median``,
    ``sd`` (robust), ``n``, ``ratio`` to the reference and its ``ratio_sd``, and a ``sentence``.
    """
    if len(named) < 2:
        raise ValueError("compare needs at least two results")
    ref_label, ref = named[0]
    warnings: list[str] = []
    for label, doc in named[1:]:
        if get_path(doc, "workload.digest", None) != get_path(ref, "workload.digest", None):
            warnings.append(f"{label} did different work than {ref_label} (workload.digest differs): the ratios compare "
                            "unlike things")
        if get_path(doc, "energy.method", None) != get_path(ref, "energy.method", None):
            warnings.append(f"{label} measured energy by {get_path(doc, 'energy.method', None)}, {ref_label} by "
                            f"{get_path(ref, 'energy.method', None)}: energy ratios mix kinds of numbers")
    out = []
    for metric, (direction, unit) in METRICS.items():
        ref_s = _samples(ref, metric)
        if not ref_s:
            continue
        rows = []
        for label, doc in named:
            s = _samples(doc, metric)
            if not s:
                rows.append({"label": label, "median": None, "sd": None, "n": 0, "ratio": None, "ratio_sd": None,
                             "sentence": f"{label}: no samples"})
                continue
            med, sd = stats.median(s), robust_sd(s)
            rmed, rsd = stats.median(ref_s), robust_sd(ref_s)
            row = {"label": label, "median": med, "sd": sd, "n": len(s), "ratio": None, "ratio_sd": None,
                   "sentence": ""}
            if label == ref_label:
                row.update(ratio=1.0, ratio_sd=None, sentence="")
            elif rmed and med:
                r = med / rmed
                rel = math.sqrt((sd / med) ** 2 + (rsd / rmed) ** 2)
                row["ratio"], row["ratio_sd"] = r, r * rel
                row["sentence"] = _sentence(label, ref_label, metric, direction, r, r * rel)
            rows.append(row)
        out.append({"metric": metric, "direction": direction, "unit": unit, "rows": rows})
    return {"reference": ref_label, "metrics": out, "warnings": warnings}


def _sentence(label: str, ref_label: str, metric: str, direction: str, r: float, r_sd: float) -> str:
    # "better" in the metric's own sense: lower energy/latency, higher throughput
    better = (r < 1) if direction == "lower" else (r > 1)
    factor, factor_sd = (1 / r, r_sd / r ** 2) if r < 1 else (r, r_sd)
    more_or_less = "less" if r < 1 else "more"
    return f"{label} had {factor:.3g} ± {factor_sd:.2g} times {more_or_less} {_noun(metric)} than {ref_label}" + (
        " (better)" if better else " (worse)")


def _noun(metric: str) -> str:
    leaf = metric.rpartition(".")[2]
    return {"j_per_token": "energy per token", "energy_j": "energy", "tokens_per_s": "throughput",
            "duration_s": "time", "ttft_s": "time to first token", "mfu": "model FLOPs utilisation"}.get(leaf, leaf)


def to_markdown(report: dict) -> str:
    lines = [f"| metric | result | median | ± sd | n | ratio to {report['reference']} |", "|---|---|---:|---:|---:|---:|"]
    for m in report["metrics"]:
        for row in m["rows"]:
            ratio = "-" if row["ratio"] is None else (
                "1 (reference)" if row["ratio_sd"] is None else f"{row['ratio']:.3g} ± {row['ratio_sd']:.2g}")
            med = "-" if row["median"] is None else f"{row['median']:.4g}"
            sd = "-" if row["sd"] is None else f"{row['sd']:.2g}"
            lines.append(f"| `{m['metric']}` | {row['label']} | {med} | {sd} | {row['n']} | {ratio} |")
    lines += [f"\n- {w}" for w in report["warnings"]]
    return "\n".join(lines) + "\n"


def to_csv(report: dict) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["metric", "unit", "result", "median", "sd", "n", "ratio", "ratio_sd"])
    for m in report["metrics"]:
        for row in m["rows"]:
            w.writerow([m["metric"], m["unit"], row["label"], row["median"], row["sd"], row["n"], row["ratio"],
                        row["ratio_sd"]])
    return buf.getvalue()
