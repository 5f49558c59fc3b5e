"""Prerequisite runs: a model that builds on trained runs (A-LLMRec's collaborative model and
stage 1, RecLoRA's CTR model) declares them (``Recommender.prerequisites``: a
:class:`~recadapt.config.StageConfig` per field of its config); this module turns each
declaration into a run config, places it in ``RUN/stages/FIELD`` (:func:`plan_stages`), trains
it there, reuses it when it finished under the same config and resumes it when it stopped
(:func:`ensure_stage`), and loads the finished runs frozen for the model that needs them
(:func:`build_with_stages`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from recadapt.config import RunConfig, StageConfig, deep_merge, dump_config, validate_config
from recadapt.data.dataset import Dataset
from recadapt.distributed import process_state
from recadapt.errors import ConfigError, RecAdaptError
from recadapt.models.base import Recommender
from recadapt.models.registry import build_model, get_model, model_config, resolve_model
from recadapt.train.checkpoint import load_model_weights
from recadapt.train.runs import read_run_config

if TYPE_CHECKING:
    from recadapt.train.runs import Prepared


def fingerprint(config_text: str) -> str:
    """A run's identity: the hash of its dumped resolved config (its ``config.yaml``)."""
    return hashlib.sha256(config_text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Stage:
    """A prerequisite run to train in ``RUN/stages/FIELD``: the model-config field that
    declared it, its config (before its own prerequisites are placed) and its folder."""

    field: str
    config: RunConfig
    run_dir: Path

    @property
    def resolved(self) -> RunConfig:
        """Its config with its own prerequisites placed under its folder, as its
        ``config.yaml`` stores it."""
        return plan_stages(self.config, self.run_dir)[0]

    @property
    def fingerprint(self) -> str:
        return fingerprint(dump_config(self.resolved))


def declared_stages(config: RunConfig) -> dict[str, StageConfig]:
    """The prerequisite runs the model of ``config`` declares, by model-config field."""
    entry = get_model(str(config.model["name"]))
    return entry.model_class.prerequisites(model_config(config), config)


def plan_stages(config: RunConfig, run_dir: Path) -> tuple[RunConfig, list[Stage]]:
    """The declared prerequisites without a given run, each placed in
    ``run_dir/stages/FIELD``, and ``config`` with those folders filled into ``model.FIELD.run``
    (nothing is trained here)."""
    stages = [Stage(field, stage_config(config, stage), run_dir / "stages" / field)
              for field, stage in declared_stages(config).items() if stage.run is None]
    if not stages:
        return config, []
    raw = resolve_model(config).model_dump(mode="json")
    for stage in stages:
        raw["model"][stage.field]["run"] = str(stage.run_dir.resolve())
    return resolve_model(validate_config(raw)), stages


#: training settings a prerequisite run inherits from the run that needs it
INHERITED_TRAIN = ("seed", "num_threads", "cpu", "mixed_precision", "monitor")


def stage_config(run: RunConfig, stage: StageConfig) -> RunConfig:
    """The config of a prerequisite run: the same data, encoders, cache and evaluation as
    ``run``, the stage's ``model`` section, and its ``train`` settings over the defaults (seed,
    threads, device, precision and the monitored metric are inherited unless it sets them);
    its ``data`` overrides part of the data section (RecLoRA's CTR model trains on the full
    split, not the LLM's K-shot subset)."""
    raw = run.model_dump(mode="json")
    if stage.data:
        raw["data"] = deep_merge(raw["data"], stage.data)
    raw["model"] = dict(stage.model)
    raw["train"] = {**{k: raw["train"][k] for k in INHERITED_TRAIN}, **stage.train}
    return resolve_model(validate_config(raw))


def ensure_stage(stage: Stage, progress: bool, prepared: Prepared | None) -> None:
    """Train a prerequisite run, resume it, or reuse it when it finished with this config (a
    finished run of another config is refused); ``prepared``: the run's data, when the stage
    trains on the same."""
    from recadapt.train.loop import train_run  # the loop plans its stages with this module

    folder = stage.run_dir
    if (folder / "metrics.json").is_file():
        stored = (folder / "config.yaml").read_text(encoding="utf-8")
        if fingerprint(stored) != stage.fingerprint:
            raise RecAdaptError(
                f"{folder} holds a finished {stage.field} run of another config; delete that "
                "folder to retrain it, or choose another --out")
        return
    if progress and process_state().is_main_process:
        tqdm.write(f"training prerequisite {stage.field} into {folder}")
    resume = (folder / "checkpoints" / "last.safetensors").is_file()
    train_run(stage.config, folder, resume=resume, progress=progress, prepared=prepared)


def stage_run(field: str, run_dir: str | Path) -> Path:
    """The run of prerequisite ``field`` given as ``run_dir``: that run, or, when it is a run
    built on a ``field`` prerequisite of its own (an A-LLMRec stage-1 run on its collaborative
    model ``cf``), that prerequisite's run."""
    folder = Path(run_dir)
    if not (folder / "config.yaml").is_file():
        return folder  # load_trained_run says what is missing
    inner = declared_stages(read_run_config(folder)).get(field)
    if inner is None or inner.run is None:
        return folder
    return stage_run(field, inner.run)


def build_with_stages(config: RunConfig, dataset: Dataset) -> Recommender:
    """The model of ``config`` on ``dataset``, given the finished prerequisite runs it
    declares, each loaded frozen (``Recommender.create`` receives them by field)."""
    loaded: dict[str, Recommender] = {}
    for field, stage in declared_stages(config).items():
        key = f"model.{field}.run"
        if stage.run is None:
            raise ConfigError(f"{key}: give a trained run (train_run trains one into "
                              f"RUN/stages/{field} when it is empty)")
        loaded[field], _ = load_trained_run(stage_run(field, stage.run), dataset, key)
    return build_model(config, dataset, **loaded)


def load_trained_run(run_dir: str | Path, dataset: Dataset, key: str
                     ) -> tuple[Recommender, RunConfig]:
    """A finished run's model (its best weights, built on its own prerequisites), frozen and
    in eval mode; ``key`` names the config field in errors."""
    folder = Path(run_dir)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise RecAdaptError(f"{key}: {folder} holds no trained model (model.safetensors); train "
                            "it first or leave the field empty to train it here")
    config = read_run_config(folder)
    model = build_with_stages(config, dataset)
    load_model_weights(model, weights)
    for param in model.parameters():
        param.requires_grad_(False)
    return model.eval(), config
