"""Summaries of a Dataset for ``recadapt data inspect PATH`` and run reports."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recadapt.data.dataset import PAD_ITEM, Dataset

_EXAMPLE_CHARS = 80


def describe(dataset: Dataset) -> dict[str, Any]:
    """Plain-Python statistics of a dataset (JSON-serializable).

    Keys: ``name``, ``synthetic``, ``users``, ``items``, ``interactions``, ``sparsity``
    (``1 - interactions / (users * items)``), ``sequence_length`` (min/mean/median/max
    interactions per user), ``rating`` (``None`` or min/max/mean), ``timestamp`` (min/max),
    ``text_fields`` (field → first non-empty example, in item-index order), ``title_field``.
    """
    inter = dataset.interactions
    users, items, n = dataset.num_users, dataset.num_items, len(inter)
    lengths = np.bincount(inter["user"].to_numpy(), minlength=users) if n else np.zeros(0)
    if users == 0 or n == 0:
        lengths = np.zeros(1)
    rating = None
    if "rating" in inter.columns and n:
        values = inter["rating"].to_numpy(dtype=np.float64)
        rating = {"min": float(values.min()), "max": float(values.max()),
                  "mean": float(values.mean())}
    timestamp = None
    if n:
        stamps = inter["timestamp"].to_numpy(dtype=np.float64)
        timestamp = {"min": float(stamps.min()), "max": float(stamps.max())}
    examples: dict[str, str | None] = {}
    for field_name in dataset.text_fields:
        examples[field_name] = _example(dataset.item_features, field_name)
    return {
        "name": dataset.name,
        "synthetic": dataset.synthetic,
        "users": int(users),
        "items": int(items),
        "interactions": int(n),
        "sparsity": float(1 - n / (users * items)) if users and items else 1.0,
        "sequence_length": {
            "min": int(lengths.min()), "mean": float(lengths.mean()),
            "median": float(np.median(lengths)), "max": int(lengths.max()),
        },
        "rating": rating,
        "timestamp": timestamp,
        "text_fields": examples,
        "title_field": dataset.title_field,
    }


def format_description(d: dict[str, Any]) -> str:
    """A readable multi-line block of :func:`describe`'s output."""
    seq = d["sequence_length"]
    name = d["name"] + ("  (synthetic data)" if d.get("synthetic") else "")
    lines = [
        f"dataset       {name}",
        f"users         {d['users']:,}",
        f"items         {d['items']:,}",
        f"interactions  {d['interactions']:,}",
        f"sparsity      {d['sparsity']:.4%}",
        f"per user      min {seq['min']}, mean {seq['mean']:.1f}, "
        f"median {seq['median']:g}, max {seq['max']}",
    ]
    rating = d.get("rating")
    lines.append("ratings       " + (
        f"yes: {rating['min']:g} to {rating['max']:g}, mean {rating['mean']:.2f}"
        if rating else "no"))
    stamps = d.get("timestamp")
    if stamps:
        lines.append(f"timestamps    {stamps['min']:.10g} to {stamps['max']:.10g}"
                     + _as_dates(stamps["min"], stamps["max"]))
    fields = d.get("text_fields") or {}
    if not fields:
        lines.append("text fields   none")
    else:
        lines.append("text fields   " + ", ".join(
            f"{f} (title)" if f == d.get("title_field") else f for f in fields))
        width = max(len(f) for f in fields)
        for field_name, example in fields.items():
            shown = "(all empty)" if example is None else repr(_shorten(example))
            lines.append(f"  {field_name:<{width}}  e.g. {shown}")
    return "\n".join(lines)


def _example(features: pd.DataFrame, field_name: str) -> str | None:
    if field_name not in features.columns:
        return None
    for value in features[field_name].iloc[PAD_ITEM + 1:]:
        if value is not None and not pd.isna(value) and str(value).strip():
            return str(value)
    return None


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EXAMPLE_CHARS else text[: _EXAMPLE_CHARS - 1] + "…"


def _as_dates(low: float, high: float) -> str:
    """Unix seconds shown as dates too, when both ends look like dates (1990..2100)."""
    if not (6.3e8 <= low <= high <= 4.1e9):
        return ""
    fmt = "%Y-%m-%d"
    first = pd.Timestamp(low, unit="s").strftime(fmt)
    last = pd.Timestamp(high, unit="s").strftime(fmt)
    return f"  ({first} to {last}, if Unix seconds)"
