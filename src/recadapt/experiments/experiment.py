"""The results table of a grid of runs and the experiment that fills it; the benchmarks' shared
command line."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from recadapt.errors import RecAdaptError
from recadapt.experiments.runs import (
    Row,
    Run,
    read_json,
    run_row,
    slug,
    train_into,
)
from recadapt.io import write_json
from recadapt.report.tables import text_table


class Results:
    """The rows of a results file (a JSON list), kept in order and written atomically.

    ``key``: the fields that identify a row (a new row replaces the one with the same values);
    ``keep``: start from the rows already in ``path`` (otherwise the file is rewritten with
    this invocation's rows only); ``annotate``: called on the rows before every write (e.g.
    relative improvements over a reference row); ``written``: called with the path after."""

    def __init__(self, path: str | Path, *, key: Sequence[str] = ("dataset", "method"),
                 keep: bool = True, annotate: Callable[[list[Row]], None] | None = None,
                 written: Callable[[Path], None] | None = None) -> None:
        self.path, self.key = Path(path), tuple(key)
        self.annotate, self.written = annotate, written
        self.rows: list[Row] = self._read() if keep else []

    def _read(self) -> list[Row]:
        if not self.path.is_file():
            return []
        try:
            rows = read_json(self.path)
        except json.JSONDecodeError as err:
            raise RecAdaptError(f"{self.path}: not valid JSON ({err.msg}, line {err.lineno})"
                                ) from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise RecAdaptError(f"{self.path}: expected a JSON list of result rows")
        return rows

    def identity(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(row.get(k) for k in self.key)

    def find(self, fields: Mapping[str, Any]) -> Row | None:
        """The row of the same identity and the same ``setting`` as ``fields``, if any."""
        wanted = self.identity(fields)
        return next((r for r in self.rows if self.identity(r) == wanted
                     and r.get("setting") == fields.get("setting")), None)

    def record(self, row: Row) -> Row:
        """Replace the row of the same identity (or append ``row``) and write the file."""
        identity = self.identity(row)
        self.rows = [r for r in self.rows if self.identity(r) != identity] + [row]
        self.write()
        return row

    def write(self) -> Path:
        if self.annotate is not None:
            self.annotate(self.rows)
        write_json(self.path, self.rows)
        if self.written is not None:
            self.written(self.path)
        return self.path


class Experiment:
    """Trains runs into ``runs_dir`` (see the module docstring) and records their rows.

    ``results``: where rows go (None: nowhere, only returned); ``only``: run these methods or
    run names alone; ``resume``: skip a run whose row ``results`` holds under the same setting;
    ``collect``: the row of a trained run (default :func:`run_row`); ``columns``: printed
    beside dataset, method and setting when a row lands (none: rows are not printed);
    ``progress``: progress bars (default: when stderr is a terminal)."""

    def __init__(self, results: Results | None, runs_dir: str | Path | None, *,
                 only: Iterable[str] | None = None, resume: bool = False,
                 collect: Callable[[Run, Path], Row] = run_row,
                 columns: Sequence[str] | None = None, progress: bool | None = None) -> None:
        self.results = results
        self.runs_dir = Path(runs_dir) if runs_dir is not None else None
        self.only = set(only) if only else None
        self.resume, self.collect = resume, collect
        self.columns = list(columns) if columns is not None else None
        self.progress = sys.stderr.isatty() if progress is None else progress

    def selected(self, run: Run) -> bool:
        """Whether ``only`` selects ``run`` (by method or name); everything without it."""
        return self.only is None or run.method in self.only or run.name in self.only

    def pending(self, run: Run, fields: Mapping[str, Any] | None = None) -> bool:
        """Whether ``run`` is to run: selected, and (under ``resume``) its row — ``fields``,
        default the run's own — is not in the results yet."""
        if not self.selected(run):
            return False
        if self.resume and self.results is not None and self.results.find(
                fields if fields is not None else run.row_fields()) is not None:
            print(f"kept from an earlier run: {run.method}", file=sys.stderr, flush=True)
            return False
        return True

    def folder(self, run: Run) -> Path:
        if self.runs_dir is None:
            raise RecAdaptError(f"run {run.name!r} is kept, but no runs directory was given")
        return self.runs_dir / (run.folder or slug(run.name))

    def train(self, run: Run) -> Path:
        """Train (or reuse, or resume) ``run`` in its folder after the runs it needs."""
        for need in run.needs:
            self.train(need)
        return train_into(run.config, self.folder(run), progress=self.progress)

    def run(self, run: Run) -> Row | None:
        """Train ``run`` if it is pending and record its row (None when it is not)."""
        if not self.pending(run):
            return None
        if run.keep and self.runs_dir is not None:
            return self.record(self.collect(run, self.train(run)))
        for need in run.needs:
            self.train(need)
        with tempfile.TemporaryDirectory(prefix="recadapt-run-",
                                         ignore_cleanup_errors=True) as scratch:
            folder = train_into(run.config, Path(scratch) / "run", progress=self.progress)
            return self.record(self.collect(run, folder))

    def run_all(self, runs: Iterable[Run]) -> list[Row]:
        """:meth:`run` each run in order; the rows recorded now."""
        return [row for run in runs if (row := self.run(run)) is not None]

    def record(self, row: Row) -> Row:
        """Put ``row`` into the results (written at once) and print its table line."""
        if self.results is not None:
            self.results.record(row)
        if self.columns is not None:
            print(text_table([row], self.columns).splitlines()[-1], flush=True)
        return row

    def table(self, rows: list[Row] | None = None) -> str:
        """The text table of ``rows`` (default: every row of the results)."""
        if rows is None:
            rows = self.results.rows if self.results is not None else []
        return text_table(rows, self.columns or [])

    def summary(self) -> str:
        """What a benchmark prints when it ends: every row's table line and the results file."""
        where = f"\n\nwrote {self.results.path}" if self.results is not None else ""
        return f"\n{self.table()}{where}"




