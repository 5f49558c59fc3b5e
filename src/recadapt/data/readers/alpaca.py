"""Alpaca-style instruction records as a CTR dataset (``data.format: alpaca``; TALLRec's data
files).

A source is either a folder holding ``train``, ``valid`` and ``test`` files (``.json``: one JSON
list of records, or ``.jsonl``: one record per line), used as the CTR split as they are, or one
such file, which the CTR split cuts at random (seeded by ``data.ctr.seed``) by the
``data.ctr.split`` ratios (``recadapt.data.ctr.ctr_split``): records carry no time.

Each record is an object with string ``instruction``, ``input`` and ``output``; the output is
the label, ``Yes`` or ``No`` (any case, an optional trailing period and surrounding spaces);
other keys are ignored. Every problem is one :class:`~recadapt.errors.DataError` line naming
the file and the record index (0-based, as ``records[i]`` in the file; ``.jsonl`` also gives the
line).

Each record becomes its own user and its own item (raw ids ``PART:INDEX``, e.g. ``train:0``),
one interaction with the columns ``label`` (1.0 for Yes) and ``part`` (the file's part; empty for
a single file), and the item columns ``input`` (the title field) and ``instruction``: the prompt
of an LLM model is the record's own instruction and input (``PromptBuilder`` on a dataset with
``records`` set). Histories are empty, so ID models learn nothing from such data, and models
that need user/item ids or audio (RecLoRA's CTR model, ATFLRec's audio LoRA) refuse it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from recadapt.data.readers.common import Parts, ReadRequest, read_json, read_text
from recadapt.errors import DataError

ALPACA_KEYS = ("instruction", "input", "output")
PARTS = ("train", "valid", "test")
SUFFIXES = (".json", ".jsonl")
_ANSWER = re.compile(r"\s*(yes|no)\.?\s*", re.IGNORECASE)
_WHAT = "an Alpaca JSON list of {instruction, input, output} records (or .jsonl, one a line)"


def alpaca_label(output: str) -> int | None:
    """1 for "Yes", 0 for "No" (any case, optional trailing period), None otherwise."""
    match = _ANSWER.fullmatch(output)
    if match is None:
        return None
    return 1 if match.group(1).lower() == "yes" else 0


def parse_records(path: Path) -> list[tuple[str, str, str]]:
    """``(instruction, input, output)`` of every record of a ``.json`` or ``.jsonl`` file,
    checked (see module docstring); outputs are not interpreted here."""
    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        raw, lines = _jsonl(path)
    else:
        raw = read_json(path, _WHAT, "an Alpaca file is a JSON list of records")
        lines = None
        if not isinstance(raw, list):
            raise DataError(f"{path}: an Alpaca file is a JSON list of records, this one holds a "
                            f"{type(raw).__name__}")
    records = []
    for index, record in enumerate(raw):
        where = f"{path}: record index {index}" + (
            f" (line {lines[index]})" if lines is not None else "")
        if not isinstance(record, dict):
            raise DataError(f"{where} is a {type(record).__name__}, not an object with "
                            "instruction, input and output")
        for key in ALPACA_KEYS:
            if key not in record:
                raise DataError(f"{where} has no {key!r} key (a record needs instruction, "
                                "input and output)")
            if not isinstance(record[key], str):
                raise DataError(f"{where}: {key!r} must be a string, got "
                                f"{type(record[key]).__name__}")
        records.append((record["instruction"], record["input"], record["output"]))
    return records


def _jsonl(path: Path) -> tuple[list, list[int]]:
    records, lines = [], []
    for number, line in enumerate(read_text(path, _WHAT).splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: record index {len(records)} (line {number}): not valid "
                            f"JSON ({exc.msg}); a .jsonl file holds one JSON object a line"
                            ) from None
        lines.append(number)
    return records, lines


def labelled_records(path: Path) -> tuple[list[str], list[str], list[float]]:
    """Instructions, inputs and labels of a file; an output that is neither Yes nor No is a
    DataError naming the record index."""
    instructions, inputs, labels = [], [], []
    for index, (instruction, text, output) in enumerate(parse_records(path)):
        label = alpaca_label(output)
        if label is None:
            raise DataError(f"{path}: record index {index}: output {output!r} is neither "
                            "'Yes' nor 'No' (any case, optional trailing period)")
        instructions.append(instruction)
        inputs.append(text)
        labels.append(float(label))
    if not labels:
        raise DataError(f"{path}: no records; expected {_WHAT}")
    return instructions, inputs, labels


def part_files(folder: Path) -> dict[str, Path]:
    """``train``/``valid``/``test`` → its ``.json`` or ``.jsonl`` file in ``folder``."""
    found = {}
    for part in PARTS:
        candidates = [folder / f"{part}{suffix}" for suffix in SUFFIXES
                      if (folder / f"{part}{suffix}").is_file()]
        if not candidates:
            raise DataError(f"{folder}: no {part}.json (or {part}.jsonl); an Alpaca folder holds "
                            "train, valid and test files, or give one file to split")
        if len(candidates) > 1:
            raise DataError(f"{folder}: both {part}.json and {part}.jsonl; keep one")
        found[part] = candidates[0]
    return found


def is_alpaca_folder(folder: Path) -> bool:
    """Whether ``folder`` looks like an Alpaca folder (a train and a test file)."""
    return all(any((folder / f"{part}{suffix}").is_file() for suffix in SUFFIXES)
               for part in ("train", "test"))


def read_alpaca_records(request: ReadRequest) -> Parts:
    path = request.path
    files = part_files(path) if path.is_dir() else {"": path}
    if not path.is_dir() and path.suffix.lower() not in SUFFIXES:
        raise DataError(f"{path}: an Alpaca file ends in .json or .jsonl")
    rows, items = [], []
    for part, file in files.items():
        instructions, inputs, labels = labelled_records(file)
        for index, (instruction, text, label) in enumerate(
                zip(instructions, inputs, labels, strict=True)):
            raw = f"{part or 'record'}:{index}"
            rows.append((raw, raw, float(len(rows)), label, part))
            items.append((raw, text, instruction))
    inter = pd.DataFrame(rows, columns=["user", "item", "timestamp", "label", "part"])
    table = pd.DataFrame(items, columns=["item", "input", "instruction"]).set_index("item")
    name = path.name if path.is_dir() else path.stem
    return Parts(inter, table, None, ["input", "instruction"], name, str(path), records=True)


__all__ = ["alpaca_label", "is_alpaca_folder", "labelled_records", "parse_records",
           "part_files", "read_alpaca_records"]

