"""From a run config to its data, and from a run folder back to its config and trained model:
the steps that training, evaluation, serving and reports share."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
import yaml

from recadapt.cache.item_vectors import semantic_item_vectors
from recadapt.config import RunConfig, validate_config
from recadapt.data.ctr import CTRSplit, build_samples, ctr_split
from recadapt.data.dataset import Dataset
from recadapt.data.load import load_dataset
from recadapt.data.splits import (
    NextItemSplit,
    cold_users,
    k_shot_users,
    leave_one_out,
    subsample_users,
)
from recadapt.errors import RecAdaptError
from recadapt.models.base import Recommender
from recadapt.models.registry import resolve_model, stored_model_section
from recadapt.train.checkpoint import load_model_weights


@dataclass
class Prepared:
    dataset: Dataset
    split: NextItemSplit | CTRSplit

    @property
    def is_ctr(self) -> bool:
        return isinstance(self.split, CTRSplit)


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
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if isinstance(raw.get("model"), dict):  # settings added since the run keep its behaviour
        raw["model"] = stored_model_section(raw["model"])
    return resolve_model(validate_config(raw))


@dataclass
class LoadedRun:
    config: RunConfig
    prepared: Prepared
    model: Recommender


def load_run(run_dir: str | Path) -> LoadedRun:
    """Reopen a finished run: its config, its data (re-read from the source) and best weights."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    weights = run_dir / "model.safetensors"
    if not weights.is_file():
        raise RecAdaptError(f"{run_dir} has no model.safetensors: the run has not finished")
    from recadapt.train.stages import build_with_stages  # stages read run configs from here

    prepared = prepare_data(config)
    model = build_with_stages(config, prepared.dataset)
    model.fit_statistics(item_counts_tensor(prepared.split))
    if prepared.is_ctr:
        model.fit_training_samples(prepared.split.train)  # type: ignore[attr-defined]
    load_model_weights(model, weights)
    model.eval()
    return LoadedRun(config, prepared, model)


def score_records(run_dir: str | Path, source: str | Path, progress: bool = False
                  ) -> dict[str, object]:
    """A finished CTR run scored on every record of another Alpaca file (``recadapt evaluate
    RUN --data FILE``): AUC, LogLoss and accuracy (probability >= 0.5 read as Yes).

    The run's model is rebuilt over the file's records (its config with ``data.source`` the
    file, ``data.format: alpaca``) and its trained weights loaded, which works for the models
    whose weights do not depend on the catalogue: the LLM scorers (tallrec, rella, atflrec in
    ``lora_mode: text``) and like-rate; ID models are refused in one line."""
    from recadapt.eval.metrics import accuracy
    from recadapt.eval.protocols import evaluate_ctr
    from recadapt.train.stages import build_with_stages

    run_dir, source = Path(run_dir), Path(source).expanduser()
    config = read_run_config(run_dir)
    weights = run_dir / "model.safetensors"
    if not weights.is_file():
        raise RecAdaptError(f"{run_dir} has no model.safetensors: the run has not finished")
    if config.data.task != "ctr":
        raise RecAdaptError(f"--data scores CTR runs on Alpaca records; {run_dir} is a "
                            f"data.task={config.data.task} run")
    if not source.is_file():
        raise RecAdaptError(f"--data: {source} is not a file; give one Alpaca .json or .jsonl "
                            "file (every record is scored)")
    ctr = config.data.ctr.model_copy(update={"retrieval": None, "k_shot": None})
    data = type(config.data)(task="ctr", source=str(source.resolve()), format="alpaca",
                             ctr=ctr)
    other = config.model_copy(update={"data": data})
    dataset = load_dataset(data)
    samples = build_samples(dataset, ctr.history_len)
    if samples.labels.min() == samples.labels.max():
        raise RecAdaptError(f"--data: every record of {source} answers "
                            f"{'Yes' if samples.labels[0] else 'No'}; AUC needs both answers")
    model = build_with_stages(other, dataset)
    try:
        load_model_weights(model, weights)
    except (RecAdaptError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RecAdaptError(
            f"--data: the weights of {run_dir} ({config.model['name']}) do not fit a model over "
            f"{source.name}'s records: only models that score text (tallrec, rella, atflrec with "
            f"lora_mode text) or like-rate score new records ({first[:160]})") from None
    model.eval()
    result = evaluate_ctr(model, samples, config.eval.batch_size, progress=progress)
    metrics = {**result.metrics, "Accuracy": accuracy(samples.labels, result.probs)}
    return {"protocol": "ctr", "data": str(source.resolve()), "records": len(samples),
            "positive_rate": samples.positive_rate, "metrics": metrics}
