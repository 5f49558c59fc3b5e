"""Prerequisite runs (``Recommender.prerequisites``): a model that builds on trained runs
(A-LLMRec's collaborative model and stage 1, RecLoRA's CTR model) declares them; each is
placed in ``RUN/stages/FIELD``, trained there, reused when it finished under the same config,
resumed when it stopped, and loaded frozen for the model that needs it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recadapt.config import RunConfig, deep_merge, validate_config
from recadapt.data.dataset import Dataset
from recadapt.errors import RecAdaptError
from recadapt.models.base import Recommender
from recadapt.models.registry import build_model, get_model, model_config, resolve_model
from recadapt.train.checkpoint import load_model_weights
from recadapt.train.runs import read_run_config


@dataclass
class Stage:
    """A prerequisite run (see ``Recommender.prerequisites``) and where it lives."""

    field: str
    config: RunConfig
    run_dir: Path


def plan_stages(config: RunConfig, run_dir: Path) -> tuple[RunConfig, list[Stage]]:
    """The model's prerequisite runs, each placed in ``run_dir/stages/FIELD``, and ``config``
    with those directories filled into the model fields (nothing is trained here)."""
    entry = get_model(str(config.model["name"]))
    needs = entry.model_class.prerequisites(model_config(config), config)
    if not needs:
        return config, []
    stages = [Stage(field, sub, run_dir / "stages" / field) for field, sub in needs.items()]
    raw = config.model_dump(mode="json")
    for stage in stages:
        raw["model"][stage.field] = str(stage.run_dir.resolve())
    return resolve_model(validate_config(raw)), stages


#: training settings a prerequisite run inherits from the run that needs it
INHERITED_TRAIN = ("seed", "num_threads", "cpu", "mixed_precision", "monitor")


def stage_config(run: RunConfig, model: dict[str, Any], train: dict[str, Any],
                 data: dict[str, Any] | None = None) -> RunConfig:
    """The config of a prerequisite run (``Recommender.prerequisites``): the same data,
    encoders, cache and evaluation as ``run``, another ``model`` section, and ``train``
    settings over the defaults (seed, threads, device, precision and the monitored metric
    are inherited unless ``train`` sets them); ``data`` overrides part of the data section
    (RecLoRA's CTR model trains on the full split, not the LLM's K-shot subset)."""
    raw = run.model_dump(mode="json")
    if data:
        raw["data"] = deep_merge(raw["data"], data)
    raw["model"] = dict(model)
    raw["train"] = {**{k: raw["train"][k] for k in INHERITED_TRAIN}, **train}
    return resolve_model(validate_config(raw))


def load_trained_run(run_dir: str, dataset: Dataset, key: str) -> tuple[Recommender, RunConfig]:
    """A finished run's model (its best weights), frozen and in eval mode: the prerequisite
    runs a model builds on (A-LLMRec's collaborative model and stage 1, RecLoRA's CTR model);
    ``key`` names the config field in errors."""
    folder = Path(run_dir)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise RecAdaptError(f"{key}: {folder} holds no trained model (model.safetensors); train "
                            "it first or leave the field empty to train it here")
    config = read_run_config(folder)
    model = build_model(config, dataset)
    load_model_weights(model, weights)
    for param in model.parameters():
        param.requires_grad_(False)
    return model.eval(), config
