"""Pure statistics for benchmark samples. Each function names its method.

- Median and quartiles: linear interpolation between order statistics (Hyndman & Fan 1996, type 7,
  the default of numpy and R), so IQR = Q3 - Q1 matches ``numpy.percentile``.
- Bootstrap confidence interval: percentile bootstrap of the median (Efron & Tibshirani 1993, ch. 13),
  seeded so the same samples always give the same interval.
- Mean with a Student t confidence interval (Student 1908), for a few independent draws such as noise seeds.
- Mann-Whitney U: two-sided test with the normal approximation, tie correction and continuity
  correction (Mann & Whitney 1947; tie correction as in scipy.stats.mannwhitneyu, method="asymptotic"),
  or the exact null distribution of U for small samples without ties (the counting recursion of Mann &
  Whitney 1947, eq. 1; scipy's method="exact"). ``method="auto"`` uses the exact test when both samples
  have at most :data:`EXACT_MAX_N` values and no ties.
- Welch's t-test for two samples with unequal variances (Welch 1947), with the Welch-Satterthwaite
  degrees of freedom; the t distribution's tail from the regularized incomplete beta function, evaluated
  by its continued fraction (Numerical Recipes, 3rd ed., section 6.4, modified Lentz's method).
- Holm-Bonferroni step-down adjustment of p-values for several tests at once (Holm 1979), which keeps
  the family-wise error rate at alpha.
- Sample size to decide: the normal-approximation size for a two-sample location test at a given power
  (e.g. Chow, Shao & Wang, "Sample Size Calculations in Clinical Research", 2nd ed., 3.2.1), divided by
  the Mann-Whitney test's asymptotic relative efficiency 3/pi against the t-test for normal data
  (Lehmann 1975, ch. 2), and never below the smallest size at which the exact test can reject at all.
"""

from __future__ import annotations

import functools
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


#: Largest sample size per side for which method="auto" uses the exact Mann-Whitney distribution.
EXACT_MAX_N = 20


@functools.lru_cache(maxsize=256)
def _u_counts(n1: int, n2: int) -> tuple[int, ...]:
    """Number of orderings of n1 + n2 distinct values giving U = 0..n1*n2 (Mann & Whitney 1947 recursion)."""
    # f[i][j] is the count table for sizes (i, j); f(i, j, u) = f(i-1, j, u-j) + f(i, j-1, u)
    prev_row = [[1] for _ in range(n2 + 1)]  # i = 0: U is 0 in exactly one way for any j
    for i in range(1, n1 + 1):
        row = [[1]]  # j = 0: U is 0 in one way
        for j in range(1, n2 + 1):
            size = i * j + 1
            a = prev_row[j]  # f(i-1, j, .) shifted by j
            b = row[j - 1]  # f(i, j-1, .)
            cur = [0] * size
            for u, c in enumerate(a):
                if u + j < size:
                    cur[u + j] += c
            for u, c in enumerate(b):
                cur[u] += c
            row.append(cur)
        prev_row = row
    return tuple(prev_row[n2])


def _exact_mwu_p(u1: float, n1: int, n2: int) -> float:
    counts = _u_counts(n1, n2)
    total = sum(counts)
    u = int(round(u1))
    lower = sum(counts[: u + 1]) / total
    upper = sum(counts[u:]) / total
    return min(1.0, 2.0 * min(lower, upper))


def mann_whitney_u(a: Sequence[float], b: Sequence[float], method: str = "asymptotic") -> tuple[float, float]:
    """Two-sided Mann-Whitney U test: returns (U of ``a``, p-value).

    ``method``: ``asymptotic`` (normal approximation with tie and continuity correction), ``exact`` (the
    null distribution of U; samples without ties only) or ``auto`` (exact for up to :data:`EXACT_MAX_N`
    values per side without ties, else asymptotic). With fewer than ~5 samples per side p cannot get
    small either way: a gate must then rely on more repeats.
    """
    xa, xb = _clean(a), _clean(b)
    n1, n2 = len(xa), len(xb)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one value")
    if method not in ("asymptotic", "exact", "auto"):
        raise ValueError(f"unknown method {method!r}")
    ties = len(set(xa + xb)) < n1 + n2
    if method == "exact" and ties:
        raise ValueError("the exact Mann-Whitney test needs samples without ties")
    if method == "exact" or (method == "auto" and not ties and n1 <= EXACT_MAX_N and n2 <= EXACT_MAX_N):
        u1 = sum(1.0 for x in xa for y in xb if x > y)
        return u1, _exact_mwu_p(u1, n1, n2)
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


