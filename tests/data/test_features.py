"""Feature tables: dataset columns become ID, categorical, bucketed and multi-valued fields as
documented in ``data/features.py``."""

from __future__ import annotations

import pandas as pd
import pytest

from recadapt.data.features import build_field_tables, category_field, encode_column
from recadapt.errors import ConfigError


def test_columns_become_fields_as_documented(feature_dataset):
    users, items = build_field_tables(feature_dataset(), num_buckets=3)
    assert users.names == ["user_id", "gender", "age"]  # ID-like 'code' and 'empty' skipped
    gender = users.fields[1]
    assert gender.kind == "categorical" and gender.vocabulary == ["F", "M"]
    assert gender.codes[:4, 0].tolist() == [1, 2, 2, 0]  # missing → 0
    age = users.fields[2]
    assert age.kind == "bucketed" and age.size == 4  # 8 distinct values > 3 buckets
    # sorted ages 18 22 25 | 29 33 | 47 51 60 (edges: the 1/3 and 2/3 quantiles 26.3, 42.3)
    assert age.codes[[0, 5, 1, 6, 2, 3, 4, 7], 0].tolist() == [1, 1, 1, 2, 2, 3, 3, 3]
    assert users.fields[0].codes[:, 0].tolist() == list(range(1, 9))  # user + 1
    assert items.names == ["item_id", "genres", "year"]  # unique title skipped
    genres = items.fields[1]
    assert genres.kind == "multi" and genres.vocabulary == ["Action", "Comedy", "Drama"]
    assert genres.codes[:4].tolist() == [[0, 0], [3, 2], [1, 0], [0, 0]]  # row 0 = padding
    assert items.first_codes("genres")[:4].tolist() == [0, 3, 1, 0]  # first listed genre
    year = items.fields[2]
    assert year.kind == "categorical" and year.vocabulary == ["1990", "1995", "1999"]
    assert year.codes[0, 0] == 0
    assert category_field(items) == "genres"
    assert category_field(items, "year") == "year"
    with pytest.raises(ConfigError, match="category_column"):
        category_field(items, "item_id")


def test_numeric_detection_tolerates_stray_tokens_and_named_columns_are_kept(feature_dataset):
    values = pd.Series([str(1900 + i) for i in range(39)] + ["unkonwn"])
    spec = encode_column("year", values, num_buckets=4)
    assert spec.kind == "bucketed" and spec.codes[-1, 0] == 0 and spec.size == 5
    spaced = encode_column("class", pd.Series(["Action Comedy", "Drama", "Action", "Drama"]),
                           max_unique_ratio=None)
    assert spaced.kind == "multi" and spaced.vocabulary == ["Action", "Comedy", "Drama"]
    city = encode_column("city", pd.Series(["New York", "Paris", "New York", "Paris"]),
                         max_unique_ratio=None)
    assert city.kind == "categorical" and city.vocabulary == ["New York", "Paris"]
    users, _ = build_field_tables(feature_dataset(), columns=["code"])
    assert users.names == ["user_id", "code"]
    with pytest.raises(ConfigError, match="feature_columns"):
        build_field_tables(feature_dataset(), columns=["nope"])
