"""One named run: its config, its folder (reused, resumed or set aside) and its results row."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recadapt.errors import RecAdaptError
from recadapt.io import write_text

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





def read_json(path: Path) -> Any:
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
    metrics = read_json(run_dir / FINISHED)
    efficiency = read_json(run_dir / "efficiency.json")
    history_path = run_dir / "history.json"
    history = read_json(history_path) if history_path.is_file() else []
    return {**run.row_fields(metrics.get("dataset")), **metrics["test"],
            "valid": metrics["valid"], **efficiency, "curve": learning_curve(history)}


