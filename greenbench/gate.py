"""Performance gates: is a candidate result significantly worse than a baseline?

A regression needs *size and significance* (as asv's ``_is_result_better``): the candidate's median
is worse than the baseline's by more than ``max_regression_pct`` **and** a two-sided Mann-Whitney U
test on the per-repeat samples rejects "same distribution" at ``alpha``. Size alone would fail CI on
noise; significance alone would fail it on a 0.1 % change that nobody cares about.

With few repeats the test cannot reach significance (5 vs 5 fully separated samples give p ~ 0.012;
3 vs 3 give p ~ 0.08): such a comparison is reported as ``inconclusive``, never as a pass in disguise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from greenbench import stats
from greenbench.errors import GreenbenchError
from greenbench.results import get_path

#: (path of the samples, path of the median, direction): lower is better for energy and latency.
METRICS = (
    ("decode.j_per_token", "lower"),
    ("decode.tokens_per_s", "higher"),
    ("prefill.j_per_token", "lower"),
    ("ttft_s", "lower"),
    ("train.j_per_token", "lower"),
    ("train.tokens_per_s", "higher"),
)


@dataclass(frozen=True)
class Check:
    metric: str
    direction: str
    baseline: float | None
    candidate: float | None
    change_pct: float | None  # positive = worse
    p_value: float | None
    n_baseline: int
    n_candidate: int
    verdict: str  # "regression", "improvement", "no change", "inconclusive", "skipped"
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _samples(doc: dict, metric: str) -> list[float]:
    path = f"metrics.{metric}_samples"
    vals = get_path(doc, path, None)
    if vals is None:
        return []
    ok = isinstance(vals, list) and all(
        v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)) for v in vals
    )
    if not ok:
        raise GreenbenchError(
            f"{path} must be a list of numbers, got {str(vals)[:60]}",
            "gate results written by `greenbench run`",
        )
    return [float(v) for v in vals if v is not None]


def compare_metric(base: dict, cand: dict, metric: str, direction: str, max_regression_pct: float, alpha: float) -> Check:
    a, b = _samples(base, metric), _samples(cand, metric)
    if not a or not b:
        return Check(metric, direction, None, None, None, None, len(a), len(b), "skipped", "no samples in one of the results")
    ma, mb = stats.median(a), stats.median(b)
    if not ma:
        return Check(metric, direction, ma, mb, None, None, len(a), len(b), "skipped", "baseline median is zero")
    rel = (mb - ma) / abs(ma) * 100.0
    worse_pct = rel if direction == "lower" else -rel
    _, p = stats.mann_whitney_u(a, b)
    significant = p < alpha
    if worse_pct > max_regression_pct and significant:
        verdict = "regression"
    elif worse_pct < -max_regression_pct and significant:
        verdict = "improvement"
    elif abs(worse_pct) > max_regression_pct and not significant:
        verdict = "inconclusive"
    else:
        verdict = "no change"
    note = ""
    if verdict == "inconclusive":
        note = f"change beyond {max_regression_pct:g}% but p={p:.3g} >= {alpha:g}; more repeats would decide"
    return Check(metric, direction, ma, mb, worse_pct, p, len(a), len(b), verdict, note)


def compare(base: dict, cand: dict, *, max_regression_pct: float = 5.0, alpha: float = 0.05) -> dict:
    """Compare two result documents metric by metric.

    Returns:
        {"checks": [Check dicts], "regressions": [metric names], "warnings": [...], "passed": bool}
    """
    warnings = []
    if get_path(base, "profile.digest", None) != get_path(cand, "profile.digest", None):
        warnings.append("the results come from different profile configurations (profile.digest differs)")
    if get_path(base, "workload.generated_token_ids", None) != get_path(cand, "workload.generated_token_ids", None):
        warnings.append("the results generated different tokens: the two runs did not do the same work")
    mb, mc = get_path(base, "energy.method", None), get_path(cand, "energy.method", None)
    if mb != mc:
        warnings.append(f"energy methods differ (baseline {mb}, candidate {mc}): energy comparisons mix kinds of numbers")
    if get_path(base, "environment.cpu_model", None) != get_path(cand, "environment.cpu_model", None):
        warnings.append("the results come from different CPUs")
    kb, kc = get_path(base, "workload.kind", None), get_path(cand, "workload.kind", None)
    if kb != kc:
        raise GreenbenchError(
            f"cannot compare workload kinds {kb!r} and {kc!r}", "gate two results of the same profile"
        )
    for label, doc in (("baseline", base), ("candidate", cand)):
        if doc.get("partial"):
            warnings.append(f"the {label} is a partial result ({doc.get('partial_reason')}): fewer samples")
    training = kb == "training"
    checks = [
        compare_metric(base, cand, metric, direction, max_regression_pct, alpha)
        for metric, direction in METRICS
        if metric.startswith("train.") == training
    ]
    if all(c.verdict == "skipped" for c in checks):
        raise GreenbenchError(
            "nothing to compare: no metric has per-repeat samples in both results",
            "re-run the benchmark to completion (a run interrupted before its first repeat has no samples)",
        )
    regressions = [c.metric for c in checks if c.verdict == "regression"]
    return {
        "max_regression_pct": max_regression_pct,
        "alpha": alpha,
        "checks": [c.as_dict() for c in checks],
        "regressions": regressions,
        "warnings": warnings,
        "passed": not regressions,
    }
