"""Ranking and classification metrics.

Conventions (shared with :mod:`recadapt.models.base`): items are indexed ``1..num_items``, index
0 is padding and is never a valid recommendation; score matrices are ``[B, num_items + 1]`` with
column 0 = padding.

Backends:

* ranking functions (:func:`full_ranks`, :func:`sampled_ranks`, :func:`sample_negatives`,
  :func:`hit_at_k`, :func:`ndcg_at_k`, :func:`ranking_metrics`) work on **torch** tensors
  (numpy arrays are accepted and converted); ranks are ``LongTensor[B]``, 1-based;
* :func:`auc` and :func:`logloss` work on **numpy** (tensors are converted) and return floats.

Tie rule (pessimistic): the rank of the target is ``1 + #(other candidates with score >= the
target's score)``, i.e. every candidate that ties with the target is placed above it. A model
that scores everything equal therefore gets the *worst* rank, never rank 1. NaN scores are
rejected with a ``ValueError`` (a NaN target would otherwise compare as "nothing is higher").

Metric naming: :func:`ranking_metrics` returns ``"HR@10"``, ``"NDCG@10"``, ... for the full
ranking protocol. Results from the sampled protocol (target vs. N sampled negatives) are
always prefixed with ``"sampled_"`` (``"sampled_HR@10"``, ``"sampled_NDCG@10"``) so they can
never be mistaken for full-ranking numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from scipy.stats import rankdata

ArrayLike = torch.Tensor | np.ndarray | Sequence


def _as_long(x: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(x, (set, frozenset)):
        x = sorted(x)
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.array(x))  # copy: may be read-only
    if t.dim() == 1 and t.numel() == 0:
        return t.long()
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer item indices, got dtype {t.dtype}")
    return t.long()


def _check_scores(scores: torch.Tensor) -> torch.Tensor:
    scores = torch.as_tensor(scores)
    if scores.dim() != 2:
        raise ValueError(f"scores must be [B, num_items + 1], got shape {tuple(scores.shape)}")
    if scores.shape[1] < 2:
        raise ValueError("scores must have at least one item column besides padding column 0")
    if scores.is_floating_point() and torch.isnan(scores).any():
        raise ValueError("scores contain NaN; cannot rank")
    return scores


def _check_targets(targets: ArrayLike, batch: int, num_items: int) -> torch.Tensor:
    targets = _as_long(targets, "targets")
    if targets.shape != (batch,):
        raise ValueError(f"targets must be [B]={batch}, got shape {tuple(targets.shape)}")
    if batch and (targets.min() < 1 or targets.max() > num_items):
        raise ValueError(f"targets must be item indices in 1..{num_items} (0 is padding)")
    return targets


def full_ranks(
    scores: torch.Tensor,
    targets: ArrayLike,
    exclude: Iterable[ArrayLike] | torch.Tensor | None = None,
) -> torch.Tensor:
    """1-based rank of each target among **all** items (torch).

    Args:
        scores: ``[B, num_items + 1]`` scores; column 0 (padding) is never a candidate.
        targets: ``LongTensor[B]`` held-out items, in ``1..num_items``.
        exclude: ``None`` or one 1-D index array/tensor per user (e.g. the user's history; a
            left-padded ``LongTensor[B, L]`` works too, its zeros are harmless). These items are
            removed from the candidates, **except the target itself**, which is always ranked.

    Returns:
        ``LongTensor[B]``: ``1 + #(non-excluded items other than the target whose score is >=
        the target's score)`` -- the pessimistic tie rule of this module.
    """
    scores = _check_scores(scores)
    batch, width = scores.shape
    targets = _check_targets(targets, batch, width - 1).to(scores.device)

    candidate = torch.ones(batch, width, dtype=torch.bool, device=scores.device)
    candidate[:, 0] = False
    if exclude is not None:
        if isinstance(exclude, torch.Tensor) and exclude.dim() == 2:
            if exclude.shape[0] != batch:
                raise ValueError(f"exclude has {exclude.shape[0]} rows for {batch} users")
            candidate.scatter_(1, exclude.long().to(scores.device), False)
        else:
            rows = [_as_long(e, "exclude[b]").reshape(-1) for e in exclude]
            if len(rows) != batch:
                raise ValueError(f"exclude has {len(rows)} entries for {batch} users")
            lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
            if int(lengths.sum()) > 0:
                cols = torch.cat(rows).to(scores.device)
                if cols.min() < 0 or cols.max() >= width:
                    raise ValueError(f"exclude holds indices outside 0..{width - 1}")
                users = torch.repeat_interleave(torch.arange(batch), lengths).to(scores.device)
                candidate[users, cols] = False
    # the target is compared against the *other* candidates only
    candidate[torch.arange(batch, device=scores.device), targets] = False

    target_scores = scores.gather(1, targets[:, None])
    at_least = (scores >= target_scores) & candidate
    return 1 + at_least.sum(dim=1)


def sampled_ranks(scores: torch.Tensor, targets: ArrayLike, negatives: ArrayLike) -> torch.Tensor:
    """1-based rank of each target among itself + its ``N`` sampled negatives (torch).

    Args:
        scores: ``[B, num_items + 1]`` scores.
        targets: ``LongTensor[B]`` held-out items.
        negatives: ``LongTensor[B, N]`` negatives per user (see :func:`sample_negatives`); they
            must not contain padding 0 nor the user's target.

    Returns:
        ``LongTensor[B]`` in ``1..N+1``, ``1 + #(negatives with score >= target score)``
        (pessimistic tie rule).
    """
    scores = _check_scores(scores)
    batch, width = scores.shape
    targets = _check_targets(targets, batch, width - 1).to(scores.device)
    negatives = _as_long(negatives, "negatives").to(scores.device)
    if negatives.dim() != 2 or negatives.shape[0] != batch:
        raise ValueError(f"negatives must be [B={batch}, N], got shape {tuple(negatives.shape)}")
    if negatives.numel() and (negatives.min() < 1 or negatives.max() >= width):
        raise ValueError(f"negatives must be item indices in 1..{width - 1} (0 is padding)")
    if (negatives == targets[:, None]).any():
        raise ValueError("negatives contain the user's own target item")
    return candidate_ranks(scores.gather(1, torch.cat([targets[:, None], negatives], dim=1)))


def candidate_ranks(candidate_scores: torch.Tensor) -> torch.Tensor:
    """1-based rank of column 0 (the target) among the columns of ``[B, 1 + N]`` scores:
    ``1 + #(other columns with score >= target score)`` (pessimistic tie rule, so a model
    that scores every candidate alike ranks the target last, not first)."""
    if candidate_scores.dim() != 2 or candidate_scores.shape[1] < 1:
        shape = tuple(candidate_scores.shape)
        raise ValueError(f"candidate scores must be [B, 1 + N], got {shape}")
    scores = candidate_scores.float()
    return 1 + (scores[:, 1:] >= scores[:, :1]).sum(dim=1)


def sample_negatives(
    num_items: int, exclude: Sequence[Iterable[int]], n: int, seed: int,
    keys: Sequence[int] | None = None,
) -> torch.Tensor:
    """Uniform negatives per user, without replacement, fixed by ``seed`` (numpy RNG).

    With ``keys`` (e.g. user indices) each row draws from its own generator
    ``default_rng([seed, key])``, so a user's negatives do not depend on which other users
    share its batch: every model of a comparison ranks the same candidate lists.

    Args:
        num_items: items are ``1..num_items`` (0 = padding, never sampled).
        exclude: one collection (set, list, array, tensor) per user of the items the user has
            interacted with -- **include the target**, so it is never drawn as a negative.
        n: negatives per user.
        seed: seed of ``numpy.random.default_rng``; the same inputs give the same output.

    Returns:
        ``LongTensor[B, n]``; each row holds ``n`` distinct items in ``1..num_items`` not in
        ``exclude[b]``.

    Raises:
        ValueError: if a user has fewer than ``n`` items left to sample from.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if keys is not None and len(keys) != len(exclude):
        raise ValueError(f"keys has {len(keys)} entries for {len(exclude)} users")
    shared = np.random.default_rng(seed)
    out = np.zeros((len(exclude), n), dtype=np.int64)
    for b, items in enumerate(exclude):
        rng = shared if keys is None else np.random.default_rng([seed, int(keys[b])])
        if isinstance(items, (torch.Tensor, np.ndarray)):
            items = items.reshape(-1).tolist()
        banned = {int(i) for i in items if 1 <= int(i) <= num_items}
        available = num_items - len(banned)
        if available < n:
            raise ValueError(
                f"user {b}: only {available} non-interacted items, cannot sample {n} negatives"
            )
        if available >= 4 * n and num_items > 10_000:
            # rejection sampling: cheap when the user's items are a small part of the catalogue
            chosen: list[int] = []
            seen: set[int] = set()
            while len(chosen) < n:
                for i in rng.integers(1, num_items + 1, size=2 * (n - len(chosen))).tolist():
                    if i not in banned and i not in seen:
                        seen.add(i)
                        chosen.append(i)
                        if len(chosen) == n:
                            break
            out[b] = chosen
        else:
            pool = np.setdiff1d(
                np.arange(1, num_items + 1), np.fromiter(banned, dtype=np.int64, count=len(banned))
            )
            out[b] = rng.choice(pool, size=n, replace=False)
    return torch.from_numpy(out)


