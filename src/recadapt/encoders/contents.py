"""What an encoder reads for each item: a text built from item columns, or a media file path
(image, audio or video).

Contents are returned for items ``1..num_items`` in index order (the padding row 0 has none),
so ``encode(item_contents(...))[l][i - 1]`` is item ``i``'s state at layer ``l``.
"""

from __future__ import annotations

import math
import string
from pathlib import Path
from typing import Any

import pandas as pd

from recadapt.config import EncoderSpec
from recadapt.data.dataset import Dataset
from recadapt.errors import ConfigError

#: modalities whose content is one file path per item
MEDIA = ("image", "audio", "video")


def _key(spec: EncoderSpec, position: int | None, field: str) -> str:
    """The config key of one of the spec's fields, for error messages."""
    if position is not None:
        return f"encoders.{position}.{field}"
    return f"encoder {spec.name!r} {field}"


def _text(value: Any) -> str:
    """A cell as text: missing → ``""``; whole floats (ints widened by a NaN) without ``.0``."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer():
            return str(int(value))
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):  # lists/arrays: not a scalar NA
        pass
    return str(value).strip()


def item_contents(
    dataset: Dataset,
    spec: EncoderSpec,
    modality: str = "text",
    base_dir: str | Path | None = None,
    position: int | None = None,
) -> list[Any]:
    """Contents of items ``1..num_items`` for one encoder.

    Args:
        dataset: the dataset; its ``item_features`` has one row per item index.
        spec: the encoder's config (``fields``, ``template``).
        modality: ``text`` (also for LLMs), ``image``, ``audio`` or ``video`` — usually
            ``encoder.info.modality``.
        base_dir: folder that relative media paths are resolved against.
        position: the spec's index in ``encoders``, so errors name ``encoders.N.fields``.

    Text: ``spec.template.format(**columns)`` when there is a template (missing values → ""),
    else the non-empty values of ``spec.fields`` (default: ``dataset.text_fields``) joined
    with ". ". Image/audio/video: the single column in ``spec.fields`` holds paths, returned as
    :class:`~pathlib.Path` objects (the state cache hashes a path's file, a string's text); a
    missing path gives ``None`` (the encoder's blank input: a grey image, silence).
    """
    table = dataset.item_features
    rows = table.iloc[1:dataset.num_items + 1] if len(table) else table
    if len(rows) != dataset.num_items:
        raise ConfigError(
            f"{_key(spec, position, 'fields')}: dataset {dataset.name!r} has no item features "
            f"({len(rows)} rows for {dataset.num_items} items)"
        )
    return rows_contents(rows, spec, modality, base_dir, position, dataset.text_fields,
                         dataset.name)


def rows_contents(
    rows: pd.DataFrame,
    spec: EncoderSpec,
    modality: str = "text",
    base_dir: str | Path | None = None,
    position: int | None = None,
    text_fields: list[str] | None = None,
    dataset_name: str = "",
) -> list[Any]:
    """Contents of the items in ``rows`` (item-feature rows), by the rules of
    :func:`item_contents`; also used for items added after training (``recadapt serve``)."""
    available = list(rows.columns)
    if modality in MEDIA:
        return _media_paths(rows, spec, position, available, base_dir, modality)
    if spec.template is not None:
        return _templated(rows, spec, position, available)
    fields = list(spec.fields) if spec.fields else list(text_fields or [])
    if not fields:
        raise ConfigError(
            f"{_key(spec, position, 'fields')}: dataset {dataset_name!r} has no text fields; "
            f"name the columns to encode, from {available}"
        )
    _check_columns(fields, available, spec, position, "fields")
    columns = [rows[f].tolist() for f in fields]
    rows_values = zip(*columns, strict=True)
    return [". ".join(t for t in (_text(v) for v in values) if t) for values in rows_values]


def _check_columns(names: list[str], available: list[str], spec: EncoderSpec,
                   position: int | None, field: str) -> None:
    missing = [n for n in names if n not in available]
    if missing:
        raise ConfigError(
            f"{_key(spec, position, field)}: no item column {', '.join(map(repr, missing))}; "
            f"available: {available}"
        )


def _templated(rows: pd.DataFrame, spec: EncoderSpec, position: int | None,
               available: list[str]) -> list[str]:
    template = spec.template or ""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    except ValueError as err:
        raise ConfigError(f"{_key(spec, position, 'template')}: {err}") from None
    if any(not n.isidentifier() for n in names):
        raise ConfigError(
            f"{_key(spec, position, 'template')}: use plain column names in braces, "
            f"e.g. {{title}}; got {names}"
        )
    _check_columns(sorted(set(names)), available, spec, position, "template")
    used = sorted(set(names))
    columns = {n: [_text(v) for v in rows[n].tolist()] for n in used}
    try:
        return [template.format(**{n: columns[n][i] for n in used}).strip()
                for i in range(len(rows))]
    except (ValueError, IndexError, KeyError) as err:
        raise ConfigError(
            f"{_key(spec, position, 'template')}: cannot fill {template!r} ({err}); use plain "
            "{column} placeholders (values are inserted as text)"
        ) from None


def _media_paths(rows: pd.DataFrame, spec: EncoderSpec, position: int | None,
                 available: list[str], base_dir: str | Path | None,
                 modality: str) -> list[Path | None]:
    if not spec.fields or len(spec.fields) != 1:
        raise ConfigError(
            f"{_key(spec, position, 'fields')}: an {modality} encoder needs exactly one column "
            f"of {modality} file paths, e.g. [{modality}]; available: {available}"
        )
    _check_columns(list(spec.fields), available, spec, position, "fields")
    base = Path(base_dir).expanduser() if base_dir is not None else None
    out: list[Path | None] = []
    for value in rows[spec.fields[0]].tolist():
        text = _text(value)
        if not text:
            out.append(None)
            continue
        path = Path(text).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        out.append(path)  # a Path, so the state cache fingerprints the file's bytes
    return out
