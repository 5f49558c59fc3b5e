"""Grids of named runs and their results table.

A :class:`Run` is a name, a run config and the fields of its results row (``dataset``,
``method``, ``setting``, and e.g. ``section``). An :class:`Experiment` trains each run into its
own folder under a runs directory (``RUNS_DIR/FOLDER``, the folder named after the run):

* a folder that holds a **finished** run (``metrics.json``) of the same config is reused;
* a folder that holds a **stopped** run of the same config (``checkpoints/last.safetensors``,
  no metrics yet) is resumed from its last finished epoch;
* a folder that holds a run of **another** config is never reused nor deleted: it is moved
  aside to ``FOLDER.replaced-N`` (one line says so) and the run trains in its place.

"The same config" compares the resolved configs as the run stores them (``config.yaml``:
every model default written out, prerequisite folders filled in), both read back through the
validator, so fields added with defaults since a run was trained do not count as changes.
A run that is not kept (``Run.keep`` false, or no runs directory) trains in a temporary folder
that is deleted once its row is read.

Rows land in a :class:`Results` file (a JSON list, written atomically after every row): a row
replaces the earlier row of the same identity (``Results.key``); with ``resume`` a run whose
row is already there under the same ``setting`` is skipped, and ``only`` selects runs by
method or name. Every ``benchmarks/*.py`` builds on this module and on its argument parser
(:func:`experiment_parser`); ``recadapt experiment GRID.yaml`` drives a :class:`Grid` read
from YAML (:func:`load_grid`, :func:`run_grid`).

The top layer beside the command line: nothing in the package imports it but ``cli``. Torch,
the training loop and the config models are imported where they are used, so that a
benchmark run from another virtualenv (``benchmarks/recbole_peer.py``, RecBole's) can still
write its rows through :class:`Results`.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recadapt.errors import ConfigError, RecAdaptError
from recadapt.io import write_json, write_text
from recadapt.report.tables import text_table

if TYPE_CHECKING:
    from recadapt.config import RunConfig

Row = dict[str, Any]
#: a finished run holds this file (``train/loop.py`` writes it last but the efficiency figures)
FINISHED = "metrics.json"
#: a stopped run holds this checkpoint (the state after its latest finished epoch)
LAST_CHECKPOINT = Path("checkpoints") / "last.safetensors"


def slug(name: str) -> str:
    """The folder of a run named ``name``: spaces become ``_``, slashes ``-``."""
    return name.replace(" ", "_").replace("/", "-")


@dataclass(frozen=True)
class Run:
    """One named run of a grid.

    ``config``: the run config as a nested mapping (what ``recadapt train`` reads);
    ``fields``: the leading fields of its results row (``dataset``, ``method`` (default: the
    name), ``setting`` (default empty), then any other, e.g. ``section``); ``folder``: its
    folder under the runs directory (default: :func:`slug` of the name); ``keep``: train it in
    that folder (or, if false, in a temporary one deleted after its row is read); ``needs``:
    kept runs trained (or reused) first, only when this run is about to train (the runs whose
    folders its config names, e.g. A-LLMRec's frozen CF model)."""

    name: str
    config: Mapping[str, Any]
    fields: Mapping[str, Any] = field(default_factory=dict)
    folder: str | None = None
    keep: bool = True
    needs: tuple[Run, ...] = ()

    @property
    def method(self) -> str:
        return str(self.fields.get("method", self.name))

    def row_fields(self, dataset: str | None = None) -> Row:
        """``dataset`` (default: the given one), ``method``, ``setting``, then the others."""
        rest = dict(self.fields)
        return {"dataset": rest.pop("dataset", dataset), "method": rest.pop("method", self.name),
                "setting": rest.pop("setting", ""), **rest}


# -- run folders -----------------------------------------------------------------------------


def resolved_config(raw: Mapping[str, Any] | RunConfig) -> RunConfig:
    """``raw`` validated and its model section resolved (every default written out), as a
    run's ``config.yaml`` stores it before its prerequisite folders are filled in."""
    from recadapt.config import RunConfig, validate_config
    from recadapt.models.registry import resolve_model

    config = raw if isinstance(raw, RunConfig) else validate_config(dict(raw))
    return resolve_model(config)


def _stored_config_text(config: RunConfig, run_dir: Path) -> str:
    """``config`` as a run in ``run_dir`` stores it: resolved, prerequisite folders filled."""
    from recadapt.config import dump_config
    from recadapt.train.stages import plan_stages

    filled, _ = plan_stages(resolved_config(config), run_dir)
    return dump_config(filled)


def same_config(run_dir: str | Path, config: Mapping[str, Any] | RunConfig) -> bool:
    """Whether the run in ``run_dir`` was trained under ``config``: the dumped resolved
    configs are equal, the stored one read back through the validator (so a field added with
    its default since does not count); a folder whose config cannot be read is another one."""
    import yaml

    from recadapt.config import dump_config
    from recadapt.train.runs import read_run_config

    run_dir = Path(run_dir)
    try:
        stored = dump_config(read_run_config(run_dir))
    except (RecAdaptError, ValueError, yaml.YAMLError):  # not a run, or unreadable here
        return False
    return stored == _stored_config_text(resolved_config(config), run_dir)


def set_aside(run_dir: str | Path) -> Path:
    """Move ``run_dir`` to ``FOLDER.replaced-N`` (the first free N), saying so in one line."""
    run_dir = Path(run_dir)
    n = 1
    while (aside := run_dir.with_name(f"{run_dir.name}.replaced-{n}")).exists():
        n += 1
    print(f"{run_dir} was trained under another config: moved to {aside.name}", flush=True)
    run_dir.rename(aside)
    return aside


def train_into(raw: Mapping[str, Any] | RunConfig, run_dir: str | Path, *,
               progress: bool = False) -> Path:
    """Train ``raw`` into ``run_dir``, or reuse the finished run of the same config there, or
    resume the stopped one; anything else in the folder is set aside first (:func:`set_aside`).
    Returns ``run_dir``."""
    from recadapt.train.loop import train_run

    run_dir = Path(run_dir)
    config = resolved_config(raw)
    if run_dir.exists() and not same_config(run_dir, config):
        set_aside(run_dir)
    if (run_dir / FINISHED).is_file():
        print(f"reusing the finished run in {run_dir}", flush=True)
        return run_dir
    resume = (run_dir / LAST_CHECKPOINT).is_file()
    if resume:
        print(f"resuming {run_dir} from its last finished epoch", flush=True)
        stored, wanted = run_dir / "config.yaml", _stored_config_text(config, run_dir)
        if stored.read_text(encoding="utf-8") != wanted:  # the same config in today's form
            write_text(stored, wanted)
    elif run_dir.exists():  # this config, stopped before its first epoch ended: start again
        shutil.rmtree(run_dir)
    train_run(config, run_dir, resume=resume, progress=progress)
    return run_dir


# -- rows ------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def learning_curve(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per validated epoch of a run's ``history.json``: the epoch, cumulative training seconds,
    mean loss and the validation metrics."""
    curve, seconds = [], 0.0
    for record in history:
        seconds += float(record.get("seconds", 0.0))
        if "valid" in record:
            curve.append({"epoch": record["epoch"], "seconds": round(seconds, 2),
                          "loss": record.get("loss"), **record["valid"]})
    return curve


def run_row(run: Run, run_dir: Path) -> Row:
    """The results row of a finished run: the run's row fields (``dataset`` defaults to the
    one the run read), the test metrics, ``valid`` (the validation metrics), the efficiency
    figures and ``curve`` (:func:`learning_curve`)."""
    metrics = _read_json(run_dir / FINISHED)
    efficiency = _read_json(run_dir / "efficiency.json")
    history_path = run_dir / "history.json"
    history = _read_json(history_path) if history_path.is_file() else []
    return {**run.row_fields(metrics.get("dataset")), **metrics["test"],
            "valid": metrics["valid"], **efficiency, "curve": learning_curve(history)}


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
            rows = _read_json(self.path)
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


# -- the benchmarks' command line ------------------------------------------------------------

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


# -- grids from YAML (recadapt experiment) ---------------------------------------------------

GRID_KEYS = ("base", "runs", "columns")
RUN_KEYS = ("name", "overrides", "dataset", "method", "setting", "section")
#: the metric columns a grid's table shows by default (its rows' test metrics)
METRIC = re.compile(r"(?:sampled_)?(?:HR|NDCG)@\d+|AUC|LogLoss")
#: and the efficiency columns after them
GRID_EFFICIENCY = ["epochs", "seconds_per_epoch", "trainable_params"]


@dataclass(frozen=True)
class Grid:
    """Named runs over one base config (``recadapt experiment GRID.yaml``); ``columns``: the
    table's columns beside dataset, method and setting (empty: the test metrics, epochs,
    seconds per epoch and trainable parameters)."""

    runs: list[Run]
    columns: list[str] = field(default_factory=list)


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``{"train": {"lr": 0.01}}`` → ``["train.lr=0.01"]`` (values as YAML flow text)."""
    import yaml

    items = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            items += _flatten(value, f"{name}.")
        else:
            text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
            items.append(f"{name}={text.removesuffix('...').strip()}")
    return items


