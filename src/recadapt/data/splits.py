"""Splits of a Dataset into training and evaluation parts.

Next-item protocol (IISAN V-C, CROSSAN 5): **leave-one-out** — the last item of each user's
time-ordered sequence is the test target, the second-to-last the validation target, the rest
trains. Users with fewer than 3 interactions cannot supply all three parts; they contribute
their items to training only and are not evaluated (documented in docs/protocols.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np
import pandas as pd

from recadapt.data.dataset import PAD_ITEM, Dataset
from recadapt.errors import DataError


@dataclass
class EvalSet:
    """Users to evaluate, each with the history the model sees and the held-out target."""

    users: np.ndarray
    histories: list[np.ndarray]
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class NextItemSplit:
    """Training sequences per user index plus validation and test sets."""

    dataset: Dataset
    train: list[np.ndarray]
    valid: EvalSet
    test: EvalSet
    protocol: str = "leave_one_out"

    def item_counts(self) -> np.ndarray:
        """Training interactions per item index (``[num_items + 1]``, index 0 = padding = 0)."""
        flat = np.concatenate(self.train) if self.train else np.zeros(0, dtype=np.int64)
        return np.bincount(flat, minlength=self.dataset.num_items + 1)


def leave_one_out(dataset: Dataset) -> NextItemSplit:
    """Last item = test, second-to-last = valid, the rest = train (see module docstring)."""
    train: list[np.ndarray] = []
    valid_users, valid_hist, valid_tgt = [], [], []
    test_users, test_hist, test_tgt = [], [], []
    for user, seq in enumerate(dataset.sequences()):
        if len(seq) < 3:
            train.append(seq)
            continue
        train.append(seq[:-2])
        valid_users.append(user)
        valid_hist.append(seq[:-2])
        valid_tgt.append(seq[-2])
        test_users.append(user)
        test_hist.append(seq[:-1])
        test_tgt.append(seq[-1])
    if not test_users:
        raise DataError(
            f"dataset {dataset.name!r}: no user has the 3 interactions leave-one-out needs"
        )
    return NextItemSplit(
        dataset=dataset,
        train=train,
        valid=EvalSet(np.array(valid_users), valid_hist, np.array(valid_tgt, dtype=np.int64)),
        test=EvalSet(np.array(test_users), test_hist, np.array(test_tgt, dtype=np.int64)),
    )


# ----------------------------------------------------------------------------- CTR protocol


def global_time_split(
    dataset: Dataset, ratios: Sequence[float] = (0.8, 0.1, 0.1)
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train/valid/test interaction rows cut at global timestamp order (CTR protocol, 8:1:1).

    RecLoRA/TALLRec/ATFLRec sort *all* interactions by time and cut by ratio, so the test
    period follows the training period for everyone (no peeking at the future). Choices the
    papers leave open: ties in timestamp keep file order (stable sort), and the cut is by row
    count — ``n_train = floor(n * r_train)``, ``n_valid = floor(n * (r_train + r_valid)) -
    n_train``, the rest is test — so a cut may fall inside a group of equal timestamps.
    Rows keep their index in ``dataset.interactions`` so they can be traced back.
    """
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise DataError(
            f"global_time_split: ratios={tuple(ratios)} must be three non-negative numbers "
            "summing to 1, e.g. (0.8, 0.1, 0.1)"
        )
    ordered = dataset.interactions.sort_values("timestamp", kind="stable")
    n = len(ordered)
    first = int(np.floor(n * ratios[0] + 1e-9))
    second = int(np.floor(n * (ratios[0] + ratios[1]) + 1e-9))
    return ordered.iloc[:first], ordered.iloc[first:second], ordered.iloc[second:]


_Rows = TypeVar("_Rows", pd.DataFrame, np.ndarray, list)


