"""Helpers every benchmark shares: locating the real data, running configs, writing results.

Each benchmark prints a table and writes ``benchmarks/results/NAME.json``: a list of rows with
``dataset``, ``method``, ``setting`` and the keys of ``metrics.json`` (test split) and
``efficiency.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from recadapt.config import validate_config
from recadapt.train.loop import train_run

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def shared_data(name: str) -> Path:
    """``$RECADAPT_SHARED_DATA/name`` (default ``../shared/data``); exits cleanly if absent."""
    root = Path(os.environ.get("RECADAPT_SHARED_DATA", REPO.parent / "shared" / "data"))
    path = root / name
    if not path.exists():
        sys.exit(f"benchmark data {path} is absent; set RECADAPT_SHARED_DATA to its folder")
    return path


def run_config(raw: dict[str, Any], *, dataset: str, method: str, setting: str,
               keep_dir: Path | None = None) -> dict[str, Any]:
    """Train ``raw`` in a fresh run directory and return one result row."""
    config = validate_config(raw)
    run_dir = keep_dir or Path(tempfile.mkdtemp(prefix="recadapt-bench-")) / "run"
    if keep_dir is not None and keep_dir.exists():
        shutil.rmtree(keep_dir)
    try:
        result = train_run(config, run_dir, progress=sys.stderr.isatty())
    finally:
        if keep_dir is None:
            shutil.rmtree(run_dir.parent, ignore_errors=True)
    return {"dataset": dataset, "method": method, "setting": setting,
            **result.metrics["test"], "valid": result.metrics["valid"], **result.efficiency}


def write_results(name: str, rows: list[dict[str, Any]]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return path


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = ["dataset", "method", "setting", *columns]
    cells = [[_cell(row.get(c)) for c in head] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(head)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, cells)])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return "" if value is None else str(value)
