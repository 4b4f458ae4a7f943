"""Pure statistics for benchmark samples. Each function names its method.

- Median and quartiles: linear interpolation between order statistics (Hyndman & Fan 1996, type 7,
  the default of numpy and R), so IQR = Q3 - Q1 matches ``numpy.percentile``.
- Bootstrap confidence interval: percentile bootstrap of the median (Efron & Tibshirani 1993, ch. 13),
  seeded so the same samples always give the same interval.
- Mean with a Student t confidence interval (Student 1908), for a few independent draws such as noise seeds.
- Mann-Whitney U: two-sided test with the normal approximation, tie correction and continuity
  correction (Mann & Whitney 1947; tie correction as in scipy.stats.mannwhitneyu, method="asymptotic").
"""

from __future__ import annotations

import math
import random
from typing import Sequence


def _clean(xs: Sequence[float]) -> list[float]:
    return sorted(float(x) for x in xs if x is not None and not math.isnan(float(x)))


def quantile(xs: Sequence[float], q: float) -> float | None:
    """Quantile ``q`` in [0, 1] by linear interpolation (type 7); None for no samples."""
    s = _clean(xs)
    if not s:
        return None
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    h = (len(s) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def median(xs: Sequence[float]) -> float | None:
    return quantile(xs, 0.5)


def iqr(xs: Sequence[float]) -> float | None:
    """Interquartile range Q3 - Q1 (type 7 quartiles); None for no samples."""
    q1, q3 = quantile(xs, 0.25), quantile(xs, 0.75)
    return None if q1 is None or q3 is None else q3 - q1


def summary(xs: Sequence[float]) -> dict:
    """{median, q1, q3, iqr, min, max, n} of the samples (None values where there are none)."""
    s = _clean(xs)
    return {
        "median": median(s),
        "q1": quantile(s, 0.25),
        "q3": quantile(s, 0.75),
        "iqr": iqr(s),
        "min": s[0] if s else None,
        "max": s[-1] if s else None,
        "n": len(s),
    }


def bootstrap_ci(
    xs: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile-bootstrap confidence interval of the median."""
    s = _clean(xs)
    if not s:
        return None
    if len(s) == 1:
        return (s[0], s[0])
    rng = random.Random(seed)
    n = len(s)
    meds = sorted(median([s[rng.randrange(n)] for _ in range(n)]) for _ in range(resamples))
    alpha = (1.0 - confidence) / 2.0
    return (quantile(meds, alpha), quantile(meds, 1.0 - alpha))


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test: returns (U of ``a``, p-value).

    Normal approximation with tie and continuity correction. With fewer than ~5 samples per side the
    approximation is rough and p cannot get small: a gate must then rely on more repeats.
    """
    xa, xb = _clean(a), _clean(b)
    n1, n2 = len(xa), len(xb)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one value")
    pooled = sorted([(v, 0) for v in xa] + [(v, 1) for v in xb])
    ranks = [0.0] * len(pooled)
    tie_term = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        avg = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[k] = avg
        t = j - i + 1
        tie_term += t**3 - t
        i = j + 1
    r1 = sum(r for r, (_, g) in zip(ranks, pooled) if g == 0)
    u1 = r1 - n1 * (n1 + 1) / 2.0
    mu = n1 * n2 / 2.0
    n = n1 + n2
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return u1, 1.0
    z = (abs(u1 - mu) - 0.5) / math.sqrt(var)
    z = max(z, 0.0)
    p = math.erfc(z / math.sqrt(2.0))
    return u1, min(1.0, p)


#: Two-sided 95 % critical values of Student's t distribution, ``t_{0.975, df}`` for df = 1..30
#: (NIST/SEMATECH e-Handbook of Statistical Methods, section 1.3.6.7.2, table of t critical values).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_critical_95(df: int) -> float:
    """``t_{0.975, df}``: the table for df <= 30, beyond it the normal quantile with the first Cornish-Fisher
    correction ``z + (z^3 + z) / (4 df)`` (within 0.001 of the exact value for df > 30)."""
    if df < 1:
        raise ValueError("df must be >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4.0 * df)


def mean_ci95(xs: Sequence[float], lower: float | None = None, upper: float | None = None) -> tuple[float, tuple[float, float]] | None:
    """Mean and its two-sided 95 % Student t interval, ``mean +- t_{0.975, n-1} s / sqrt(n)`` (Student 1908).

    The interval assumes the samples are independent draws (e.g. one per noise seed); with one sample it
    is that sample. ``lower``/``upper`` clip it to the quantity's range (e.g. 0 and 1 for a fraction).
    None for no samples.
    """
    s = _clean(xs)
    if not s:
        return None
    n = len(s)
    m = sum(s) / n
    if n == 1:
        lo = hi = m
    else:
        sd = math.sqrt(sum((x - m) ** 2 for x in s) / (n - 1))
        half = t_critical_95(n - 1) * sd / math.sqrt(n)
        lo, hi = m - half, m + half
    if lower is not None:
        lo = max(lo, lower)
    if upper is not None:
        hi = min(hi, upper)
    return m, (lo, hi)