def _as_ranks(ranks: ArrayLike) -> torch.Tensor:
    ranks = _as_long(ranks, "ranks")
    if ranks.numel() and ranks.min() < 1:
        raise ValueError("ranks are 1-based; got a rank < 1")
    return ranks


def hit_at_k(ranks: ArrayLike, k: int) -> torch.Tensor:
    """Per-user hit ratio: ``1.0`` if ``rank <= k`` else ``0.0`` (torch ``float64[B]``)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return (_as_ranks(ranks) <= k).double()


def ndcg_at_k(ranks: ArrayLike, k: int) -> torch.Tensor:
    """Per-user NDCG with one relevant item: ``1 / log2(rank + 1)`` if ``rank <= k`` else 0.

    Returns torch ``float64[B]``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ranks = _as_ranks(ranks)
    gain = 1.0 / torch.log2(ranks.double() + 1.0)
    return torch.where(ranks <= k, gain, torch.zeros_like(gain))


def ranking_metrics(
    ranks: ArrayLike, ks: Iterable[int] = (10, 20), prefix: str = "", sampled: bool = False
) -> dict[str, float]:
    """Mean HR@k and NDCG@k over users.

    Keys are ``f"{prefix}HR@{k}"`` and ``f"{prefix}NDCG@{k}"``; with ``sampled=True`` the
    literal ``"sampled_"`` is inserted after ``prefix`` (``"sampled_HR@10"``, or with
    ``prefix="test_"``: ``"test_sampled_HR@10"``). Pass ``sampled=True`` for every result of
    :func:`sampled_ranks` so that sampled numbers are never reported as full-ranking ones.
    """
    ranks = _as_ranks(ranks)
    if ranks.numel() == 0:
        raise ValueError("ranking_metrics needs at least one rank")
    label = prefix + ("sampled_" if sampled else "")
    out: dict[str, float] = {}
    for k in ks:
        out[f"{label}HR@{k}"] = float(hit_at_k(ranks, k).mean())
        out[f"{label}NDCG@{k}"] = float(ndcg_at_k(ranks, k).mean())
    return out


