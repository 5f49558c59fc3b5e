"""Global time split, K-shot sampling, warm/cold items and cold users."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recadapt.data.dataset import build_dataset
from recadapt.data.splits import (
    EvalSet,
    NextItemSplit,
    cold_user_split,
    global_time_split,
    item_popularity_buckets,
    k_shot,
    k_shot_users,
    leave_one_out,
    subsample_users,
)
from recadapt.errors import DataError

STAMPS = [5, 1, 3, 3, 2, 9, 7, 3, 8, 0]


@pytest.fixture
def timed():
    inter = pd.DataFrame({"user": list("abcdeabcde"), "item": list("pqrstuvwxy"),
                          "timestamp": STAMPS})
    return build_dataset("timed", inter)


def test_global_time_split_orders_by_time_with_stable_ties(timed):
    train, valid, test = global_time_split(timed)
    assert list(train.index) == [9, 1, 4, 2, 3, 7, 0, 6]
    assert list(valid.index) == [8] and list(test.index) == [5]
    train, valid, test = global_time_split(timed, (0.5, 0.3, 0.2))
    # The three rows stamped 3 (rows 2, 3, 7) straddle the cut; file order decides.
    assert list(train.index) == [9, 1, 4, 2, 3]
    assert list(valid.index) == [7, 0, 6] and list(test.index) == [8, 5]
    assert train["timestamp"].max() <= valid["timestamp"].min()


def test_global_time_split_rejects_bad_ratios(timed):
    with pytest.raises(DataError, match=r"ratios=\(0.8, 0.1\) must be three"):
        global_time_split(timed, (0.8, 0.1))
    with pytest.raises(DataError, match="summing to 1"):
        global_time_split(timed, (0.8, 0.3, 0.1))


def test_k_shot_is_fixed_by_seed_nested_and_ordered():
    rows = np.arange(100) * 10
    first = k_shot(rows, 10, seed=42)
    assert np.array_equal(first, k_shot(rows, 10, seed=42))
    assert not np.array_equal(first, k_shot(rows, 10, seed=43))
    assert set(first) <= set(k_shot(rows, 30, seed=42))
    assert np.all(np.diff(first) > 0) and len(set(first)) == 10
    # Pinned values: a change in the sampling scheme would silently change every K-shot run.
    assert list(k_shot(list(range(10)), 3, seed=0)) == [2, 4, 6]


def test_k_shot_on_frames_and_bad_k():
    frame = pd.DataFrame({"x": range(10)}, index=list("abcdefghij"))
    picked = k_shot(frame, 3, seed=0)
    assert list(picked.index) == ["c", "e", "g"]
    with pytest.raises(DataError, match=r"k=11 must be a whole number between 1 and 10"):
        k_shot(frame, 11, seed=0)


def split_with_counts(counts):
    """A NextItemSplit whose training sequences give item i exactly counts[i - 1] interactions."""
    n = len(counts)
    inter = pd.DataFrame({"user": [0] * n, "item": range(1, n + 1)})
    dataset = build_dataset("pop", inter)  # items 1..n in order, so index i = raw id i
    train = [np.repeat(np.arange(1, n + 1), counts)]
    empty = EvalSet(np.zeros(0, dtype=np.int64), [], np.zeros(0, dtype=np.int64))
    return NextItemSplit(dataset, train, empty, empty)


def test_popularity_buckets_top_and_bottom_35_percent():
    split = split_with_counts([5, 0, 3, 3, 1, 7, 2, 0, 4, 1])
    warm, cold = item_popularity_buckets(split)
    # floor(0.35 * 10) = 3 per bucket; ranking 6,1,9,3,4,7,5,10,2,8 (ties: lower index warmer).
    assert warm.tolist() == [1, 6, 9]
    assert cold.tolist() == [2, 8, 10]
    warm, cold = item_popularity_buckets(split, fraction=0.5)
    assert warm.tolist() == [1, 3, 4, 6, 9] and cold.tolist() == [2, 5, 7, 8, 10]
    with pytest.raises(DataError, match=r"fraction=0.6 must be in \(0, 0.5\]"):
        item_popularity_buckets(split, fraction=0.6)


def test_cold_users_are_held_out_of_training():
    inter = pd.DataFrame({
        "user": ["a", "a", "a", "b", "b", "b", "b", "c", "c", "c"],
        "item": ["x", "y", "z", "x", "y", "z", "w", "w", "x", "v"],
        "timestamp": [2, 3, 1, 1, 2, 3, 4, 9, 8, 7],
    })
    d = build_dataset("cold", inter)  # users a0 b1 c2; items x1 y2 z3 w4 v5
    train, cold = cold_user_split(d)
    assert cold.users.tolist() == [0, 2]
    assert [h.tolist() for h in cold.histories] == [[3, 1], [5, 1]]  # a: z x | c: v x
    assert cold.targets.tolist() == [2, 4]  # a: y, c: w
    assert set(train.interactions["user"]) == {1}
    assert len(train.interactions) == 4
    # Same index spaces, so the EvalSet stays valid against the training dataset.
    assert train.num_users == 3 and list(train.item_ids) == list(d.item_ids)
    with pytest.raises(DataError, match="no user has exactly 5 interactions"):
        cold_user_split(d, 5)


def lengths_split(lengths):
    """Leave-one-out over users with the given sequence lengths; no item is shared, so the
    item indices run 1, 2, ... through the users in order."""
    users, items, stamps = [], [], []
    for user, length in enumerate(lengths):
        for step in range(length):
            users.append(f"u{user}")
            items.append(f"i{user * 10 + step}")
            stamps.append(step)
    inter = pd.DataFrame({"user": users, "item": items, "timestamp": stamps})
    return leave_one_out(build_dataset("lengths", inter))


def test_k_shot_users_keeps_k_users_training_sequences_only():
    # training items per user: 3, 1, 4, 2 (2 items, too short to evaluate), 1 (3 - 2), 2
    split = lengths_split([5, 3, 6, 2, 3, 4])
    trainable = {0, 2, 3, 5}  # the users with the 2 training items a window needs
    assert {u for u, seq in enumerate(split.train) if len(seq) >= 2} == trainable
    chosen = set()
    for seed in range(8):
        few = k_shot_users(split, 2, seed)
        kept = {u for u, seq in enumerate(few.train) if len(seq)}
        assert len(kept) == 2 and kept <= trainable
        for user, seq in enumerate(few.train):
            expected = split.train[user] if user in kept else np.zeros(0, dtype=np.int64)
            assert np.array_equal(seq, expected) and seq.dtype == np.int64
        assert few.valid is split.valid and few.test is split.test  # everyone is evaluated
        assert few.dataset is split.dataset and len(few.train) == len(split.train)
        again = k_shot_users(split, 2, seed)
        assert [s.tolist() for s in again.train] == [s.tolist() for s in few.train]
        chosen.add(frozenset(kept))
    assert len(chosen) > 1  # the seed decides
    every = k_shot_users(split, 4, 0)
    assert {u for u, seq in enumerate(every.train) if len(seq)} == trainable
    assert split.train[1].tolist() == [6]  # the input split is not changed
    with pytest.raises(DataError, match="5 users asked, but only 4 have"):
        k_shot_users(split, 5, 0)


def test_subsample_users_is_a_seeded_subset_in_original_order():
    users = np.array([5, 3, 9, 1, 7, 2])
    eval_set = EvalSet(users, [np.array([u, u + 100]) for u in users], users * 10)
    sub = subsample_users(eval_set, 3, seed=0)
    assert len(sub) == 3
    rows = [users.tolist().index(u) for u in sub.users]
    assert rows == sorted(rows) and len(set(rows)) == 3  # original order, no repeats
    for user, history, target in zip(sub.users, sub.histories, sub.targets, strict=True):
        assert history.tolist() == [user, user + 100] and target == user * 10  # rows aligned
    again = subsample_users(eval_set, 3, seed=0)
    assert again.users.tolist() == sub.users.tolist()
    seen = {tuple(subsample_users(eval_set, 3, seed).users) for seed in range(10)}
    assert len(seen) > 1
    assert subsample_users(eval_set, 6, seed=0) is eval_set
    assert subsample_users(eval_set, 60, seed=0) is eval_set
