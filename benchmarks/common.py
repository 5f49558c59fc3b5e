"""What the benchmarks share beyond ``recadapt.experiments`` (runs, reuse, resume, results rows,
the argument parser): where the real data and the results files live, and the docs page every
full results file feeds.

Each benchmark prints a table and writes ``benchmarks/results/NAME.json`` (``NAME_quick.json``
under ``--quick``): a list of rows with ``dataset``, ``method``, ``setting`` and the keys of
``metrics.json`` (test split) and ``efficiency.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recadapt.experiments import Results, Run, experiment_parser, run_row

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def shared_data(name: str) -> Path:
    """``$RECADAPT_SHARED_DATA/name`` (default ``../shared/data``); exits cleanly if absent."""
    root = Path(os.environ.get("RECADAPT_SHARED_DATA", REPO.parent / "shared" / "data"))
    path = root / name
    if not path.exists():
        sys.exit(f"benchmark data {path} is absent; set RECADAPT_SHARED_DATA to its folder")
    return path


def bench_parser(description: str, name: str, **options: Any) -> argparse.ArgumentParser:
    """The shared experiment options (``recadapt.experiments.experiment_parser``, which takes
    ``options``) and ``--name``: the results file ``benchmarks/results/NAME.json``."""
    parser = experiment_parser(description, **options)
    parser.add_argument("--name", default=name,
                        help=f"results file benchmarks/results/NAME.json (default {name}; "
                        "NAME_quick.json under --quick)")
    return parser


def results_name(name: str, quick: bool) -> str:
    """``NAME_quick`` for a ``--quick`` run (never overwrites the measured rows), else NAME."""
    return f"{name}_quick" if quick else name


def results(name: str, *, key: Sequence[str] = ("dataset", "method"), keep: bool = True,
            annotate: Callable[[list[dict[str, Any]]], None] | None = None,
            path: Path | None = None) -> Results:
    """The rows of ``benchmarks/results/NAME.json`` (or ``path``); a results file of this
    folder that is not a quick one regenerates ``docs/benchmark_results.md`` when written."""
    path = path or RESULTS / f"{name}.json"
    listed = path.parent.resolve() == RESULTS.resolve() and not path.stem.endswith("_quick")
    return Results(path, key=key, keep=keep, annotate=annotate,
                   written=_write_docs if listed else None)


def ctr_row(run: Run, run_dir: Path) -> dict[str, Any]:
    """A CTR run's row (the LLM tables) and its share of trainable parameters."""
    row = run_row(run, run_dir)
    row["trainable_ratio"] = row["trainable_params"] / max(1, row["total_params"])
    return row


def _write_docs(path: Path) -> None:
    from tables import write_docs  # docs/benchmark_results.md lists every measured row

    write_docs()
