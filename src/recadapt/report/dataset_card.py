"""The dataset card of a report: what each run read (``data.source``), its size as
``recadapt data inspect`` describes it, and the synthetic label of generated data.

Reading a dataset can be slow or impossible on the machine that builds the report (the data
stayed on the training machine): the card then says so instead of failing the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from recadapt.report.document import Block, Code, Details, Table, Text
from recadapt.report.runs import Run

#: the data keys that decide which dataset (and which rows of it) a run read
READER_KEYS = ("source", "format", "name", "columns", "item_path", "text_fields",
               "title_field", "k_core")


def dataset_cards(runs: list[Run], read_data: bool = True) -> list[Block]:
    """One card per distinct dataset (runs on the same data share it)."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        data = run.config.get("data") or {}
        key = json.dumps({k: data.get(k) for k in READER_KEYS}, sort_keys=True, default=str)
        groups.setdefault(key, []).append(run)
    blocks: list[Block] = []
    for members in groups.values():
        blocks.extend(_card(members, read_data))
    return blocks


def _card(runs: list[Run], read_data: bool) -> list[Block]:
    data = runs[0].config.get("data") or {}
    source = str(data.get("source", "dslabs"))
    tasks: dict[str, list[str]] = {}
    for run in runs:
        tasks.setdefault(str((run.config.get("data") or {}).get("task", "next_item")),
                         []).append(run.label)
    rows = [["source", source], ["format", str(data.get("format", "auto"))],
            ["runs", "; ".join(f"{task}: {', '.join(labels)}" for task, labels in tasks.items())]]
    if data.get("k_core"):
        rows.append(["k-core", str(data["k_core"])])
    meta = synthetic_meta(source)
    blocks: list[Block] = []
    if meta is not None and meta.get("synthetic") is True:
        blocks.append(Text(f"SYNTHETIC DATA: {meta.get('name') or source} was generated "
                           f"({meta.get('generator', 'recadapt data synth')}, seed "
                           f"{meta.get('seed', '?')}); numbers measured on it are not results "
                           "on real data."))
        if meta.get("description"):
            rows.append(["description", str(meta["description"])])
    description, problem = describe_error(data, source) if read_data else (
        None, "not read (--no-data)")
    if description is not None:
        from recadapt.data.inspect import format_description

        seq = description["sequence_length"]
        rows += [["dataset", str(description["name"])],
                 ["synthetic", "yes" if description.get("synthetic") else "no"],
                 ["users", f"{description['users']:,}"],
                 ["items", f"{description['items']:,}"],
                 ["interactions", f"{description['interactions']:,}"],
                 ["sparsity", f"{description['sparsity']:.4%}"],
                 ["interactions per user", f"min {seq['min']}, mean {seq['mean']:.1f}, "
                                           f"max {seq['max']}"]]
        details: list[Block] = [Code(format_description(description))]
    else:
        rows.append(["contents", problem or "not read"])
        details = []
    blocks.insert(0, Table(["", ""], rows))
    if details:
        blocks.append(Details("recadapt data inspect", details))
    return blocks


def describe_error(data: dict[str, Any], source: str) -> tuple[dict[str, Any] | None, str | None]:
    """``describe()`` of the dataset the run read, or why it could not be read here."""
    from recadapt.config import DataConfig
    from recadapt.data.inspect import describe
    from recadapt.data.load import load_dataset
    from recadapt.errors import RecAdaptError

    if source != "dslabs" and not Path(source).expanduser().exists():
        return None, f"not read: {source} is not on this machine"
    try:
        config = DataConfig.model_validate(data)
    except ValidationError as err:
        return None, f"not read: the run's data section no longer validates ({_short(err)})"
    try:
        return describe(load_dataset(config)), None
    except (RecAdaptError, OSError, ValueError) as err:
        return None, f"not read: {_short(err)}"


def synthetic_meta(source: str) -> dict[str, Any] | None:
    """``PREFIX_meta.json`` beside a MicroLens-layout dataset (``recadapt data synth`` writes
    ``synth_meta.json``), or ``None``; an unreadable file counts as absent here (the reader
    reports it when the data is read)."""
    path = Path(source).expanduser()
    if path.is_file() and path.name.endswith("_pairs.csv"):
        candidates = [path.with_name(path.name[: -len("_pairs.csv")] + "_meta.json")]
    elif path.is_dir():
        candidates = sorted(path.glob("*_meta.json"))
    else:
        return None
    for candidate in candidates:
        try:
            meta = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict):
            return meta
    return None


def _short(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
