"""Grids of runs read from YAML: ``recadapt experiment GRID.yaml``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recadapt.errors import ConfigError, RecAdaptError
from recadapt.experiments.experiment import Experiment, Results
from recadapt.experiments.runs import FINISHED, Row, Run, resolved_config

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
