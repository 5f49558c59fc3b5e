"""Feature tables: a Dataset's user and item columns as integer codes, one field per column,
for the conventional CTR models (their embeddings are in :mod:`recadapt.nn.ctr`).

How dataset columns become fields (:func:`build_field_tables`). Each side (users: rows =
user indices; items: rows = item indices, row 0 = padding) gets an ID field first (``user_id``
codes ``user + 1``, ``item_id`` codes the item index) and then one field per usable column of
``Dataset.user_features`` / ``item_features``, in column order. Every field's code 0 means
*missing* (padding row, NaN, empty string) and embeds to a zero vector (``padding_idx=0``).

* **Numeric** columns (numeric dtype, or strings of which at least 95% parse as numbers, the
  rest counting as missing: ML-100K's ``age``, ``release_year`` (with "unkonwn" and "V") and
  ``zip_code`` (a few Canadian codes) are tokens) with at most ``num_buckets`` distinct values
  are categorical by value; with more they are cut into ``num_buckets`` quantile buckets
  (edges from the column's non-missing values; tied quantiles merged): zip codes become ten
  coarse regions.
* **Multi-valued** columns: list cells, or strings split on ``|`` when some value holds one
  (dslabs ``genres``), else on whitespace (ML-100K ``class``); a column is multi-valued only
  when splitting does not grow the vocabulary (so "New York" stays one city). The field is the mean
  of its tokens' embeddings. A mean above ``MAX_MEAN_TOKENS`` tokens per row is free text
  (descriptions) and is skipped: the LLM side reads text, not the CRM.
* Everything else is **categorical** by its stripped string value (codes in sorted order, so
  a dataset always gives the same codes and a reloaded run the same table).
* A column whose vocabulary exceeds ``max_unique_ratio`` × its non-missing rows is ID-like
  or free text (titles, image paths) and is skipped, unless named in ``columns``; the ID
  fields already identify each row.

The codes are computed once from the dataset (static attributes, no labels), so a dataset
always gives the same tables and a reloaded run rebuilds them identically.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np
import pandas as pd

from recadapt.data.dataset import Dataset
from recadapt.errors import ConfigError

#: the code of a missing value (padding row, NaN, empty string) in every field
MISSING = 0
#: multi-valued columns averaging more tokens per row than this are free text, not a field
MAX_MEAN_TOKENS = 5.0
#: share of a column's present values that must parse as numbers for it to be numeric
NUMERIC_SHARE = 0.95
#: column names taken as the item category (SIM's hard search) when none is configured
CATEGORY_NAMES = re.compile(r"genre|categor|class|^cate", re.IGNORECASE)

FieldKind = Literal["id", "categorical", "bucketed", "multi"]


@dataclass
class FieldSpec:
    """One field: its codes for every row (``[rows, T]``, ``T = 1`` unless multi-valued; 0 =
    missing) and what each code means (category names, or bucket edges)."""

    name: str
    kind: FieldKind
    codes: np.ndarray
    vocabulary: list[str]

    @property
    def size(self) -> int:
        """Embedding rows: the codes 1..len(vocabulary) plus 0 = missing."""
        return len(self.vocabulary) + 1


@dataclass
class FieldTable:
    """The fields of one side (users or items), ID field first."""

    fields: list[FieldSpec]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def first_codes(self, name: str) -> np.ndarray:
        """``[rows]`` each row's first code of field ``name`` (first listed genre for a
        multi-valued field; 0 when missing)."""
        return self.fields[self.names.index(name)].codes[:, 0].copy()


def _missing(value: object) -> bool:
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return len(value) == 0
    return bool(pd.isna(value)) or not str(value).strip()


def _as_numbers(values: pd.Series) -> np.ndarray | None:
    """Float values (NaN = missing) if at least ``NUMERIC_SHARE`` of the present values are
    numbers (the rest become missing: ML-100K's release years include "unkonwn" and "V"),
    else ``None``."""
    if pd.api.types.is_bool_dtype(values):
        return None
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
    present = np.array([not _missing(v) for v in values])
    cells = values[present]
    if cells.empty or any(isinstance(v, (list, tuple, set, np.ndarray)) for v in cells):
        return None
    parsed = pd.to_numeric(cells.astype(str).str.strip(), errors="coerce")
    if parsed.notna().mean() < NUMERIC_SHARE:
        return None
    out = np.full(len(values), np.nan)
    out[np.flatnonzero(present)] = parsed.to_numpy(np.float64, na_value=np.nan)
    return out


def _numeric_field(name: str, numbers: np.ndarray, num_buckets: int) -> FieldSpec:
    present = numbers[~np.isnan(numbers)]
    distinct = np.unique(present)
    codes = np.zeros(len(numbers), np.int64)
    ok = ~np.isnan(numbers)
    if len(distinct) <= num_buckets:
        codes[ok] = np.searchsorted(distinct, numbers[ok]) + 1
        return FieldSpec(name, "categorical", codes[:, None], [f"{v:g}" for v in distinct])
    edges = np.unique(np.quantile(present, np.linspace(0, 1, num_buckets + 1)[1:-1]))
    codes[ok] = np.searchsorted(edges, numbers[ok], side="right") + 1
    labels = [f"<{edges[0]:g}", *(f"[{a:g},{b:g})" for a, b in pairwise(edges)),
              f">={edges[-1]:g}"]
    return FieldSpec(name, "bucketed", codes[:, None], labels)


def _tokens(value: object, sep: str | None) -> list[str]:
    if _missing(value):
        return []
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return [str(v).strip() for v in value if not _missing(v)]
    text = str(value).strip()
    if sep is None:
        return [text]
    parts = text.split() if sep == " " else text.split(sep)
    return [p.strip() for p in parts if p.strip()]


def _text_field(name: str, values: pd.Series) -> tuple[FieldSpec, int] | None:
    """Categorical or multi-valued field of a non-numeric column, and its vocabulary size."""
    cells = list(values)
    whole = [_tokens(v, None) if not isinstance(v, (list, tuple, set, np.ndarray))
             else ["|".join(_tokens(v, None))] for v in cells]
    listed = any(isinstance(v, (list, tuple, set, np.ndarray)) for v in cells)
    strings = [str(v) for v in cells if not _missing(v)]
    sep = "|" if any("|" in s for s in strings) else " " if any(
        len(s.split()) > 1 for s in strings) else None
    split = [_tokens(v, sep) for v in cells] if (sep or listed) else whole
    whole_vocab = {t for row in whole for t in row}
    split_vocab = {t for row in split for t in row}
    multi = (listed or sep is not None) and max(map(len, split), default=0) > 1 and (
        len(split_vocab) <= len(whole_vocab))
    rows = split if multi else whole
    if multi and np.mean([len(r) for r in rows if r] or [0]) > MAX_MEAN_TOKENS:
        return None
    vocabulary = sorted({t for row in rows for t in row})
    if not vocabulary:
        return None
    index = {t: i + 1 for i, t in enumerate(vocabulary)}
    width = max(1, max(map(len, rows)))
    codes = np.zeros((len(rows), width), np.int64)
    for r, row in enumerate(rows):
        codes[r, :len(row)] = [index[t] for t in row]
    return FieldSpec(name, "multi" if multi else "categorical", codes, vocabulary), len(
        vocabulary)


def encode_column(name: str, values: pd.Series, *, num_buckets: int = 10,
                  max_unique_ratio: float | None = 0.5) -> FieldSpec | None:
    """One column as a field (module docstring), or ``None`` when it is unusable: empty, or
    ID-like / free text (vocabulary > ``max_unique_ratio`` × present rows; ``None`` = keep)."""
    values = values.reset_index(drop=True)
    present = sum(not _missing(v) for v in values)
    if present == 0:
        return None
    numbers = _as_numbers(values)
    if numbers is not None:
        return _numeric_field(name, numbers, num_buckets)
    encoded = _text_field(name, values)
    if encoded is None:
        return None
    spec, vocab_size = encoded
    if max_unique_ratio is not None and vocab_size > max_unique_ratio * present:
        return None
    return spec


def _side_table(frame: pd.DataFrame | None, id_name: str, id_codes: np.ndarray,
                first_row: int, columns: Sequence[str] | None, num_buckets: int,
                max_unique_ratio: float) -> FieldTable:
    """ID field + one field per usable column; rows before ``first_row`` (item padding) get
    code 0 everywhere and do not enter vocabularies or quantiles."""
    rows = len(id_codes)
    id_field = FieldSpec(id_name, "id", id_codes[:, None].astype(np.int64),
                         [str(i) for i in range(1, int(id_codes.max()) + 1)])
    fields = [id_field]
    if frame is None:
        return FieldTable(fields)
    for column in frame.columns:
        if columns is not None and column not in columns:
            continue
        spec = encode_column(f"{column}", frame[column].iloc[first_row:rows],
                             num_buckets=num_buckets,
                             max_unique_ratio=None if columns is not None else max_unique_ratio)
        if spec is None:
            continue
        padded = np.zeros((rows, spec.codes.shape[1]), np.int64)
        padded[first_row:] = spec.codes
        spec.codes = padded
        fields.append(spec)
    return FieldTable(fields)


def build_field_tables(dataset: Dataset, *, columns: Sequence[str] | None = None,
                       num_buckets: int = 10, max_unique_ratio: float = 0.5
                       ) -> tuple[FieldTable, FieldTable]:
    """``(user fields, item fields)`` of ``dataset`` (module docstring). ``columns`` names the
    feature columns to use (either side; no uniqueness filter); ``None`` = every usable one."""
    if columns is not None:
        known = set(dataset.item_features.columns) | set(
            () if dataset.user_features is None else dataset.user_features.columns)
        unknown = [c for c in columns if c not in known]
        if unknown:
            raise ConfigError(f"model.feature_columns: {unknown[0]!r} is not a user or item "
                              f"column of dataset {dataset.name!r} (columns: "
                              f"{', '.join(sorted(map(str, known))) or 'none'})")
    users = _side_table(dataset.user_features, "user_id",
                        np.arange(1, dataset.num_users + 1), 0, columns, num_buckets,
                        max_unique_ratio)
    item_frame = dataset.item_features if len(dataset.item_features.columns) else None
    items = _side_table(item_frame, "item_id", np.arange(dataset.num_items + 1), 1, columns,
                        num_buckets, max_unique_ratio)
    return users, items


def category_field(items: FieldTable, name: str | None = None) -> str | None:
    """The item field used as the category (SIM hard search): ``name`` if given, else the
    first item feature field whose name looks like a category (genre, class, category),
    else the first categorical/multi-valued item feature field; ``None`` if there is none."""
    features = [f for f in items.fields if f.kind != "id"]
    if name is not None:
        if name not in items.names or items.fields[items.names.index(name)].kind == "id":
            raise ConfigError(f"model.category_column: {name!r} is not an item feature field "
                              f"(fields: {', '.join(f.name for f in features) or 'none'})")
        return name
    named = [f for f in features if CATEGORY_NAMES.search(f.name)]
    if named:
        return named[0].name
    kinds = [f for f in features if f.kind in ("categorical", "multi")]
    return kinds[0].name if kinds else None