def k_shot(frame_or_array: _Rows, k: int, seed: int) -> _Rows:
    """A fixed K-shot training subset: ``k`` rows drawn without replacement with ``seed``.

    Few-shot results (TALLRec, A-LLMRec) are only comparable when the subset is sampled
    once and kept: the same input, ``k`` and ``seed`` always return the same rows
    (``numpy.random.default_rng(seed).permutation(n)[:k]``, stable across numpy versions
    that keep PCG64). Because it is a prefix of one permutation, the subset for a smaller
    ``k`` is contained in the subset for a larger ``k`` with the same seed, so a K-shot
    curve adds examples instead of resampling. Rows come back in their original order.
    Works on a DataFrame (rows), a numpy array (first axis) or a list.
    """
    n = len(frame_or_array)
    if int(k) != k or k < 1 or k > n:
        raise DataError(f"k_shot: k={k!r} must be a whole number between 1 and {n} (the rows)")
    chosen = np.sort(np.random.default_rng(seed).permutation(n)[: int(k)])
    if isinstance(frame_or_array, pd.DataFrame):
        return frame_or_array.iloc[chosen]
    if isinstance(frame_or_array, np.ndarray):
        return frame_or_array[chosen]
    return [frame_or_array[i] for i in chosen]


# ----------------------------------------------------------------------------- scenarios


def item_popularity_buckets(
    split: NextItemSplit, fraction: float = 0.35
) -> tuple[np.ndarray, np.ndarray]:
    """Warm and cold items: the top and bottom ``fraction`` of items by training interactions.

    A-LLMRec evaluates warm (top 35%) and cold (bottom 35%) items separately. Choices the
    paper leaves open: popularity counts only *training* interactions (``split.train``),
    so items seen only as valid/test targets count 0 and are the coldest; each bucket holds
    ``floor(fraction * num_items)`` items; ties are broken by item index (lower index ranks
    as more popular), so buckets are deterministic. Returns two sorted arrays of item
    indices (never the padding item 0); ``fraction`` must be in (0, 0.5] so they are disjoint.
    """
    if not 0 < fraction <= 0.5:
        raise DataError(
            f"item_popularity_buckets: fraction={fraction!r} must be in (0, 0.5] so warm and "
            "cold items do not overlap"
        )
    counts = split.item_counts()[PAD_ITEM + 1:]
    size = int(np.floor(fraction * len(counts) + 1e-9))
    if size == 0:
        raise DataError(
            f"item_popularity_buckets: {len(counts)} items x fraction {fraction} leaves an "
            "empty bucket; use a larger fraction or more items"
        )
    # Most popular first; the stable sort on -count keeps lower indices first among ties.
    ranked = np.argsort(-counts, kind="stable") + 1
    return np.sort(ranked[:size]), np.sort(ranked[-size:])


def cold_user_split(dataset: Dataset, n_interactions: int = 3) -> tuple[Dataset, EvalSet]:
    """Cold users (A-LLMRec): users with exactly ``n_interactions``, held out of training.

    Returns ``(train_dataset, eval_set)``. Each cold user is evaluated on its last item with
    the first ``n_interactions - 1`` items (time order) as history; none of its interactions
    is in ``train_dataset``. The training dataset is **not re-indexed**: it keeps the same
    user and item index spaces as ``dataset`` (cold users simply have no interactions), so the
    EvalSet indices and item embeddings stay valid. Items seen only by cold users stay in the
    vocabulary with no training signal, as they would in deployment.
    """
    if int(n_interactions) != n_interactions or n_interactions < 2:
        raise DataError(
            f"cold_user_split: n_interactions={n_interactions!r} must be a whole number >= 2 "
            "(a history plus a target)"
        )
    sequences = dataset.sequences()
    cold = [u for u, seq in enumerate(sequences) if len(seq) == n_interactions]
    if not cold:
        raise DataError(
            f"dataset {dataset.name!r}: no user has exactly {n_interactions} interactions, "
            "so there are no cold users; try another n_interactions"
        )
    is_cold = np.zeros(dataset.num_users, dtype=bool)
    is_cold[cold] = True
    inter = dataset.interactions
    train_inter = inter[~is_cold[inter["user"].to_numpy()]].reset_index(drop=True)
    if train_inter.empty:
        raise DataError(
            f"dataset {dataset.name!r}: every user has exactly {n_interactions} interactions, "
            "so nothing is left to train on"
        )
    train = replace(dataset, interactions=train_inter)
    eval_set = EvalSet(
        users=np.asarray(cold, dtype=np.int64),
        histories=[sequences[u][:-1] for u in cold],
        targets=np.asarray([sequences[u][-1] for u in cold], dtype=np.int64),
    )
    return train, eval_set


