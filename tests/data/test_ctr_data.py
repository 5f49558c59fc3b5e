"""The CTR protocol: labels, histories before each sample, global-time split, K-shot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recadapt.data.ctr import CTRDataset, build_samples, collate_ctr, ctr_split
from recadapt.data.dataset import build_dataset
from recadapt.errors import DataError


def rated(rows):
    return build_dataset("rated", pd.DataFrame(rows, columns=["user", "item", "timestamp",
                                                              "rating"]))


def test_labels_and_histories_by_hand():
    data = rated([("a", "x", 1, 5), ("a", "y", 2, 2), ("a", "z", 3, 4), ("b", "y", 1, 3)])
    samples = build_samples(data, history_len=2, label_threshold=4)
    x, y, z = (data.item_index(i) for i in "xyz")
    a_rows = np.flatnonzero(samples.users == data.user_index("a"))
    assert samples.labels[a_rows].tolist() == [1, 0, 1]
    # the third sample of a sees x (liked) then y (disliked), most recent last
    third = a_rows[2]
    assert samples.items[third] == z
    assert samples.history[third].tolist() == [x, y]
    assert samples.history_labels[third].tolist() == [1, 0]
    assert samples.history_ratings[third].tolist() == [5, 2]
    # the first sample has an empty (all padding) history
    assert samples.history[a_rows[0]].tolist() == [0, 0]
    b_row = np.flatnonzero(samples.users == data.user_index("b"))[0]
    assert samples.labels[b_row] == 0 and samples.history[b_row].tolist() == [0, 0]


def test_history_keeps_the_most_recent():
    rows = [("a", f"i{t}", t, 5) for t in range(6)]
    data = rated(rows)
    samples = build_samples(data, history_len=3)
    last = np.argmax(samples.timestamps)
    assert [data.item_ids[i] for i in samples.history[last]] == ["i2", "i3", "i4"]


def test_implicit_data_gets_seeded_negatives_never_seen_by_the_user():
    inter = pd.DataFrame({"user": ["a"] * 4 + ["b"] * 4,
                          "item": ["1", "2", "3", "4", "3", "4", "5", "6"],
                          "timestamp": list(range(8))})
    data = build_dataset("implicit", inter)
    one = build_samples(data, history_len=4, negatives=2, seed=3)
    again = build_samples(data, history_len=4, negatives=2, seed=3)
    assert np.array_equal(one.items, again.items)
    assert len(one) == 8 * 3 and one.labels.sum() == 8
    seen = {u: set(g) for u, g in data.interactions.groupby("user")["item"]}
    for user, item, label in zip(one.users, one.items, one.labels, strict=True):
        assert (item in seen[user]) == (label == 1)
    # a negative shares its positive's time and history; histories hold positives only
    assert set(one.history_labels[one.history > 0].tolist()) == {1.0}


def test_global_time_split_and_k_shot(shared_data):
    from recadapt.data.readers import read_dataset

    data = read_dataset(str(shared_data("ml-100k")))
    split = ctr_split(data, history_len=5)
    n = len(split.train) + len(split.valid) + len(split.test)
    assert n == 100_000 and len(split.train) == 80_000 and len(split.valid) == 10_000
    assert split.train.timestamps.max() <= split.valid.timestamps.min()
    assert split.valid.timestamps.max() <= split.test.timestamps.min()
    assert 0.5 < split.train.positive_rate < 0.6  # ML-100K: 55% of ratings are >= 4
    few = ctr_split(data, history_len=5, k_shot_train=64, seed=1)
    more = ctr_split(data, history_len=5, k_shot_train=256, seed=1)
    assert len(few.train) == 64
    pairs = set(zip(more.train.users, more.train.items, strict=True))
    assert set(zip(few.train.users, few.train.items, strict=True)) <= pairs  # nested subsets
    limited = ctr_split(data, history_len=5, max_eval_samples=500)
    assert len(limited.valid) == len(limited.test) == 500
    wide = ctr_split(data, history_len=5, max_eval_samples=500, max_test_samples=2000)
    assert len(wide.valid) == 500 and len(wide.test) == 2000
    assert np.array_equal(wide.valid.timestamps, limited.valid.timestamps)
    small_test = set(zip(limited.test.users, limited.test.items, strict=True))
    assert small_test < set(zip(wide.test.users, wide.test.items, strict=True))  # extends it


def test_bad_split_settings_are_clear():
    data = rated([("a", "x", 1, 5), ("a", "y", 2, 2), ("b", "z", 3, 4), ("b", "x", 4, 1)] * 3)
    with pytest.raises(DataError, match=r"data\.ctr\.split"):
        ctr_split(data, ratios=(0.5, 0.5, 0.5))
    with pytest.raises(DataError, match="k_shot"):
        ctr_split(data, ratios=(0.5, 0.25, 0.25), k_shot_train=1000)


def test_collate_trims_shared_padding():
    data = rated([("a", "x", 1, 5), ("a", "y", 2, 2), ("a", "z", 3, 4)])
    samples = build_samples(data, history_len=6)
    rows = CTRDataset(samples)
    batch = collate_ctr([rows[i] for i in range(len(rows))])
    assert batch["history"].shape == (3, 2)
    assert batch["history_label"].shape == (3, 2) and batch["label"].dtype.is_floating_point
    empty = collate_ctr([rows[int(np.argmin(samples.timestamps))]])
    assert empty["history"].shape == (1, 1) and int(empty["history"][0, 0]) == 0