def _as_1d_float(x: ArrayLike, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if np.isnan(arr).any():
        raise ValueError(f"{name} contain NaN")
    return arr


def _check_labels(labels: ArrayLike, length: int) -> np.ndarray:
    y = _as_1d_float(labels, "labels")
    if y.shape[0] != length:
        raise ValueError(f"labels has {y.shape[0]} entries but scores/probs has {length}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    return y


def auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """ROC AUC via the Mann-Whitney rank statistic (numpy).

    Tied scores get their average rank, so a positive/negative tie counts 1/2.

    Raises:
        ValueError: if only one class is present (AUC is undefined) or lengths differ.
    """
    s = _as_1d_float(scores, "scores")
    y = _check_labels(labels, s.shape[0])
    n_pos = int(y.sum())
    n_neg = y.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC is undefined when labels contain only one class")
    r = rankdata(s)  # average ranks for ties
    return float((r[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def logloss(labels: ArrayLike, probs: ArrayLike, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy (numpy); ``probs`` are clipped to ``[eps, 1 - eps]``.

    ``probs`` must be probabilities in ``[0, 1]`` (not logits); anything else raises.
    """
    p = _as_1d_float(probs, "probs")
    y = _check_labels(labels, p.shape[0])
    if p.size == 0:
        raise ValueError("logloss needs at least one example")
    if (p < 0).any() or (p > 1).any():
        raise ValueError("probs must lie in [0, 1]; pass probabilities, not logits")
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def accuracy(labels: ArrayLike, probs: ArrayLike, threshold: float = 0.5) -> float:
    """Share of samples whose predicted class (``probs >= threshold``) is their label."""
    p = _as_1d_float(probs, "probs")
    y = _check_labels(labels, p.shape[0])
    if p.size == 0:
        raise ValueError("accuracy needs at least one example")
    return float(np.mean((p >= threshold) == (y == 1)))


__all__ = [
    "accuracy",
    "auc",
    "full_ranks",
    "hit_at_k",
    "logloss",
    "ndcg_at_k",
    "ranking_metrics",
    "sample_negatives",
    "sampled_ranks",
]
