"""describe() and format_description() on a hand-checked tiny dataset."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from recadapt.data.dataset import build_dataset
from recadapt.data.inspect import describe, format_description


@pytest.fixture
def tiny():
    inter = pd.DataFrame({"user": ["u1", "u1", "u1", "u2", "u2"],
                          "item": ["i1", "i2", "i3", "i2", "i3"],
                          "timestamp": [10, 20, 30, 15, 5],
                          "rating": [5.0, 3.0, 2.0, 4.0, 1.0]})
    items = pd.DataFrame({"title": ["Alpha", "Beta", "Gamma"], "year": [None, "2001", "1990"]},
                         index=["i1", "i2", "i3"])
    return build_dataset("tiny", inter, item_table=items, text_fields=["title", "year"],
                         title_field="title")


def test_describe_values(tiny):
    d = describe(tiny)
    assert (d["users"], d["items"], d["interactions"]) == (2, 3, 5)
    assert d["sparsity"] == pytest.approx(1 - 5 / 6)
    assert d["sequence_length"] == {"min": 2, "mean": 2.5, "median": 2.5, "max": 3}
    assert d["rating"] == {"min": 1.0, "max": 5.0, "mean": 3.0}
    assert d["timestamp"] == {"min": 5.0, "max": 30.0}
    assert d["text_fields"] == {"title": "Alpha", "year": "2001"}  # first non-empty value
    json.dumps(d)  # plain Python values, ready for --json output


def test_describe_without_ratings_or_text():
    d = describe(build_dataset("bare", pd.DataFrame({"user": [1, 2], "item": [1, 1]})))
    assert d["rating"] is None and d["text_fields"] == {}
    assert d["sparsity"] == 0.0


def test_format_description(tiny):
    text = format_description(describe(tiny))
    lines = text.splitlines()
    assert lines[0] == "dataset       tiny"
    assert "interactions  5" in lines
    assert "sparsity      16.6667%" in lines
    assert "per user      min 2, mean 2.5, median 2.5, max 3" in lines
    assert "ratings       yes: 1 to 5, mean 3.00" in lines
    assert "timestamps    5 to 30" in lines
    assert "text fields   title (title), year" in lines
    assert "  title  e.g. 'Alpha'" in lines
    bare = format_description(describe(build_dataset("b", pd.DataFrame(
        {"user": [1], "item": [1]}))))
    assert "ratings       no" in bare and "text fields   none" in bare
