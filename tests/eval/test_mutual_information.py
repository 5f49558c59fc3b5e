"""The KSG mutual-information estimator against closed forms for Gaussians."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recadapt.eval.mutual_information import ksg_mutual_information


def _gaussian_pairs(rho: float, dims: int, n: int = 3000, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dims))
    y = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal((n, dims))
    return x, y


@pytest.mark.parametrize("rho,dims", [(0.9, 1), (0.6, 2), (0.8, 3)])
def test_matches_the_gaussian_closed_form(rho: float, dims: int) -> None:
    x, y = _gaussian_pairs(rho, dims)
    exact = -0.5 * dims * math.log(1 - rho**2)  # nats
    assert ksg_mutual_information(x, y, dims=None) == pytest.approx(exact, rel=0.1, abs=0.03)


def test_independent_is_near_zero_and_dependence_orders_correctly() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((2000, 16)), rng.standard_normal((2000, 16))
    assert ksg_mutual_information(x, y) < 0.05
    weak = ksg_mutual_information(*_gaussian_pairs(0.3, 16, 2000))
    strong = ksg_mutual_information(*_gaussian_pairs(0.8, 16, 2000))
    assert 0.05 < weak < strong


def test_needs_paired_rows() -> None:
    with pytest.raises(ValueError, match="paired"):
        ksg_mutual_information(np.zeros((5, 2)), np.zeros((6, 2)))