# ---------------------------------------------------------------------------------------------
# Welch's t-test


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if not 0.0 <= x <= 1.0:
        raise ValueError("x must be in [0, 1]")
    if x in (0.0, 1.0):
        return x
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(ln_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom: I_{df/(df+t^2)}(df/2, 1/2)."""
    if df <= 0:
        raise ValueError("df must be > 0")
    return min(1.0, betainc(df / 2.0, 0.5, df / (df + t * t)))


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Welch's two-sided t-test: returns (t, degrees of freedom, p-value). Needs 2+ values per side."""
    xa, xb = _clean(a), _clean(b)
    n1, n2 = len(xa), len(xb)
    if n1 < 2 or n2 < 2:
        raise ValueError("Welch's t-test needs at least two values per side")
    m1, m2 = sum(xa) / n1, sum(xb) / n2
    v1 = sum((x - m1) ** 2 for x in xa) / (n1 - 1)
    v2 = sum((x - m2) ** 2 for x in xb) / (n2 - 1)
    se2 = v1 / n1 + v2 / n2
    if se2 == 0:
        return (0.0 if m1 == m2 else math.copysign(math.inf, m1 - m2)), float(n1 + n2 - 2), (1.0 if m1 == m2 else 0.0)
    t = (m1 - m2) / math.sqrt(se2)
    df = se2 ** 2 / ((v1 / n1) ** 2 / (n1 - 1) + (v2 / n2) ** 2 / (n2 - 1))
    return t, df, t_two_sided_p(t, df)


# ---------------------------------------------------------------------------------------------
# several tests at once, and how many samples would decide


def holm_adjust(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (Holm 1979), in the input order.

    Sorted ascending, the i-th smallest (1-based) becomes max over j <= i of min(1, (m - j + 1) p_(j));
    rejecting where the adjusted p < alpha keeps the family-wise error rate at alpha.
    """
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def _z(p: float) -> float:
    """The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
         -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    lo = 0.02425
    if p < lo:
        q = math.sqrt(-2 * math.log(p))
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    if p > 1 - lo:
        return -_z(1 - p)
    q = p - 0.5
    r = q * q
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / \
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)


def min_n_exact_mwu(alpha: float) -> int:
    """The smallest equal size per side at which a fully separated exact Mann-Whitney test has p < alpha."""
    for n in range(2, 200):
        if _exact_mwu_p(0.0, n, n) < alpha:
            return n
    return 200


def samples_to_decide(a: Sequence[float], b: Sequence[float], alpha: float, power: float = 0.8) -> int | None:
    """Samples per side a Mann-Whitney test would need to find the observed difference at ``alpha``.

    n = 2 (z_{1-alpha/2} + z_power)^2 / d^2 with d the observed difference of means over the pooled standard
    deviation, divided by the asymptotic relative efficiency 3/pi, at least :func:`min_n_exact_mwu`. None
    when the samples show no spread or no difference to size it from.
    """
    xa, xb = _clean(a), _clean(b)
    if len(xa) < 2 or len(xb) < 2:
        return None
    m1, m2 = sum(xa) / len(xa), sum(xb) / len(xb)
    v1 = sum((x - m1) ** 2 for x in xa) / (len(xa) - 1)
    v2 = sum((x - m2) ** 2 for x in xb) / (len(xb) - 1)
    sd = math.sqrt((v1 + v2) / 2.0)
    if not math.isfinite(sd) or sd == 0 or m1 == m2:
        return None
    d = abs(m1 - m2) / sd
    if not math.isfinite(d) or d == 0:
        return None
    if d < 1e-6:  # a difference a millionth of the noise: no sample size worth stating
        return None
    n = 2.0 * (_z(1 - alpha / 2) + _z(power)) ** 2 / d ** 2 / (3.0 / math.pi)
    return max(math.ceil(n), min_n_exact_mwu(alpha))
