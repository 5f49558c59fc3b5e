"""What the format readers share: strict text and delimited-file parsing with line numbers,
the interaction/feature frames every reader hands on, and the parts a reader returns.

Every problem a user can fix raises :class:`~recadapt.errors.DataError` with one line naming
the file (and line/column) and what to do; raw pandas/pyarrow exceptions never escape.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from recadapt.errors import DataError

RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")
#: file suffix → format, for detection and for item tables
SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet",
                  ".jsonl": "jsonl", ".ndjson": "jsonl", ".inter": "recbole"}


@dataclass(frozen=True)
class ReadRequest:
    """What :func:`~recadapt.data.readers.read_dataset` was asked, as every reader sees it."""

    source: str | Path
    fmt: str
    cols: dict[str, str]
    name: str | None = None
    item_path: str | Path | None = None

    @property
    def path(self) -> Path:
        return Path(self.source).expanduser()


class Parts(NamedTuple):
    """A reader's result: the pieces :func:`~recadapt.data.dataset.build_dataset` takes."""

    inter: pd.DataFrame
    items: pd.DataFrame | None
    users: pd.DataFrame | None
    text_fields: list[str]
    name: str
    where: str
    synthetic: bool = False
    #: instruction records (Alpaca): interactions carry ``label`` and ``part``
    records: bool = False


def read_text(path: Path, what: str) -> str:
    """The file decoded as UTF-8; a DataError naming the line of the first bad byte."""
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected {what}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"{path}: cannot read the file ({exc.strerror}); check permissions"
        ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start:exc.end].hex()
        raise DataError(
            f"{path}, line {line}: bytes that are not valid UTF-8 (0x{bad}); "
            "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


class Table:
    """Rows of a delimited file as strings, with the line number of every row."""

    def __init__(self, path: Path, frame: pd.DataFrame, lines: np.ndarray, types: dict):
        self.path = path
        self.frame = frame
        self.lines = lines
        self.types = types

    def require(self, column: str, role: str) -> pd.Series:
        if column not in self.frame.columns:
            raise DataError(
                f"{self.path}: no column {column!r} (the {role} column); columns found: "
                f"{', '.join(map(str, self.frame.columns))}; rename it or pass "
                f"columns={{'{role}': ...}}"
            )
        return self.frame[column]

    def ids(self, column: str, role: str) -> pd.Series:
        values = self.require(column, role).astype(str).str.strip()
        empty = (values == "") | self.frame[column].isna()
        if empty.any():
            line = self.where(int(np.argmax(empty.to_numpy())))
            raise DataError(f"{line}: empty {column!r}; every row needs a {role} id")
        return values

    def numbers(self, column: str) -> pd.Series:
        raw = self.frame[column]
        if pd.api.types.is_datetime64_any_dtype(raw):
            if raw.isna().any():
                line = self.where(int(np.argmax(raw.isna().to_numpy())))
                raise DataError(f"{line}: empty {column!r}; fill it or remove that row")
            return (raw - pd.Timestamp(0, tz=raw.dt.tz)).dt.total_seconds()
        if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
            values = raw.astype(np.float64)
        else:
            values = pd.to_numeric(raw.astype(str).str.strip(), errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan))
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            value = raw.iloc[row]
            shown = "empty" if pd.isna(value) or str(value).strip() == "" else repr(value)
            raise DataError(
                f"{self.where(row)}: {column!r} value {shown} is not a number; "
                "fix or remove that row"
            )
        return values.astype(np.float64)

    def where(self, row: int) -> str:
        return f"{self.path}, line {int(self.lines[row])}"


def read_delimited(path: Path, sep: str, *, quoted: bool, typed: bool, what: str,
                   header: bool = True) -> Table:
    """Parse a delimited text file strictly: field counts, quoting and encoding are checked."""
    text = read_text(path, what)
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=sep, strict=True,
        quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
    )
    sep_name = "tab" if sep == "\t" else repr(sep)
    names: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for record in reader:
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if names is None and header:
                names = [f.strip() for f in record]
                continue
            if names is None:
                names = [str(i) for i in range(len(record))]
            if len(record) != len(names):
                raise DataError(
                    f"{path}, line {reader.line_num}: {len(record)} {sep_name}-separated "
                    f"fields but the header has {len(names)} ({', '.join(names)}); "
                    "fix or remove that row"
                )
            rows.append(record)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise DataError(
            f"{path}, line {reader.line_num}: malformed row ({exc}); fix the quoting"
        ) from None
    if names is None:
        raise DataError(f"{path}: the file is empty; expected {what}")
    if not rows:
        raise DataError(f"{path}: the file has a header but no rows; expected {what}")
    types: dict[str, str] = {}
    if typed:
        plain = []
        for raw in names:
            col, _, kind = raw.partition(":")
            if kind not in RECBOLE_TYPES:
                raise DataError(
                    f"{path}, line 1: header field {raw!r} needs a type suffix, one of "
                    f"{', '.join(RECBOLE_TYPES)} (e.g. user_id:token)"
                )
            plain.append(col)
            types[col] = kind
        names = plain
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"{path}, line 1: column {dup!r} appears twice in the header; rename one")
    frame = pd.DataFrame(rows, columns=names, dtype=object)
    return Table(path, frame, np.asarray(lines, dtype=np.int64), types)


def interaction_frame(table: Table, cols: dict[str, str]) -> pd.DataFrame:
    """The user/item/timestamp/rating columns of an interaction table, validated."""
    inter = pd.DataFrame({
        "user": table.ids(cols["user"], "user").to_numpy(),
        "item": table.ids(cols["item"], "item").to_numpy(),
    })
    for role in ("timestamp", "rating"):
        if cols[role] in table.frame.columns:
            inter[role] = table.numbers(cols[role]).to_numpy()
    return inter


def feature_table(frame: pd.DataFrame, id_col: str, numeric: list[str]) -> pd.DataFrame:
    """An item/user table indexed by raw id; empty strings become missing values."""
    table = frame.copy()
    for col in table.columns:
        if col in numeric:
            table[col] = pd.to_numeric(table[col], errors="coerce")
        elif table[col].dtype == object:
            table[col] = table[col].where(table[col].astype(str).str.strip() != "", None)
    table.index = table.pop(id_col).astype(str).str.strip().to_numpy()
    return table


def sequences_frame(sequences: dict) -> pd.DataFrame:
    """Interactions from one ordered item sequence per user; the position is the timestamp
    (order within a user is all these formats record)."""
    user_list, item_list, time_list = [], [], []
    for user, seq in sequences.items():
        user_list.extend([user] * len(seq))
        item_list.extend(seq)
        time_list.extend(range(len(seq)))
    return pd.DataFrame({"user": user_list, "item": item_list,
                         "timestamp": np.asarray(time_list, dtype=np.float64)})


def read_json(path: Path, what: str, fix: str) -> Any:
    """A whole JSON file; a syntax error is one line naming the file, line and ``fix``."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg}); {fix}") from None
