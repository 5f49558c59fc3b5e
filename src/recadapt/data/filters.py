"""Filters that return a new Dataset: k-core and rating binarization.

Filtering drops rows, so a filtered dataset is **re-indexed** through
:func:`~recadapt.data.dataset.build_dataset` (users ``0..U-1``, items ``1..I``) with item
features, user features, text fields and title field carried along by raw id, and any extra
interaction columns (e.g. ``label``) kept row-aligned.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from recadapt.data.dataset import PAD_ITEM, Dataset, build_dataset
from recadapt.errors import DataError

_CORE_COLUMNS = ("user", "item", "timestamp", "rating")


def k_core(dataset: Dataset, k: int, *, user_k: int | None = None,
           item_k: int | None = None) -> Dataset:
    """Keep the largest subset where every user and item has at least ``k`` interactions.

    Dropping a sparse item can push a user under the threshold (and back), so the two
    filters alternate until nothing changes — the usual "5-core" of the CTR papers
    (RecLoRA, TALLRec). ``user_k`` / ``item_k`` override ``k`` for one side. Counts are of
    interaction rows, so repeated (user, item) pairs count each time.
    """
    user_k = k if user_k is None else user_k
    item_k = k if item_k is None else item_k
    for label, value in (("k", k), ("user_k", user_k), ("item_k", item_k)):
        if int(value) != value or value < 1:
            raise DataError(f"k_core: {label}={value!r} must be a whole number >= 1")
    inter = dataset.interactions
    keep = np.ones(len(inter), dtype=bool)
    users = inter["user"].to_numpy()
    items = inter["item"].to_numpy()
    while True:
        user_counts = np.bincount(users[keep], minlength=dataset.num_users)
        item_counts = np.bincount(items[keep], minlength=dataset.num_items + 1)
        new_keep = keep & (user_counts[users] >= user_k) & (item_counts[items] >= item_k)
        if new_keep.sum() == keep.sum():
            break
        keep = new_keep
    if not keep.any():
        raise DataError(
            f"k_core(user_k={user_k}, item_k={item_k}) left no interactions in dataset "
            f"{dataset.name!r}; use a smaller k"
        )
    return _rebuild(dataset, keep)


def binarize_ratings(dataset: Dataset, threshold: float, *, strict: bool = False) -> Dataset:
    """Add a ``label`` column: 1 when ``rating >= threshold`` (``> threshold`` if ``strict``).

    The CTR protocol of RecLoRA/TALLRec turns explicit ratings into clicks: MovieLens uses
    ``rating >= 4`` (integer stars) or ``rating > 3.0`` (half stars, ``strict=True``). Users
    and items are unchanged, so the dataset is not re-indexed.
    """
    inter = dataset.interactions
    if "rating" not in inter.columns:
        raise DataError(
            f"dataset {dataset.name!r} has no rating column, so it cannot be binarized; "
            "read a file with ratings (columns={'rating': ...}) or drop binarize_ratings"
        )
    ratings = inter["rating"].to_numpy(dtype=np.float64)
    positive = ratings > threshold if strict else ratings >= threshold
    labeled = inter.copy()
    labeled["label"] = positive.astype(np.int64)
    return dataclasses.replace(dataset, interactions=labeled)


def _rebuild(dataset: Dataset, keep: np.ndarray) -> Dataset:
    """Re-index the kept rows, carrying features and extra interaction columns along."""
    inter = dataset.interactions[keep]
    raw = pd.DataFrame({
        "user": dataset.user_ids[inter["user"].to_numpy()],
        "item": dataset.item_ids[inter["item"].to_numpy()],
        "timestamp": inter["timestamp"].to_numpy(),
    })
    if "rating" in inter.columns:
        raw["rating"] = inter["rating"].to_numpy()
    item_table = None
    if len(dataset.item_features.columns):
        item_table = dataset.item_features.drop(index=PAD_ITEM)
        item_table.index = dataset.item_ids[1:].astype(str)
    user_table = None
    if dataset.user_features is not None:
        user_table = dataset.user_features.copy()
        user_table.index = dataset.user_ids.astype(str)
    rebuilt = build_dataset(
        dataset.name, raw, item_table=item_table, user_table=user_table,
        text_fields=dataset.text_fields, title_field=dataset.title_field,
    )
    if item_table is None:
        rebuilt.item_features = pd.DataFrame(index=range(rebuilt.num_items + 1))
    # build_dataset keeps row order, so extra columns (e.g. ``label``) stay aligned.
    for column in inter.columns:
        if column not in _CORE_COLUMNS:
            rebuilt.interactions[column] = inter[column].to_numpy()
    rebuilt.synthetic = dataset.synthetic
    return rebuilt