def k_shot_users(split: NextItemSplit, k: int, seed: int) -> NextItemSplit:
    """Few-shot next-item training (A-LLMRec 5.2.4): only ``k`` users, drawn once with
    ``seed`` (:func:`k_shot` over users who have training items), keep their training
    sequences; every other user's training sequence is emptied. Validation and test are
    unchanged, so models meet many items they never saw in training."""
    trainable = np.array([u for u, seq in enumerate(split.train) if len(seq) >= 2])
    if len(trainable) < k:
        raise DataError(f"data.k_shot_users: {k} users asked, but only {len(trainable)} have "
                        "the 2 training items a training sequence needs")
    chosen = set(k_shot(trainable, k, seed).tolist())
    empty = np.zeros(0, dtype=np.int64)
    train = [seq if u in chosen else empty for u, seq in enumerate(split.train)]
    return replace(split, train=train)


def subsample_users(eval_set: EvalSet, n: int, seed: int) -> EvalSet:
    """A fixed random subset of ``n`` users of an evaluation set (all when it has fewer), in
    their original order: LLM scorers cost seconds per user, so their tables evaluate on a
    seeded subsample that every model of the table shares."""
    if n >= len(eval_set):
        return eval_set
    rows = np.sort(np.random.default_rng(seed).permutation(len(eval_set))[:n])
    return EvalSet(eval_set.users[rows], [eval_set.histories[i] for i in rows],
                   eval_set.targets[rows])


def cold_users(dataset: Dataset, count: int, n_interactions: int = 3,
               seed: int = 0) -> tuple[Dataset, EvalSet]:
    """Cold users (A-LLMRec 5.2.3), ``count`` of them (fewer if fewer exist), drawn with
    ``seed``: users with exactly ``n_interactions`` when the data has any
    (:func:`cold_user_split`); on k-core data that has none (ML-100K: >= 20 ratings; Amazon
    Scientific: >= 5), users with more are held out and **truncated** to their first
    ``n_interactions`` items — a user who has just arrived. Either way none of a cold user's
    interactions trains; each is evaluated on its ``n_interactions``-th item with the earlier
    ones as history. The returned dataset keeps the index spaces (as ``cold_user_split``)."""
    sequences = dataset.sequences()
    exact = [u for u, seq in enumerate(sequences) if len(seq) == n_interactions]
    pool = exact or [u for u, seq in enumerate(sequences) if len(seq) > n_interactions]
    if not pool:
        raise DataError(f"data.cold_users: no user of {dataset.name!r} has "
                        f">= {n_interactions} interactions")
    chosen = np.sort(np.random.default_rng(seed).permutation(pool)[:count])
    is_cold = np.zeros(dataset.num_users, dtype=bool)
    is_cold[chosen] = True
    inter = dataset.interactions
    train = replace(dataset, interactions=inter[~is_cold[inter["user"].to_numpy()]]
                    .reset_index(drop=True))
    firsts = [sequences[u][:n_interactions] for u in chosen]
    return train, EvalSet(users=chosen.astype(np.int64), histories=[s[:-1] for s in firsts],
                          targets=np.asarray([s[-1] for s in firsts], dtype=np.int64))
