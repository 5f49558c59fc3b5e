"""Tests for recadapt.eval.significance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from recadapt.eval.significance import is_significant, paired_t_test


def test_paired_t_test_hand_computation():
    a = np.array([0.5, 0.7, 0.2, 0.9, 0.4])
    b = np.array([0.4, 0.5, 0.3, 0.6, 0.2])
    d = a - b  # 0.1, 0.2, -0.1, 0.3, 0.2
    n = len(d)
    mean = d.mean()
    sd = math.sqrt(((d - mean) ** 2).sum() / (n - 1))
    t = mean / (sd / math.sqrt(n))
    p = 2 * stats.t.sf(abs(t), df=n - 1)
    res = paired_t_test(a, b)
    assert res["n"] == 5
    assert res["mean_diff"] == pytest.approx(0.14)
    assert res["t"] == pytest.approx(t)
    # by hand: deviations -.04 .06 -.24 .16 .06, sum of squares .092, var .023
    assert res["t"] == pytest.approx(0.14 / math.sqrt(0.023 / 5))
    assert res["p_value"] == pytest.approx(p)
    # swapping the arguments flips the sign, not the p-value
    rev = paired_t_test(b, a)
    assert rev["t"] == pytest.approx(-t) and rev["p_value"] == pytest.approx(p)


def test_paired_t_test_identical_is_not_nan():
    res = paired_t_test([0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    assert res == {"t": 0.0, "p_value": 1.0, "mean_diff": 0.0, "n": 3}
    assert not is_significant(res["p_value"])


def test_paired_t_test_length_mismatch():
    with pytest.raises(ValueError, match="same users"):
        paired_t_test([0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(ValueError, match="at least 2"):
        paired_t_test([0.1], [0.2])


def test_is_significant():
    assert is_significant(0.01)
    assert not is_significant(0.05)
    assert not is_significant(0.2)
    assert is_significant(0.04, alpha=0.05)
    assert not is_significant(0.04, alpha=0.01)
    assert not is_significant(float("nan"))
