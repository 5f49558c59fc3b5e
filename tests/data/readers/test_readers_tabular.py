"""Single tables: CSV (quoted, with an item table), TSV (unquoted), JSON Lines and Parquet,
and their bad rows."""

from __future__ import annotations

import pandas as pd
import pytest

from recadapt.data.readers import read_dataset
from recadapt.errors import DataError

CSV = (
    "uid,iid,ts,score\n"
    "7,x,3,4.5\n"
    "8,y,1,2\n"
    "7,y,2,1\n"
)
ITEMS_CSV = 'iid,title,brand\nx,"Cable, 2m",Acme\ny,Plug,\n'


def seqs(dataset):
    return [list(dataset.item_ids[s]) for s in dataset.sequences()]


def test_csv_with_columns_and_item_table(write):
    path = write("inter.csv", CSV)
    items = write("items.csv", ITEMS_CSV)
    d = read_dataset(str(path), columns={"user": "uid", "item": "iid", "timestamp": "ts",
                                         "rating": "score"}, item_path=str(items))
    assert d.name == "inter"
    assert list(d.user_ids) == ["7", "8"]
    assert seqs(d) == [["y", "x"], ["y"]]
    assert d.interactions["rating"].tolist() == [4.5, 2.0, 1.0]
    assert d.text_fields == ["title", "brand"] and d.title_field == "title"
    assert d.item_title(d.item_index("x")) == "Cable, 2m"
    assert pd.isna(d.item_features["brand"].iloc[d.item_index("y")])


def test_csv_bad_rows(write):
    cols = {"user": "uid", "item": "iid", "timestamp": "ts", "rating": "score"}
    path = write("inter.csv", CSV.replace("8,y,1,2", "8,y,1,2,9"))
    with pytest.raises(DataError, match=r"inter.csv, line 3: 5 ','-separated fields but the "
                                        r"header has 4 \(uid, iid, ts, score\)"):
        read_dataset(str(path), columns=cols)
    write("inter.csv", CSV.replace("7,y,2,1", "7,y,yesterday,1"))
    with pytest.raises(DataError, match=r"inter.csv, line 4: 'ts' value 'yesterday' is not a"):
        read_dataset(str(path), columns=cols)
    with pytest.raises(DataError, match=r"inter.csv: no column 'user_id' \(the user column\); "
                                        r"columns found: uid, iid, ts, score"):
        read_dataset(str(path))
    write("inter.csv", CSV + '9,"z,1,1\n')
    with pytest.raises(DataError, match=r"inter.csv, line \d+: malformed row"):
        read_dataset(str(path), columns=cols)


def test_item_table_missing_file(write):
    path = write("inter.csv", "user_id,item_id\n1,2\n")
    with pytest.raises(DataError, match=r"items.csv: no such file; expected an item table"):
        read_dataset(str(path), item_path=str(path.parent / "items.csv"))


def test_tsv(write):
    path = write("log.tsv", "user_id\titem_id\trating\nA\t\"q\"\t3\nB\tr\t4\n")
    d = read_dataset(str(path))
    assert list(d.item_ids) == ["[PAD]", '"q"', "r"]  # TSV has no quoting
    assert d.interactions["rating"].tolist() == [3.0, 4.0]


def test_jsonl(write):
    path = write("log.jsonl", '{"user_id": 1, "item_id": "a", "timestamp": 5}\n\n'
                              '{"user_id": 2, "item_id": "b", "timestamp": 1, "extra": true}\n')
    d = read_dataset(str(path))
    assert list(d.user_ids) == ["1", "2"]
    assert d.interactions["timestamp"].tolist() == [5.0, 1.0]
    write("log.jsonl", '{"user_id": 1, "item_id": "a"}\n{"user_id": 2, item_id: 1}\n')
    with pytest.raises(DataError, match=r"log.jsonl, line 2: not valid JSON"):
        read_dataset(str(path))
    write("log.jsonl", '{"user_id": 1, "item_id": "a"}\n[1]\n')
    with pytest.raises(DataError, match=r"log.jsonl, line 2: a JSON list, not an object"):
        read_dataset(str(path))
    write("log.jsonl", '{"user_id": 1, "item_id": "a"}\n\n{"user_id": 2}\n')
    with pytest.raises(DataError, match=r"log.jsonl, line 3: empty 'item_id'"):
        read_dataset(str(path))
    write("log.jsonl", "\n")
    with pytest.raises(DataError, match=r"log.jsonl: the file is empty"):
        read_dataset(str(path))


def test_parquet(tmp_path):
    inter = pd.DataFrame({"user_id": [1, 1, 2], "item_id": ["a", "b", "a"],
                          "rating": [1.0, 2.0, 3.0]})
    items = pd.DataFrame({"item_id": ["a", "b"], "name": ["Apple", "Banana"], "n": [1, 2]})
    inter.to_parquet(tmp_path / "i.parquet")
    items.to_parquet(tmp_path / "items.parquet")
    d = read_dataset(str(tmp_path / "i.parquet"), item_path=str(tmp_path / "items.parquet"))
    assert seqs(d) == [["a", "b"], ["a"]]
    assert d.text_fields == ["name"]  # the integer column is a feature, not text
    assert d.item_features["n"].tolist()[1:] == [1, 2]
    assert d.item_title(2) == "Banana"
    inter.assign(rating=["1", "x", "3"]).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"bad.parquet, row 2: 'rating' value 'x' is not a nu"):
        read_dataset(str(tmp_path / "bad.parquet"))
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"junk.parquet: cannot read it as Parquet"):
        read_dataset(str(tmp_path / "junk.parquet"))
