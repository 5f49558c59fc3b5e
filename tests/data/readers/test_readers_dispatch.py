"""read_dataset's format choice: a missing path, an undetectable folder or suffix, an unknown
format or columns key, each one line naming what was expected."""

from __future__ import annotations

import pytest

from recadapt.data.readers import read_dataset
from recadapt.errors import DataError


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
