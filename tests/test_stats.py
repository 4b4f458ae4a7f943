"""Statistics against hand-computed values and numpy's type-7 quantiles."""

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from greenbench import stats


def test_median_and_iqr_hand_computed():
    xs = [1.0, 2.0, 3.0, 4.0]
    assert stats.median(xs) == 2.5
    # type 7: Q1 at h = 0.75 -> 1.75, Q3 at h = 2.25 -> 3.25
    assert stats.quantile(xs, 0.25) == 1.75
    assert stats.iqr(xs) == pytest.approx(1.5)
    assert stats.median([]) is None and stats.iqr([]) is None


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=30), st.floats(0, 1))
def test_quantile_matches_numpy(xs, q):
    assert stats.quantile(xs, q) == pytest.approx(float(np.percentile(xs, q * 100)), rel=1e-9, abs=1e-9)


def test_bootstrap_ci_contains_median_and_is_seeded():
    xs = [10.0, 11.0, 9.5, 10.2, 10.8, 9.9, 10.1]
    lo, hi = stats.bootstrap_ci(xs)
    assert lo <= stats.median(xs) <= hi
    assert stats.bootstrap_ci(xs) == (lo, hi)


def test_mann_whitney_hand_computed():
    # a entirely below b: U_a = 0. n1 = n2 = 5 -> mu = 12.5, var = 25*11/12.
    a = [1, 2, 3, 4, 5]
    b = [6, 7, 8, 9, 10]
    u, p = stats.mann_whitney_u(a, b)
    assert u == 0
    z = (12.5 - 0.5) / math.sqrt(25 * 11 / 12)
    assert p == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert p < 0.05


def test_mann_whitney_identical_samples_not_significant():
    u, p = stats.mann_whitney_u([1, 1, 1], [1, 1, 1])
    assert p == 1.0
