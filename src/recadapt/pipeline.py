"""From a config to data, model and run directory: the steps every command shares."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from recadapt.config import DataConfig, RunConfig, validate_config
from recadapt.data.ctr import CTRSplit, ctr_split
from recadapt.data.dataset import Dataset
from recadapt.data.splits import (
    NextItemSplit,
    cold_users,
    k_shot_users,
    leave_one_out,
    subsample_users,
)
from recadapt.errors import RecAdaptError
from recadapt.models.base import Recommender
from recadapt.models.registry import build_model, resolve_model


@dataclass
class Prepared:
    dataset: Dataset
    split: NextItemSplit | CTRSplit

    @property
    def is_ctr(self) -> bool:
        return isinstance(self.split, CTRSplit)


def resolve_source(config: RunConfig) -> RunConfig:
    """Make a relative data path absolute, so a run directory can be reopened from anywhere."""
    source = config.data.source
    if source != "dslabs" and Path(source).exists():
        config.data.source = str(Path(source).resolve())
    return config


def load_dataset(data: DataConfig) -> Dataset:
    """The dataset a run reads: its source through the reader, then the k-core filter (before
    any split; reports describe this one)."""
    from recadapt.data.filters import k_core
    from recadapt.data.readers import read_dataset

    dataset = read_dataset(
        data.source,
        format=data.format,
        columns=data.columns,
        text_fields=data.text_fields,
        title_field=data.title_field,
        name=data.name,
        item_path=data.item_path,
    )
    return k_core(dataset, data.k_core) if data.k_core > 0 else dataset


def prepare_data(config: RunConfig) -> Prepared:
    data = config.data
    dataset = load_dataset(data)
    if data.task == "ctr":
        ctr = data.ctr
        split = ctr_split(dataset, history_len=ctr.history_len,
                          label_threshold=ctr.label_threshold, negatives=ctr.negatives,
                          ratios=tuple(ctr.split), k_shot_train=ctr.k_shot, seed=ctr.seed,
                          max_eval_samples=ctr.max_eval_samples, eval_seed=config.eval.seed,
                          max_test_samples=ctr.max_test_samples)
        if ctr.retrieval is not None:  # RecLoRA 3.4 / ReLLa: relevant, not recent, behaviours
            from recadapt.data.retrieval import semantic_item_vectors

            vectors = semantic_item_vectors(dataset, ctr.retrieval, config.cache)
            r = ctr.retrieval
            split = replace(split, **{part: getattr(split, part).retrieved(
                vectors, r.long_len, r.short_len, r.long_from, r.short_from)
                for part in ("train", "valid", "test")})
        return Prepared(dataset, split)
    if data.cold_users is not None:  # valid: warm users (early stopping); test: cold users
        train_data, cold = cold_users(dataset, data.cold_users, data.cold_user_interactions,
                                      config.train.seed)
        split = replace(leave_one_out(train_data), dataset=dataset, test=cold)
    else:
        split = leave_one_out(dataset)
    if data.k_shot_users is not None:
        split = k_shot_users(split, data.k_shot_users, config.train.seed)
    if config.eval.max_users is not None:
        n, seed = config.eval.max_users, config.eval.seed
        split = replace(split, valid=subsample_users(split.valid, n, seed),
                        test=subsample_users(split.test, n, seed))
    return Prepared(dataset, split)


def item_counts_tensor(split: NextItemSplit | CTRSplit) -> torch.Tensor:
    return torch.from_numpy(split.item_counts()).float()


def read_run_config(run_dir: str | Path) -> RunConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RecAdaptError(f"{run_dir} is not a run directory: {path.name} is missing")
    return resolve_model(validate_config(yaml.safe_load(path.read_text(encoding="utf-8")) or {}))


#: training settings a prerequisite run inherits from the run that needs it
INHERITED_TRAIN = ("seed", "num_threads", "cpu", "mixed_precision", "monitor")


def stage_config(run: RunConfig, model: dict[str, Any], train: dict[str, Any],
                 data: dict[str, Any] | None = None) -> RunConfig:
    """The config of a prerequisite run (``Recommender.prerequisites``): the same data,
    encoders, cache and evaluation as ``run``, another ``model`` section, and ``train``
    settings over the defaults (seed, threads, device, precision and the monitored metric
    are inherited unless ``train`` sets them); ``data`` overrides part of the data section
    (RecLoRA's CTR model trains on the full split, not the LLM's K-shot subset)."""
    from recadapt.config import deep_merge

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
    from recadapt.train.checkpoint import load_model_weights

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
