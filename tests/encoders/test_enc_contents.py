"""item_contents: texts and image paths for items 1..num_items, with clear config errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recadapt.config import EncoderSpec
from recadapt.data.dataset import build_dataset
from recadapt.encoders import item_contents
from recadapt.errors import ConfigError


@pytest.fixture
def dataset():
    inter = pd.DataFrame({"user": ["u1", "u1", "u2", "u2"], "item": ["b", "a", "c", "a"],
                          "timestamp": [1, 2, 3, 4]})
    items = pd.DataFrame(
        {"title": ["Alpha", "Beta", None], "genre": ["drama", "", "comedy"],
         "year": [1999, np.nan, 2004], "cover": ["a.jpg", "/abs/b.jpg", None]},
        index=["a", "b", "c"],
    )
    return build_dataset("toy", inter, item_table=items, text_fields=["title", "genre"])


def test_text_joins_non_empty_fields_in_item_order(dataset) -> None:
    assert list(dataset.item_ids) == ["[PAD]", "b", "a", "c"]
    texts = item_contents(dataset, EncoderSpec(name="t", model="minilm"))
    assert texts == ["Beta", "Alpha. drama", "comedy"]  # no padding row, NaN/"" skipped


def test_fields_override_and_whole_numbers(dataset) -> None:
    spec = EncoderSpec(name="t", model="minilm", fields=["year", "title"])
    assert item_contents(dataset, spec) == ["Beta", "1999. Alpha", "2004"]


def test_template_fills_missing_values_with_empty_text(dataset) -> None:
    spec = EncoderSpec(name="t", model="minilm", template="Title: {title} ({year}), {genre}")
    assert item_contents(dataset, spec) == [
        "Title: Beta (),", "Title: Alpha (1999), drama", "Title:  (2004), comedy"]


def test_missing_field_names_the_key_and_the_columns(dataset) -> None:
    spec = EncoderSpec(name="t", model="minilm", fields=["title", "plot"])
    with pytest.raises(ConfigError, match=r"encoders\.1\.fields.*'plot'.*title.*genre"):
        item_contents(dataset, spec, position=1)
    with pytest.raises(ConfigError, match=r"encoder 't' fields"):
        item_contents(dataset, spec)
    bad = EncoderSpec(name="t", model="minilm", template="{title} {plot}")
    with pytest.raises(ConfigError, match=r"encoders\.0\.template.*'plot'"):
        item_contents(dataset, bad, position=0)
    odd = EncoderSpec(name="t", model="minilm", template="{title.upper}")
    with pytest.raises(ConfigError, match=r"encoders\.0\.template"):
        item_contents(dataset, odd, position=0)


def test_no_text_fields_at_all(dataset) -> None:
    dataset.text_fields = []
    with pytest.raises(ConfigError, match=r"encoders\.0\.fields.*no text fields"):
        item_contents(dataset, EncoderSpec(name="t", model="minilm"), position=0)


def test_image_paths_resolved_against_base_dir(dataset, tmp_path: Path) -> None:
    spec = EncoderSpec(name="img", model="efficientnet-lite0", fields=["cover"])
    paths = item_contents(dataset, spec, modality="image", base_dir=tmp_path)
    assert paths == [Path("/abs/b.jpg"), tmp_path / "a.jpg", None]
    assert item_contents(dataset, spec, modality="image")[1] == Path("a.jpg")


def test_image_needs_exactly_one_column(dataset) -> None:
    for fields in (None, ["cover", "title"]):
        spec = EncoderSpec(name="img", model="efficientnet-lite0", fields=fields)
        with pytest.raises(ConfigError, match=r"encoders\.2\.fields.*exactly one"):
            item_contents(dataset, spec, modality="image", position=2)
