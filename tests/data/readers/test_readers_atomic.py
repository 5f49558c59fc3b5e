"""RecBole atomic files on tiny hand-written files, and through them the strict parsing every
delimited reader shares (``readers/common.py``: field counts, numbers, ids, encoding), and
real ML-100K."""

from __future__ import annotations

import pandas as pd
import pytest

from recadapt.data.readers import read_dataset
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


def seqs(dataset):
    return [list(dataset.item_ids[s]) for s in dataset.sequences()]


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


def test_recbole_header_needs_types(write):
    path = write("t/t.inter", "user_id\titem_id\nu\ti\n")
    with pytest.raises(DataError, match=r"t.inter, line 1: header field 'user_id' needs a type"):
        read_dataset(str(path.parent))


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


def test_real_ml100k(shared_data):
    d = read_dataset(str(shared_data("ml-100k")))
    assert (d.num_users, d.num_items, len(d.interactions)) == (943, 1682, 100000)
    assert d.text_fields == ["movie_title", "release_year", "class"]
    assert d.item_title(d.item_index("1")) == "Toy Story"
    assert d.user_features.iloc[d.user_index("1")].tolist() == ["24", "M", "technician", "85711"]
    row = d.interactions.iloc[0]  # 196 242 3 881250949
    assert (d.user_ids[int(row["user"])], d.item_ids[int(row["item"])]) == ("196", "242")
    assert (row["rating"], row["timestamp"]) == (3.0, 881250949.0)
