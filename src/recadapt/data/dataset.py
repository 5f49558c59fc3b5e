"""The one in-memory dataset type every reader produces and every model consumes.

Ids are re-indexed once, here, so the rest of the library never sees raw ids:
users are ``0..num_users-1`` and items are ``1..num_items`` with **item 0 reserved for padding**
(sequence models left-pad histories with 0). Raw ids are kept for output (``recommend``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recadapt.errors import DataError

PAD_ITEM = 0


@dataclass
class Dataset:
    """Interactions plus optional item content and user features.

    Attributes:
        name: a short name used in reports.
        interactions: columns ``user`` (int), ``item`` (int >= 1), ``timestamp`` (float) and
            optionally ``rating`` (float); one row per interaction.
        user_ids: raw id (str) of each user index.
        item_ids: raw id (str) of each item index; ``item_ids[0]`` is the padding token.
        item_features: one row per item index (index ``0..num_items``, row 0 empty); text fields
            are string columns, media fields (later issues) hold paths.
        text_fields: names of the text columns in ``item_features``, in reading order.
        user_features: one row per user index, or ``None``.
        title_field: the column used as a human-readable item name, or ``None``.
        synthetic: ``True`` when the data was generated, so every report can say so.
        records: ``True`` for instruction records (``data.format: alpaca``): each interaction is
            one record with its own user and item, ``interactions`` also has ``label`` (0/1) and
            ``part`` (``train``/``valid``/``test``, or empty: to be split), and the item columns
            ``instruction`` and ``input`` are the record's prompt.
    """

    name: str
    interactions: pd.DataFrame
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_features: pd.DataFrame = field(default_factory=pd.DataFrame)
    text_fields: list[str] = field(default_factory=list)
    user_features: pd.DataFrame | None = None
    title_field: str | None = None
    synthetic: bool = False
    records: bool = False

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        """Number of real items (padding excluded); valid item indices are 1..num_items."""
        return len(self.item_ids) - 1

    def sequences(self) -> list[np.ndarray]:
        """Each user's items ordered by time (ties keep file order)."""
        inter = self.interactions.sort_values(["user", "timestamp"], kind="stable")
        items = inter["item"].to_numpy(dtype=np.int64)
        counts = np.bincount(inter["user"].to_numpy(), minlength=self.num_users)
        return np.split(items, np.cumsum(counts)[:-1])

    def user_index(self, raw_id: str | int) -> int:
        """Index of a raw user id; a clear error when unknown."""
        lookup = self._lookup("_user_lookup", self.user_ids)
        key = str(raw_id)
        if key not in lookup:
            raise DataError(f"unknown user id {raw_id!r}: it is not in dataset {self.name!r}")
        return lookup[key]

    def item_index(self, raw_id: str | int) -> int:
        """Index of a raw item id; a clear error when unknown."""
        lookup = self._lookup("_item_lookup", self.item_ids)
        key = str(raw_id)
        if key not in lookup or lookup[key] == PAD_ITEM:
            raise DataError(f"unknown item id {raw_id!r}: it is not in dataset {self.name!r}")
        return lookup[key]

    def item_title(self, index: int) -> str | None:
        """Human-readable name of an item index, from ``title_field`` when there is one."""
        if self.title_field is None or self.title_field not in self.item_features:
            return None
        value = self.item_features[self.title_field].iloc[index]
        return None if pd.isna(value) else str(value)

    def _lookup(self, attr: str, ids: np.ndarray) -> dict[str, int]:
        cached = self.__dict__.get(attr)
        if cached is None:
            cached = {str(raw): i for i, raw in enumerate(ids)}
            self.__dict__[attr] = cached
        return cached


def build_dataset(
    name: str,
    interactions: pd.DataFrame,
    item_table: pd.DataFrame | None = None,
    user_table: pd.DataFrame | None = None,
    text_fields: list[str] | None = None,
    title_field: str | None = None,
    source: str = "",
) -> Dataset:
    """Re-index raw interactions (columns ``user, item, timestamp[, rating]``) into a Dataset.

    ``item_table`` / ``user_table`` are indexed by raw id (as str); items or users that never
    interact are dropped, because no model can learn or be evaluated on them.
    """
    where = f" in {source}" if source else ""
    if interactions.empty:
        raise DataError(f"no interactions{where}: the dataset is empty")
    inter = interactions.copy()
    inter["user"] = inter["user"].astype(str)
    inter["item"] = inter["item"].astype(str)
    if "timestamp" not in inter:
        inter["timestamp"] = np.arange(len(inter), dtype=np.float64)
    inter["timestamp"] = inter["timestamp"].astype(np.float64)
    # Index order = order of first appearance, so ids are stable for a given file.
    user_ids = pd.unique(inter["user"])
    item_ids = pd.unique(inter["item"])
    user_codes = pd.Index(user_ids).get_indexer(inter["user"])
    item_codes = pd.Index(item_ids).get_indexer(inter["item"]) + 1
    columns = {"user": user_codes.astype(np.int64), "item": item_codes.astype(np.int64),
               "timestamp": inter["timestamp"].to_numpy()}
    if "rating" in inter:
        columns["rating"] = inter["rating"].astype(np.float64).to_numpy()
    if "label" in inter:  # instruction records carry their own label and part
        columns["label"] = inter["label"].astype(np.float64).to_numpy()
    if "part" in inter:
        columns["part"] = inter["part"].astype(str).to_numpy()
    clean = pd.DataFrame(columns)
    all_item_ids = np.concatenate([np.array(["[PAD]"], dtype=object), item_ids.astype(object)])

    if item_table is not None and not item_table.empty:
        table = item_table.copy()
        table.index = table.index.astype(str)
        table = table[~table.index.duplicated(keep="first")]
        item_features = table.reindex(all_item_ids).reset_index(drop=True)
    else:
        item_features = pd.DataFrame(index=range(len(all_item_ids)))
    user_features = None
    if user_table is not None and not user_table.empty:
        table = user_table.copy()
        table.index = table.index.astype(str)
        table = table[~table.index.duplicated(keep="first")]
        user_features = table.reindex(user_ids.astype(object)).reset_index(drop=True)
    return Dataset(
        name=name,
        interactions=clean,
        user_ids=user_ids.astype(object),
        item_ids=all_item_ids,
        item_features=item_features,
        text_fields=list(text_fields or []),
        user_features=user_features,
        title_field=title_field,
    )
