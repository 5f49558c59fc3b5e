"""Mutual information between two sets of item representations (CROSSAN section 3, Table 1).

The estimator is Kraskov–Stögbauer–Grassberger's (KSG, algorithm 1; Phys. Rev. E 69, 2004),
a k-nearest-neighbour estimate in nats:

    I(X; Y) ≈ ψ(k) + ψ(N) − ⟨ψ(n_x + 1) + ψ(n_y + 1)⟩

where, for each sample, ``ε`` is the max-norm distance to its k-th neighbour in the joint
space and ``n_x`` (``n_y``) counts the other samples closer than ``ε`` in X (Y) alone.

k-NN estimators degrade in high dimension, and tower outputs have hundreds, so each side is
first standardised and reduced to its top ``dims`` principal components (default 8), then
jittered by 1e-10 to break ties. Values are therefore comparable between models measured the
same way (CROSSAN vs INDSAN), not absolute. The paper does not name its estimator.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma


def _reduce(values: np.ndarray, dims: int, rng: np.random.Generator) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    x = x - x.mean(axis=0)
    if x.shape[1] > dims:
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        x = x @ vt[:dims].T
    scale = x.std(axis=0)
    x = x / np.where(scale > 0, scale, 1.0)
    return x + 1e-10 * rng.standard_normal(x.shape)


def ksg_mutual_information(x: np.ndarray, y: np.ndarray, k: int = 3, dims: int | None = 8,
                           seed: int = 0) -> float:
    """KSG estimate of ``I(X; Y)`` in nats for paired rows of ``x`` ``[N, dx]`` and ``y``
    ``[N, dy]`` (see module docstring); ``dims=None`` skips the PCA reduction."""
    if len(x) != len(y):
        raise ValueError(f"paired samples needed: {len(x)} vs {len(y)} rows")
    n = len(x)
    if n <= k:
        raise ValueError(f"need more than k={k} samples, got {n}")
    rng = np.random.default_rng(seed)
    x = _reduce(x.reshape(n, -1), dims or x.shape[-1], rng)
    y = _reduce(y.reshape(n, -1), dims or y.shape[-1], rng)
    joint = np.hstack([x, y])
    # distance to the k-th neighbour (the query point itself is neighbour 0)
    eps = cKDTree(joint).query(joint, k=k + 1, p=np.inf)[0][:, -1]
    radius = np.nextafter(eps, 0)  # strictly closer than eps
    n_x = cKDTree(x).query_ball_point(x, radius, p=np.inf, return_length=True) - 1
    n_y = cKDTree(y).query_ball_point(y, radius, p=np.inf, return_length=True) - 1
    value = digamma(k) + digamma(n) - np.mean(digamma(n_x + 1) + digamma(n_y + 1))
    return float(max(value, 0.0))