def _overrides(value: Any, where: str) -> tuple[dict[str, Any], list[str]]:
    """A run's ``overrides`` (a list of ``key=value`` strings, or a mapping whose keys may be
    dotted) as a nested mapping, and as ``key=value`` strings (its default setting)."""
    from recadapt.config import deep_merge, parse_overrides

    if value is None:
        return {}, []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return parse_overrides(value), list(value)
    if isinstance(value, Mapping):
        nested: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{where}: overrides key {key!r} is not text")
            for part in reversed(key.split(".")):
                item = {part: item}
            nested = deep_merge(nested, item)
        return nested, _flatten(nested)
    raise ConfigError(f"{where}: overrides must be a list of key=value strings or a mapping")


def grid_from_mapping(data: Any, label: str = "grid", base_dir: Path | None = None) -> Grid:
    """A :class:`Grid` from a YAML document: ``base`` (a config file, relative to
    ``base_dir``, or an inline mapping; default: the defaults), ``runs`` (a list of
    ``{name, overrides, dataset?, method?, setting?, section?}``; overrides that name another
    model than the base's replace its model section) and optional ``columns``.
    Every run's config is validated here, so a bad entry fails before anything trains; errors
    are one line naming ``label`` and the entry."""
    from recadapt.config import deep_merge, read_yaml
    from recadapt.data.load import resolve_source

    if not isinstance(data, Mapping):
        raise ConfigError(f"{label}: the top level must be a mapping with base and runs")
    unknown = [k for k in data if k not in GRID_KEYS]
    if unknown:
        raise ConfigError(f"{label}: unknown key {unknown[0]!r}; expected {', '.join(GRID_KEYS)}")
    base = data.get("base") or {}
    if isinstance(base, str):
        path = Path(base)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        base = read_yaml(path, f"{label}: base config {path}")
    if not isinstance(base, Mapping):
        raise ConfigError(f"{label}: base must be a config file path or a mapping of sections")
    entries = data.get("runs")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{label}: runs must be a non-empty list of runs, each with a name")
    columns = data.get("columns") or []
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ConfigError(f"{label}: columns must be a list of row keys")
    runs: list[Run] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        where = f"{label}: runs[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} must be a mapping with a name and overrides")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where} has no name")
        where = f"{where} ({name})"
        if name in seen:
            raise ConfigError(f"{where}: duplicate name (runs[{seen[name]}] has it already)")
        seen[name] = index
        unknown = [k for k in entry if k not in RUN_KEYS]
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}; expected "
                              f"{', '.join(RUN_KEYS)}")
        nested, shown = _overrides(entry.get("overrides"), where)
        raw = deep_merge(dict(base), nested)
        model = nested.get("model")
        if isinstance(model, Mapping) and model.get("name") not in (
                None, (base.get("model") or {}).get("name")):
            raw["model"] = dict(model)  # another model: its own defaults, not the base's keys
        try:
            config = resolve_source(resolved_config(raw))
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        fields = {k: entry[k] for k in ("dataset", "method", "setting", "section") if k in entry}
        fields.setdefault("setting", ", ".join(shown) or "base config")
        runs.append(Run(name, config.model_dump(mode="json"), fields))
    return Grid(runs, list(columns))


