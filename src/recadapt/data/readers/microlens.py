"""A folder laid out like the public MicroLens release: ``PREFIX_pairs.csv``
(``user,item,timestamp``), ``PREFIX_title_en.csv`` (``item,title``), covers
``PREFIX_covers/ID.jpg``, videos ``PREFIX_videos/ID.mp4``, optional audio
``PREFIX_audio/ID.wav`` (see :func:`read_microlens`)."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pandas as pd

from recadapt.data.readers.common import (
    Parts,
    ReadRequest,
    interaction_frame,
    read_delimited,
    read_json,
    read_text,
)
from recadapt.errors import DataError

MICROLENS_IMAGE = (".jpg", ".jpeg", ".png", ".webp")
MICROLENS_VIDEO = (".mp4", ".mkv", ".webm", ".mov", ".avi")
MICROLENS_AUDIO = (".wav", ".flac", ".mp3", ".m4a", ".ogg")


def read_microlens(request: ReadRequest) -> Parts:
    """A MicroLens-layout folder (or its ``PREFIX_pairs.csv``) → reader parts (``synthetic`` set
    from the meta file).

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
    path, cols = request.path, request.cols
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
    return Parts(inter, items, None, text_fields, name, str(pairs_path), synthetic)


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
    table = read_delimited(path, ",", quoted=True, typed=False, what=what, header=header)
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
    return interaction_frame(table, roles)


def _first_csv_row(path: Path, what: str) -> list[str]:
    text = read_text(path, what)
    for line in text.splitlines():
        if line.strip():
            return next(csv.reader([line]))
    raise DataError(f"{path}: the file is empty; expected {what}")


def _microlens_titles(path: Path, cols: dict[str, str]) -> dict[str, str | None]:
    """``{raw item id: title}``; see :func:`read_microlens` for the accepted forms."""
    what = "MicroLens titles 'item,title'"
    reader = csv.reader(io.StringIO(read_text(path, what), newline=""), strict=True)
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


def _microlens_meta(path: Path, prefix: str) -> tuple[str, bool]:
    """Name and synthetic flag from ``PREFIX_meta.json`` (default: the prefix, not
    synthetic)."""
    if not path.is_file():
        return prefix, False
    meta = read_json(path, "a JSON object", "fix or remove the file")
    if not isinstance(meta, dict):
        raise DataError(f"{path}: a JSON {type(meta).__name__}, expected an object")
    synthetic = meta.get("synthetic", False)
    if not isinstance(synthetic, bool):
        raise DataError(f"{path}: 'synthetic' is {synthetic!r}; use true or false")
    name = meta.get("name")
    return (str(name).strip() if name and str(name).strip() else prefix), synthetic
