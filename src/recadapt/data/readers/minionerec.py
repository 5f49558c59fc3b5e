"""The MiniOneRec Amazon folder: per domain ``NAME.item.json`` and ``{valid,test}_NAME.csv``
sliding-window rows; ``name`` picks the domain and the windows are chained back into one
sequence per user (see :func:`read_minionerec`)."""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path

import pandas as pd

from recadapt.data.readers.common import (
    Parts,
    ReadRequest,
    Table,
    read_delimited,
    read_json,
    sequences_frame,
)
from recadapt.errors import DataError

MINIONEREC_PARTS = ("train", "valid", "test")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"\s+")


def read_minionerec(request: ReadRequest) -> Parts:
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
    path, cols, name = request.path, request.cols, request.name
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
        table = read_delimited(csv_path, ",", quoted=True, typed=False, what=what)
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
    inter = sequences_frame(sequences)
    text_fields = ["title", "categories", "brand", "description"]
    return Parts(inter, items, None, text_fields, domain, str(folder / f"test_{domain}.csv"))


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
    raw = read_json(path, "a MiniOneRec item file {id: {title, description, ...}}",
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


def _minionerec_ids(value, table: Table, row: int, column: str) -> list[str]:
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
