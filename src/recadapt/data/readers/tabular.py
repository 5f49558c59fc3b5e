"""One interaction table as CSV, TSV, Parquet or JSON Lines, columns named by ``columns``;
an optional item table (``item_path``) in any of those formats."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from recadapt.data.readers.common import (
    SUFFIX_FORMATS,
    Parts,
    ReadRequest,
    Table,
    feature_table,
    interaction_frame,
    read_delimited,
    read_text,
)
from recadapt.errors import DataError


def read_single_table(request: ReadRequest) -> Parts:
    """One interaction table (``request.fmt``), plus the item table at ``item_path``."""
    path, fmt, cols, item_path = request.path, request.fmt, request.cols, request.item_path
    if path.is_dir():
        raise DataError(f"{path}: is a folder; format {fmt!r} expects one file")
    table = _load_table(path, fmt, what="an interaction table")
    inter = interaction_frame(table, cols)
    items, text_fields = None, []
    if item_path is not None:
        ipath = Path(item_path).expanduser()
        ifmt = SUFFIX_FORMATS.get(ipath.suffix.lower())
        if ifmt not in ("csv", "tsv", "parquet", "jsonl"):
            raise DataError(
                f"{ipath}: cannot tell the item table's format from its suffix; "
                "use .csv, .tsv, .parquet or .jsonl"
            )
        if not ipath.is_file():
            raise DataError(f"{ipath}: no such file; expected an item table (item_path)")
        itable = _load_table(ipath, ifmt, what="an item table")
        frame = itable.frame
        id_col = cols["item"] if cols["item"] in frame.columns else frame.columns[0]
        itable.ids(id_col, "item")
        others = [c for c in frame.columns if c != id_col]
        if ifmt in ("csv", "tsv"):
            text_fields = others
        else:
            text_fields = [c for c in others if _is_text(frame[c])]
        items = feature_table(frame, id_col, [])
    return Parts(inter, items, None, text_fields, path.stem, str(path))


def _is_text(series: pd.Series) -> bool:
    if pd.api.types.is_string_dtype(series):
        return True
    if series.dtype != object:
        return False
    present = series.dropna()
    return len(present) > 0 and present.map(lambda v: isinstance(v, str)).all()


def _load_table(path: Path, fmt: str, what: str) -> Table:
    if fmt == "csv":
        return read_delimited(path, ",", quoted=True, typed=False, what=f"{what} (CSV)")
    if fmt == "tsv":
        return read_delimited(path, "\t", quoted=False, typed=False, what=f"{what} (TSV)")
    if fmt == "jsonl":
        return _read_jsonl(path, what)
    return _read_parquet(path, what)


def _read_jsonl(path: Path, what: str) -> Table:
    text = read_text(path, f"{what} (JSON Lines)")
    records, lines = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}, line {number}: not valid JSON ({exc.msg} at column {exc.colno}); "
                "each line must be one JSON object"
            ) from None
        if not isinstance(record, dict):
            raise DataError(
                f"{path}, line {number}: a JSON {type(record).__name__}, not an object; "
                "each line must be one JSON object"
            )
        records.append(record)
        lines.append(number)
    if not records:
        raise DataError(f"{path}: the file is empty; expected {what} (JSON Lines)")
    frame = pd.DataFrame.from_records(records)
    return Table(path, frame, np.asarray(lines, dtype=np.int64), {})


def _read_parquet(path: Path, what: str) -> Table:
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected {what} (Parquet)")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"{path}: cannot read it as Parquet ({first}); check the file is a Parquet table"
        ) from None
    if frame.empty:
        raise DataError(f"{path}: the table has no rows; expected {what}")
    frame = frame.reset_index(drop=True)
    table = Table(path, frame, np.arange(1, len(frame) + 1), {})
    table.where = _row_locator(path)  # type: ignore[method-assign]
    return table


def _row_locator(path: Path) -> Callable[[int], str]:
    return lambda row: f"{path}, row {row + 1}"
