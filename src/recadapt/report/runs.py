"""Reading run directories for reports: every file a run may hold, checked on the way in, so a
missing or malformed file is one line naming it (``RecAdaptError``) and never a traceback."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recadapt.errors import RecAdaptError

#: method-specific analyses a model may write after training (``Recommender.write_analysis``)
ANALYSIS_FILES = ("gates.json", "fusion_weights.json", "mutual_information.json",
                  "generations.json")


@dataclass
class Run:
    """What a report reads from one run directory; ``metrics is None`` = unfinished."""

    path: Path
    label: str
    config: dict[str, Any]
    config_text: str = ""
    metrics: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    efficiency: dict[str, Any] | None = None
    has_ranks: bool = False
    analyses: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.metrics is not None

    @property
    def test_metrics(self) -> dict[str, float]:
        return _numbers(self.metrics.get("test", {})) if self.metrics else {}

    @property
    def valid_metrics(self) -> dict[str, float]:
        return _numbers(self.metrics.get("valid", {})) if self.metrics else {}


def read_runs(paths: list[Path]) -> list[Run]:
    """Every run directory, labelled by the shortest unique tail of its path."""
    if not paths:
        raise RecAdaptError("give at least one run directory")
    labels = unique_labels([Path(p) for p in paths])
    return [read_run(Path(p), label) for p, label in zip(paths, labels, strict=True)]


def read_run(path: Path, label: str | None = None) -> Run:
    if not path.is_dir():
        raise RecAdaptError(f"{path}: no such run directory")
    config_path = path / "config.yaml"
    if not config_path.is_file():
        raise RecAdaptError(f"{path} is not a run directory: config.yaml is missing")
    text = config_path.read_text(encoding="utf-8")
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RecAdaptError(f"{config_path}: not valid YAML ({_first_line(err)})") from None
    if not isinstance(config, dict):
        raise RecAdaptError(f"{config_path}: expected a mapping of config sections")
    run = Run(path=path, label=label or path.name, config=config, config_text=text)
    metrics = read_json(path / "metrics.json", dict, optional=True)
    if metrics is not None:
        if not isinstance(metrics.get("test"), dict):
            raise RecAdaptError(f"{path / 'metrics.json'}: no 'test' section of metric values")
        run.metrics = metrics
    history = read_json(path / "history.json", list, optional=True) or []
    if not all(isinstance(row, dict) for row in history):
        raise RecAdaptError(f"{path / 'history.json'}: expected a list of per-epoch objects")
    run.history = history
    run.efficiency = read_json(path / "efficiency.json", dict, optional=True)
    ranks = read_json(path / "ranks.json", dict, optional=True)
    if ranks is not None and not {"protocol", "users", "ranks"} <= ranks.keys():
        raise RecAdaptError(f"{path / 'ranks.json'}: expected 'protocol', 'users' and 'ranks'")
    run.has_ranks = ranks is not None
    for name in ANALYSIS_FILES:
        value = read_json(path / name, (dict, list), optional=True)
        if value is not None:
            run.analyses[name] = value
    return run


def read_json(path: Path, kind: type | tuple[type, ...], optional: bool = False) -> Any:
    """The file's JSON value, which must be of ``kind``; ``None`` if absent and ``optional``."""
    if not path.is_file():
        if optional:
            return None
        raise RecAdaptError(f"{path} is missing")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RecAdaptError(f"{path}: not valid JSON ({_first_line(err)})") from None
    if not isinstance(value, kind):
        expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise RecAdaptError(f"{path}: expected a JSON {_json_name(expected)}, got "
                            f"{_json_name(type(value).__name__)}")
    return value


def unique_labels(paths: list[Path]) -> list[str]:
    """Shortest path tails that tell the runs apart (``full/cf_sasrec`` vs ``quick/...``)."""
    parts = [p.resolve().parts for p in paths]
    labels = []
    for i, own in enumerate(parts):
        for depth in range(1, len(own) + 1):
            tail = own[-depth:]
            if all(other[-depth:] != tail for j, other in enumerate(parts) if j != i):
                break
        labels.append("/".join(tail))
    return labels


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config sections as dotted keys (``train.lr``), lists kept as values."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _numbers(section: Any) -> dict[str, float]:
    if not isinstance(section, dict):
        return {}
    return {k: float(v) for k, v in section.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _json_name(python_name: str) -> str:
    names = {"dict": "object", "list": "array", "str": "string", "int": "number",
             "float": "number", "NoneType": "null", "bool": "boolean"}
    return " or ".join(names.get(n, n) for n in python_name.split(" or "))
