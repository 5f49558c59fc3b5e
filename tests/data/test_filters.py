"""k-core and rating binarization, checked against hand-computed results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recadapt.data.dataset import build_dataset
from recadapt.data.filters import binarize_ratings, k_core
from recadapt.errors import DataError


@pytest.fixture
def tiny():
    # u1: a b c   u2: a b   u3: a d      item counts a3 b2 c1 d1
    inter = pd.DataFrame({
        "user": ["u1", "u1", "u1", "u2", "u2", "u3", "u3"],
        "item": ["a", "b", "c", "a", "b", "a", "d"],
        "timestamp": [1, 2, 3, 4, 5, 6, 7],
        "rating": [5.0, 4.0, 3.5, 3.0, 1.0, 2.0, 4.5],
    })
    items = pd.DataFrame({"title": ["A", "B", "C", "D"]}, index=["a", "b", "c", "d"])
    users = pd.DataFrame({"age": [10, 20, 30]}, index=["u1", "u2", "u3"])
    return build_dataset("tiny", inter, item_table=items, user_table=users,
                         text_fields=["title"], title_field="title")


def raw_rows(d):
    return [(d.user_ids[u], d.item_ids[i]) for u, i in d.interactions[["user", "item"]]
            .itertuples(index=False)]


def test_k_core_iterates_until_stable_and_reindexes(tiny):
    # Round 1 drops items c, d (1 each); then u3 has 1 interaction and is dropped.
    d = k_core(tiny, 2)
    assert raw_rows(d) == [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b")]
    assert list(d.user_ids) == ["u1", "u2"]
    assert list(d.item_ids) == ["[PAD]", "a", "b"]
    assert d.interactions["user"].tolist() == [0, 0, 1, 1]
    assert d.interactions["item"].tolist() == [1, 2, 1, 2]
    assert d.interactions["rating"].tolist() == [5.0, 4.0, 3.0, 1.0]
    assert [d.item_title(i) for i in (1, 2)] == ["A", "B"]
    assert d.user_features["age"].tolist() == [10, 20]
    assert d.text_fields == ["title"] and d.title_field == "title"


def test_k_core_user_and_item_thresholds(tiny):
    d = k_core(tiny, 2, user_k=1)  # u3 keeps its one item a
    assert raw_rows(d) == [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u3", "a")]
    d = k_core(tiny, 1, user_k=3)  # only u1 has 3; its items then have 1 each
    assert raw_rows(d) == [("u1", "a"), ("u1", "b"), ("u1", "c")]


def test_k_core_keeps_label_column_aligned(tiny):
    d = k_core(binarize_ratings(tiny, 4), 2)
    assert d.interactions["label"].tolist() == [1, 1, 0, 0]


def test_k_core_that_empties_the_dataset_says_so(tiny):
    with pytest.raises(DataError, match=r"k_core\(user_k=3, item_k=3\) left no interactions in "
                                        r"dataset 'tiny'; use a smaller k"):
        k_core(tiny, 3)
    with pytest.raises(DataError, match="k=0"):
        k_core(tiny, 0)


def test_binarize_inclusive_and_strict(tiny):
    assert binarize_ratings(tiny, 4).interactions["label"].tolist() == [1, 1, 0, 0, 0, 0, 1]
    strict = binarize_ratings(tiny, 3.0, strict=True).interactions["label"].tolist()
    assert strict == [1, 1, 1, 0, 0, 0, 1]
    assert "label" not in tiny.interactions  # the input is not modified


def test_binarize_needs_ratings(tiny):
    no_rating = build_dataset("plain", tiny.interactions.drop(columns="rating"))
    with pytest.raises(DataError, match=r"dataset 'plain' has no rating column"):
        binarize_ratings(no_rating, 4)


def test_k_core_without_item_features():
    inter = pd.DataFrame({"user": [1, 1, 2, 2], "item": [1, 2, 1, 3]})
    d = k_core(build_dataset("x", inter), 1, item_k=2)  # items 2 and 3 go; users keep 1
    assert list(d.item_ids) == ["[PAD]", "1"] and len(d.item_features) == 2
    assert np.array_equal(d.interactions["user"], [0, 1])
