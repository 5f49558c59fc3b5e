"""Paired significance tests over per-user metric values (numpy / scipy).

Typical use: compare two models on the *same* users, e.g. the per-user NDCG@10 arrays from
:func:`recadapt.eval.metrics.ndcg_at_k`, with a paired t-test.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats


def _as_1d(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D per-user array, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    return arr


def paired_t_test(a, b) -> dict[str, float]:
    """Two-sided paired t-test of ``a`` vs. ``b`` (``scipy.stats.ttest_rel``).

    Args:
        a, b: per-user metric values of two systems, ``a[i]`` and ``b[i]`` for the same user.

    Returns:
        ``{"t": ..., "p_value": ..., "mean_diff": mean(a - b), "n": number of users}``.
        When every difference is exactly zero the test is undefined (0/0); we then return
        ``t = 0.0`` and ``p_value = 1.0`` (no evidence of a difference) instead of NaN. A
        constant non-zero difference gives scipy's ``t = ±inf``, ``p_value = 0.0``.

    Raises:
        ValueError: if the arrays differ in length (they must hold the same users) or have
            fewer than 2 users.
    """
    a = _as_1d(a, "a")
    b = _as_1d(b, "b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"paired t-test needs the same users in both arrays: got {a.shape[0]} values for a "
            f"and {b.shape[0]} for b"
        )
    n = int(a.shape[0])
    if n < 2:
        raise ValueError(f"paired t-test needs at least 2 users, got {n}")
    diff = a - b
    mean_diff = float(diff.mean())
    if np.all(diff == 0):
        return {"t": 0.0, "p_value": 1.0, "mean_diff": 0.0, "n": n}
    result = stats.ttest_rel(a, b)
    return {
        "t": float(result.statistic),
        "p_value": float(result.pvalue),
        "mean_diff": mean_diff,
        "n": n,
    }


def is_significant(p: float, alpha: float = 0.05) -> bool:
    """``True`` iff ``p < alpha``; a NaN p-value is never significant."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return bool(not math.isnan(p) and p < alpha)


__all__ = ["is_significant", "paired_t_test"]
