"""data.format: alpaca: Yes/No instruction records as CTR data, their split, one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from recadapt.config import validate_config
from recadapt.data.readers import detect_format, read_dataset
from recadapt.data.readers.alpaca import alpaca_label
from recadapt.errors import ConfigError, DataError
from recadapt.train.runs import prepare_data

RECORD = {"instruction": "Will the user like it?", "input": "Target: a film", "output": "Yes."}


def write(path: Path, records) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def ctr_config(source, **ctr):
    return validate_config({"data": {"source": str(source), "task": "ctr", "ctr": ctr},
                            "model": {"name": "like-rate"}})


def test_folder_reads_every_part_as_records(alpaca_folder):
    dataset = read_dataset(alpaca_folder)
    assert dataset.records and dataset.name == "alpaca"
    inter = dataset.interactions
    assert list(inter["part"].value_counts().sort_index().items()) == [
        ("test", 12), ("train", 40), ("valid", 12)]
    assert dataset.num_users == dataset.num_items == 64  # one user and one item per record
    assert set(inter["label"]) == {0.0, 1.0}
    first = json.loads((alpaca_folder / "train.json").read_text())[0]
    row = dataset.item_features.iloc[1]
    assert (row["instruction"], row["input"]) == (first["instruction"], first["input"])
    assert inter["label"].iloc[0] == (1.0 if first["output"] == "Yes." else 0.0)
    assert dataset.item_ids[1] == "train:0" and dataset.title_field == "input"


def test_folder_parts_are_the_split(alpaca_folder):
    split = prepare_data(ctr_config(alpaca_folder)).split
    assert (len(split.train), len(split.valid), len(split.test)) == (40, 12, 12)
    ids = split.dataset.item_ids
    for name in ("train", "valid", "test"):
        part = getattr(split, name)
        assert all(str(ids[i]).startswith(f"{name}:") for i in part.items)
        assert (part.history == 0).all()  # a record has no behaviours before it
    expected = [1.0 if r["output"] == "Yes." else 0.0
                for r in json.loads((alpaca_folder / "test.json").read_text())]
    assert split.test.labels.tolist() == expected  # file order kept


def test_one_file_is_split_at_random_by_the_ratios_with_the_seed(alpaca_folder):
    source = alpaca_folder / "train.json"
    split = prepare_data(ctr_config(source)).split
    assert (len(split.train), len(split.valid), len(split.test)) == (32, 4, 4)  # 8:1:1 of 40
    parts = [split.train.items, split.valid.items, split.test.items]
    assert sorted(np.concatenate(parts).tolist()) == list(range(1, 41))  # disjoint, complete
    again = prepare_data(ctr_config(source)).split
    assert again.test.items.tolist() == split.test.items.tolist()  # deterministic
    other = prepare_data(ctr_config(source, seed=1)).split
    assert other.test.items.tolist() != split.test.items.tolist()
    assert split.test.items.tolist() != [37, 38, 39, 40]  # not the file's tail: no time order
    halves = prepare_data(ctr_config(source, split=[0.5, 0.25, 0.25])).split
    assert (len(halves.train), len(halves.valid), len(halves.test)) == (20, 10, 10)


def test_jsonl_answers_and_detection(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    answers = ["Yes.", "no", "YES", " No. ", "yes", "No"]
    lines = [json.dumps({**RECORD, "output": a, "extra": 1}) for a in answers]
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    write(folder / "valid.json", [RECORD, {**RECORD, "output": "No"}])
    write(folder / "test.json", [RECORD, {**RECORD, "output": "no."}])
    assert detect_format(folder) == "alpaca" and detect_format(folder / "test.json") == "alpaca"
    dataset = read_dataset(folder)
    labels = dataset.interactions["label"].tolist()
    assert labels[:6] == [1, 0, 1, 0, 1, 0]
    assert [alpaca_label(a) for a in ("Yes", "yes.", "NO.", "Yes!", "Yes, sure", "Y")] == [
        1, 1, 0, None, None, None]


@pytest.mark.parametrize(("content", "message"), [
    (json.dumps([RECORD, {"instruction": "a", "output": "Yes"}]),
     r"train\.json: record index 1 has no 'input' key"),
    (json.dumps([RECORD, RECORD, {**RECORD, "output": "Maybe."}]),
     r"train\.json: record index 2: output 'Maybe\.' is neither 'Yes' nor 'No'"),
    (json.dumps(RECORD), r"train\.json: an Alpaca file is a JSON list of records, this one "
                         "holds a dict"),
    ('[{"instruction": "a",\n "input": }]', r"train\.json, line 2: not valid JSON"),
    (json.dumps([RECORD, ["x"]]), r"train\.json: record index 1 is a list"),
    (json.dumps([{**RECORD, "output": 1}]), r"record index 0: 'output' must be a string"),
    ("[]", r"train\.json: no records"),
])
def test_bad_files_are_one_line_naming_file_and_record(tmp_path, content, message):
    path = tmp_path / "train.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        read_dataset(path)
    assert "\n" not in str(info.value)


def test_bad_jsonl_line_names_the_record_and_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(RECORD) + "\n\n{oops\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.jsonl: record index 1 \(line 3\): not valid"):
        read_dataset(path, format="alpaca")


def test_folder_needs_its_three_parts(tmp_path, alpaca_folder):
    folder = tmp_path / "data"
    shutil.copytree(alpaca_folder, folder)
    (folder / "valid.json").unlink()
    with pytest.raises(DataError, match=r"no valid\.json \(or valid\.jsonl\)"):
        read_dataset(folder)
    write(folder / "valid.json", [RECORD])
    shutil.copy(folder / "test.json", folder / "test.jsonl")
    with pytest.raises(DataError, match=r"both test\.json and test\.jsonl"):
        read_dataset(folder)


def test_records_are_ctr_data_only(alpaca_folder):
    with pytest.raises(ConfigError, match=r"set data\.task=ctr"):
        validate_config({"data": {"source": str(alpaca_folder), "format": "alpaca"}})
    config = validate_config({"data": {"source": str(alpaca_folder)}})  # format auto
    with pytest.raises(ConfigError, match=r"holds Alpaca records.*data\.task=ctr"):
        prepare_data(config)
    config = validate_config({"data": {"source": str(alpaca_folder), "task": "ctr",
                                       "k_core": 2}})
    with pytest.raises(ConfigError, match=r"data\.k_core"):
        prepare_data(config)