def load_grid(path: str | Path) -> Grid:
    """Read ``GRID.yaml`` (see :func:`grid_from_mapping`; ``base`` paths are relative to it)."""
    path = Path(path)
    from recadapt.config import read_yaml

    return grid_from_mapping(read_yaml(path, f"grid file {path}"), str(path), path.parent)


def grid_columns(rows: list[Row]) -> list[str]:
    """The test metrics of ``rows`` (in order of appearance), then :data:`GRID_EFFICIENCY`."""
    metrics = dict.fromkeys(k for row in rows for k in row if METRIC.fullmatch(k))
    return [*metrics, *GRID_EFFICIENCY]


def run_grid(grid: Grid, runs_dir: str | Path, *, results: str | Path | None = None,
             only: Iterable[str] | None = None, resume: bool = False,
             progress: bool | None = None) -> tuple[list[Row], list[Path]]:
    """Train (or reuse, or resume) every selected run of ``grid`` into ``runs_dir/NAME``, its
    row recorded in ``results`` (default ``runs_dir/results.json``; rows are identified by
    method). Returns the selected runs' rows and their folders."""
    only = list(only or [])
    names = {run.name for run in grid.runs} | {run.method for run in grid.runs}
    missing = [name for name in only if name not in names]
    if missing:
        raise RecAdaptError(f"--only: no run named {missing[0]!r}; the grid has "
                            f"{', '.join(run.name for run in grid.runs)}")
    runs_dir = Path(runs_dir)
    table = Results(results or runs_dir / "results.json", key=("method",))
    experiment = Experiment(table, runs_dir, only=only, resume=resume, progress=progress)
    experiment.run_all(grid.runs)
    chosen = [run for run in grid.runs if experiment.selected(run)]
    folders = [experiment.folder(run) for run in chosen]
    methods = {run.method for run in chosen}
    rows = [row for row in table.rows if row.get("method") in methods]
    return rows, [folder for folder in folders if (folder / FINISHED).is_file()]