#: the options every experiment command line shares (see :func:`experiment_parser`)
COMMON_OPTIONS = ("quick", "resume", "only", "threads", "runs_dir")


def experiment_parser(description: str, *, quick: str = "tiny runs on the same code path "
                      "(results in NAME_quick.json)",
                      runs_dir: str = "keep each run in RUNS_DIR/FOLDER (reused when "
                      "finished, resumed when stopped, set aside when its config changed)",
                      omit: Iterable[str] = ()) -> argparse.ArgumentParser:
    """An argument parser with the shared options — ``--quick``, ``--resume``, ``--only
    NAME...``, ``--threads N``, ``--runs-dir PATH`` (``omit`` leaves some out; ``quick`` and
    ``runs_dir`` are their help texts) — that a benchmark extends with its own."""
    from recadapt.progress import quiet_foreign_bars

    quiet_foreign_bars()  # a benchmark's log gets its own bars' lines, not HF's redraws
    omitted = set(omit)
    unknown = omitted - set(COMMON_OPTIONS)
    if unknown:
        raise ValueError(f"omit: unknown options {sorted(unknown)}; choose from {COMMON_OPTIONS}")
    parser = argparse.ArgumentParser(description=description)
    if "quick" not in omitted:
        parser.add_argument("--quick", action="store_true", help=quick)
    if "resume" not in omitted:
        parser.add_argument("--resume", action="store_true",
                            help="skip runs whose row (same setting) is already in the results "
                            "file; stopped runs in the runs folder continue either way")
    if "only" not in omitted:
        parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                            help="run only these methods (names as in the table)")
    if "threads" not in omitted:
        parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    if "runs_dir" not in omitted:
        parser.add_argument("--runs-dir", default=None, help=runs_dir)
    return parser


