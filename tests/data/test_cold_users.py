"""The cold-user scenario (data.cold_users): held-out users, exact or truncated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recadapt.config import validate_config
from recadapt.data.dataset import build_dataset
from recadapt.data.splits import cold_users
from recadapt.errors import DataError


def dataset_of(lengths: list[int]):
    rows = []
    for u, n in enumerate(lengths):
        rows += [(f"u{u}", f"i{(u + s) % 7}", s) for s in range(n)]
    return build_dataset("lens", pd.DataFrame(rows, columns=["user", "item", "timestamp"]))


def test_users_with_exactly_n_interactions_are_preferred():
    data = dataset_of([3, 5, 3, 6, 4])
    train, cold = cold_users(data, count=10, n_interactions=3, seed=0)
    assert sorted(cold.users.tolist()) == [data.user_ids.tolist().index("u0"),
                                           data.user_ids.tolist().index("u2")]
    sequences = data.sequences()
    for user, history, target in zip(cold.users, cold.histories, cold.targets, strict=True):
        assert history.tolist() == sequences[user][:2].tolist()
        assert target == sequences[user][2]
    kept = set(train.interactions["user"].tolist())
    assert not kept & set(cold.users.tolist())
    assert len(train.interactions) == len(data.interactions) - 6


def test_without_exact_users_longer_ones_are_truncated_to_their_first_items():
    data = dataset_of([5, 6, 7, 8])
    train, cold = cold_users(data, count=2, n_interactions=3, seed=1)
    assert len(cold) == 2
    sequences = data.sequences()
    for user, history, target in zip(cold.users, cold.histories, cold.targets, strict=True):
        assert len(history) == 2
        assert [*history.tolist(), int(target)] == sequences[user][:3].tolist()
    removed = sum(len(sequences[u]) for u in cold.users)
    assert len(train.interactions) == len(data.interactions) - removed
    again = cold_users(data, count=2, n_interactions=3, seed=1)[1]
    assert again.users.tolist() == cold.users.tolist()  # fixed by the seed


def test_no_user_long_enough_is_a_data_error():
    with pytest.raises(DataError, match="cold_users"):
        cold_users(dataset_of([2, 2]), count=1, n_interactions=3)


def test_pipeline_tests_cold_users_and_trains_without_them(cyclic_csv):
    from recadapt.train.runs import prepare_data

    config = validate_config({"data": {"source": str(cyclic_csv), "cold_users": 5},
                              "train": {"seed": 3}})
    prepared = prepare_data(config)
    split = prepared.split
    assert len(split.test) == 5
    cold = set(split.test.users.tolist())
    assert all(len(split.train[u]) == 0 for u in cold)
    assert not cold & set(split.valid.users.tolist())
    assert all(len(h) == 2 for h in split.test.histories)
    assert split.dataset.num_users == prepared.dataset.num_users
    assert np.all(split.item_counts() >= 0)
