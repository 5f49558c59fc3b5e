"""UniSRec pre-split files: ``NAME.{train,valid,test}.inter`` + ``NAME.text``,
``NAME.item2index``, ``NAME.user2index``; each user's full sequence is rebuilt so that
:func:`~recadapt.data.splits.leave_one_out` gives back the file's valid/test targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recadapt.data.readers.common import (
    Parts,
    ReadRequest,
    Table,
    feature_table,
    read_delimited,
    sequences_frame,
)
from recadapt.errors import DataError


def read_unisrec(request: ReadRequest) -> Parts:
    """Rebuild full sequences from UniSRec's per-prefix train rows plus valid/test targets.

    Train rows are one per prefix (``history → target``); the file lists each user's rows
    newest first and caps histories (at 50), so rows are chained rather than taking the
    longest one: sorted by history length (ties: reverse file order), each row's history
    must end the sequence built so far and its target extends it. Then the valid target,
    then the test target. Timestamps are positions, so leave-one-out gives back exactly the
    file's valid and test targets.
    """
    path, cols = request.path, request.cols
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
        table = read_delimited(part_path, "\t", quoted=False, typed=True, what=what)
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

    inter = sequences_frame(sequences)
    if user_raw is not None:
        inter["user"] = _map_tokens(inter["user"], user_raw, folder / f"{stem}.user2index")
    if item_raw is not None:
        inter["item"] = _map_tokens(inter["item"], item_raw, folder / f"{stem}.item2index")

    items, text_fields = None, []
    text_path = folder / f"{stem}.text"
    if text_path.is_file():
        table = read_delimited(text_path, "\t", quoted=False, typed=True,
                                what="a UniSRec text file (item_id, text)")
        table.ids(item_col, "item")
        table.require("text", "text")
        items = feature_table(table.frame[[item_col, "text"]], item_col, [])
        items = _with_unisrec_parts(items)
        text_fields = ["text"]
    return Parts(inter, items, None, text_fields, stem, str(folder / f"{stem}.train.inter"))


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


def _chain_train_rows(table: Table, rows: list[int], hists: list[list[str]],
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
    table = read_delimited(path, "\t", quoted=False, typed=False, header=False,
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
