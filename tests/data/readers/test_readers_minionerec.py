"""The MiniOneRec reader: a synthetic two-domain folder (window chaining, conflicts, item text,
domain choice, one-line errors, auto detection) and the real Amazon folder when present."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from recadapt.config import validate_config
from recadapt.data.readers import read_dataset
from recadapt.data.readers.dispatch import _resolve_format
from recadapt.errors import DataError

HEADER = ["user_id", "history_item_title", "item_title", "history_item_id", "item_id",
          "history_item_sid", "item_sid"]
ALPHA_ITEMS = {
    "0": {"title": "Red pen", "brand": "Acme", "categories": "",
          "description": "['<p>A <b>red</b> pen &amp; cap.</p>', "
                         "' <!-- .x {color:red} --> Fine tip']"},
    "1": {"title": "Blue pen", "brand": "", "categories": "Pens",
          "description": "['Says \"12\" long', 'oops']\"broken literal"},
    "2": {"title": "Stapler", "brand": "Acme", "categories": "", "description": ""},
    "3": {"title": 'Tape 3/4", 6 rolls', "brand": "Scotch", "categories": "", "description": ""},
    "4": {"title": "Folder", "brand": "Acme", "categories": "", "description": "[]"},
    "5": {"title": "Paper", "brand": "Acme", "categories": "", "description": "['Plain']"},
}
# (user, history, target): u1's valid row continues into two test windows (cap 3), u2's test
# row conflicts with the valid one (the test row wins), u3 is in test only.
ALPHA_VALID = [("u1", [0, 1], 2), ("u2", [3], 4)]
ALPHA_TEST = [("u1", [0, 1, 2], 3), ("u3", [5], 0), ("u1", [1, 2, 3], 4), ("u2", [0], 5)]


def write_domain(folder: Path, name: str, items: dict, valid: list, test: list) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.item.json").write_text(json.dumps(items, indent=2), encoding="utf-8")
    titles = {int(k): v["title"] for k, v in items.items()}
    for part, rows in (("valid", valid), ("test", test)):
        with open(folder / f"{part}_{name}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            for user, hist, target in rows:
                writer.writerow([user, str([titles.get(i, "?") for i in hist]),
                                 titles.get(target, "?"), str(hist), target,
                                 str(["<a_1>"] * len(hist)), "<a_2>"])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "amazon"
    write_domain(root, "Alpha", ALPHA_ITEMS, ALPHA_VALID, ALPHA_TEST)
    beta = {"7": {"title": "Drill", "brand": "B", "categories": "", "description": ""},
            "8": {"title": "Saw", "brand": "B", "categories": "", "description": ""}}
    write_domain(root, "Beta", beta, [("v1", [7], 8)], [("v1", [7, 8], 7)])
    return root


def seqs(dataset):
    return [list(dataset.item_ids[s]) for s in dataset.sequences()]


def feature(dataset, column, item):
    value = dataset.item_features[column].tolist()[list(dataset.item_ids).index(item)]
    return None if pd.isna(value) else value


def one_line_error(match: str, **kwargs) -> str:
    with pytest.raises(DataError, match=match) as info:
        read_dataset(**kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_windows_chain_into_one_sequence_per_user(folder):
    d = read_dataset(folder, format="minionerec", name="Alpha")
    assert d.name == "Alpha"
    assert list(d.user_ids) == ["u1", "u2", "u3"]
    assert seqs(d) == [["0", "1", "2", "3", "4"], ["0", "5"], ["5", "0"]]
    first = d.interactions[d.interactions["user"] == 0]
    assert first["timestamp"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]  # positions


def test_item_text_fields(folder):
    d = read_dataset(folder, format="minionerec", name="Alpha")
    assert d.text_fields == ["title", "categories", "brand", "description"]
    assert d.title_field == "title"
    assert feature(d, "title", "3") == 'Tape 3/4", 6 rolls'
    assert feature(d, "description", "0") == "A red pen & cap. Fine tip"
    assert feature(d, "description", "1") == "['Says \"12\" long', 'oops']\"broken literal"
    assert feature(d, "description", "2") is None
    assert feature(d, "description", "4") is None  # an empty list
    assert feature(d, "categories", "1") == "Pens"
    assert feature(d, "categories", "0") is None
    assert feature(d, "brand", "1") is None
    assert feature(d, "brand", "0") == "Acme"


def test_auto_detection_and_domain_choice(folder, tmp_path):
    assert _resolve_format(folder, "auto") == "minionerec"
    d = read_dataset(folder, name="Beta")
    assert seqs(d) == [["7", "8", "7"]]
    message = one_line_error("several MiniOneRec domains", source=folder)
    assert "set data.name to one of Alpha, Beta" in message
    message = one_line_error("no MiniOneRec domain 'Gamma'", source=folder, name="Gamma")
    assert "Alpha, Beta" in message
    single = tmp_path / "single"
    write_domain(single, "Beta", {"7": {"title": "Drill"}, "8": {"title": "Saw"}},
                 [], [("v1", [7], 8)])
    (single / "valid_Beta.csv").unlink()  # valid is optional, test is not
    d = read_dataset(single)
    assert d.name == "Beta" and seqs(d) == [["7", "8"]]
    (single / "test_Beta.csv").unlink()
    one_line_error("cannot detect the data format", source=single)
    one_line_error("test_Beta.csv: no such file", source=single, format="minionerec",
                   name="Beta")
    one_line_error("reads a folder", source=single / "Beta.item.json", format="minionerec")


def test_config_accepts_the_format(folder):
    config = validate_config({"data": {"source": str(folder), "format": "minionerec",
                                       "name": "Alpha"}})
    assert config.data.format == "minionerec"


def test_missing_item_names_file_and_line(folder):
    write_domain(folder, "Alpha", ALPHA_ITEMS, ALPHA_VALID,
                 [*ALPHA_TEST[:2], ("u4", [1, 9], 2)])
    message = one_line_error("item '9' is not in Alpha.item.json", source=folder, name="Alpha")
    assert message.startswith(f"{folder / 'test_Alpha.csv'}, line 4:")


def test_bad_history_names_file_and_line(folder):
    path = folder / "valid_Alpha.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace(",[3],4,", ',"[3, oops",4,')
    assert "[3, oops" in lines[2]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    message = one_line_error("is not a list of item ids", source=folder, name="Alpha")
    assert message.startswith(f"{path}, line 3:")
    (folder / "Alpha.item.json").write_text('{"0": ', encoding="utf-8")
    one_line_error("Alpha.item.json, line 1: not valid JSON", source=folder, name="Alpha")


def test_real_folder_both_domains(shared_data):
    root = shared_data("amazon_industrial_office")
    for domain in ("Industrial_and_Scientific", "Office_Products"):
        d = read_dataset(root, name=domain)  # format auto
        num_items = len(json.loads((root / f"{domain}.item.json").read_text("utf-8")))
        users, items = len(d.user_ids), len(d.item_ids) - 1
        print(f"{domain}: {users} users, {items} items, {len(d.interactions)} interactions")
        assert 3000 <= users <= 4000 and 0.9 * num_items <= items <= num_items
        titles = d.item_features["title"].iloc[1:]
        assert titles.notna().all() and (titles.astype(str).str.strip() != "").all()
        assert d.item_features["description"].iloc[1:].notna().mean() > 0.8
        sequences = dict(zip(d.user_ids, seqs(d), strict=True))
        assert min(map(len, sequences.values())) >= 2
        # leave-one-out's test target is the target of each user's last test row
        test = pd.read_csv(root / f"test_{domain}.csv", dtype=str)
        last = test.groupby("user_id")["item_id"].last()
        assert all(sequences[user][-1] == item for user, item in last.items())
