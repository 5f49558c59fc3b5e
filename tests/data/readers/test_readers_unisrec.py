"""UniSRec pre-split files: full sequences rebuilt from the train rows, each bad-input error,
the Amazon text parts, and the real Scientific files round-tripped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recadapt.data.readers import read_dataset
from recadapt.data.readers.unisrec import _with_unisrec_parts
from recadapt.data.splits import leave_one_out
from recadapt.errors import DataError

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


def raw_targets(dataset, evalset):
    return {dataset.user_ids[u]: dataset.item_ids[t]
            for u, t in zip(evalset.users, evalset.targets, strict=True)}


def seqs(dataset):
    return [list(dataset.item_ids[s]) for s in dataset.sequences()]


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
    items = pd.DataFrame({"text": ["Glue. 3.5 oz bottle. Tools Adhesives. Gorilla. ",
                                   "Tape. Tools Tapes. Scotch. "]}, index=["a", "b"])
    out = _with_unisrec_parts(items)
    assert out["title"].tolist() == ["Glue. 3.5 oz bottle", "Tape"]  # split from the right
    assert out["categories"].tolist() == ["Tools Adhesives", "Tools Tapes"]
    assert out["brand"].tolist() == ["Gorilla", "Scotch"]
    odd = pd.DataFrame({"text": ["no parts here", "Tape. Tools. Scotch. "]}, index=["a", "b"])
    assert list(_with_unisrec_parts(odd).columns) == ["text"]  # all or nothing
