"""Top-K recommendations from a trained run directory (the CLI's ``recommend`` and the HTTP
service, ``recadapt.serve``, share this)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from recadapt.config import RunConfig
from recadapt.data.batching import left_pad
from recadapt.errors import RecAdaptError
from recadapt.models.base import Recommender
from recadapt.pipeline import (
    Prepared,
    build_model,
    item_counts_tensor,
    prepare_data,
    read_run_config,
)
from recadapt.serve.index import HNSW_EF_SEARCH, ExactIndex, build_index
from recadapt.train.checkpoint import load_model_weights


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
    prepared = prepare_data(config)
    model = build_model(config, prepared.dataset)
    model.fit_statistics(item_counts_tensor(prepared.split))
    if prepared.is_ctr:
        model.fit_training_samples(prepared.split.train)  # type: ignore[attr-defined]
    load_model_weights(model, weights)
    model.eval()
    return LoadedRun(config, prepared, model)


def ranks_by_dot_product(model: Recommender) -> bool:
    """Whether the model's score is ``user_embeddings · item_embeddings`` (the contract's
    default), so an item index can rank for it; popularity, NeuMF and LLM scorers override
    ``score`` and are ranked through it instead."""
    return type(model).score is Recommender.score


@torch.no_grad()
def item_index(run: LoadedRun, ann_threshold: int | None = None,
               ef_search: int = HNSW_EF_SEARCH) -> ExactIndex | None:
    """The top-K index over the run's item vectors (exact unless the catalogue reaches
    ``ann_threshold``; ``ef_search`` trades HNSW speed for recall), or ``None`` for models
    that do not rank by a dot product."""
    if not ranks_by_dot_product(run.model):
        return None
    return build_index(run.model.item_embeddings(), ann_threshold, ef_search)


@torch.no_grad()
def rank(run: LoadedRun, history: np.ndarray, k: int,
         index: ExactIndex | None = None) -> list[tuple[int, float]]:
    """``(item index, score)`` of the top-``k`` items after ``history`` (item indices),
    history items excluded: ``index.search`` of the user vector when there is an index (the
    CLI and the HTTP service share this path), else the model's own ``score``."""
    if k <= 0:
        raise RecAdaptError(f"-k must be positive, got {k}")
    if len(history) == 0:
        raise RecAdaptError("the user has no history to recommend from")
    if run.prepared.is_ctr:
        raise RecAdaptError(f"{run.config.model['name']!r} was trained for data.task=ctr: it "
                            "scores given (user, item) pairs and cannot rank the catalogue")
    batch = {
        "history": torch.from_numpy(left_pad(history, run.config.data.max_seq_len)).unsqueeze(0),
        "user": torch.zeros(1, dtype=torch.long),
    }
    seen = np.unique(history).tolist()
    if index is not None:
        return index.search(run.model.user_embeddings(batch)[0], k, exclude=seen)
    scores = run.model.score(batch)[0].float().clone()
    scores[0] = -torch.inf
    scores[torch.as_tensor(seen, dtype=torch.long)] = -torch.inf
    k = min(k, int(torch.isfinite(scores).sum()))
    top = torch.topk(scores, k)
    return list(zip(top.indices.tolist(), top.values.tolist(), strict=True))


def recommend(run: LoadedRun, history: np.ndarray, k: int) -> list[dict]:
    """Top-``k`` items after ``history`` (item indices), history items excluded, exactly."""
    dataset = run.prepared.dataset
    return [
        {"item_id": str(dataset.item_ids[i]), "title": dataset.item_title(i), "score": s}
        for i, s in rank(run, history, k, item_index(run))
    ]


def user_history(run: LoadedRun, raw_user_id: str) -> np.ndarray:
    """All of a user's interactions (train, valid and test): recommend what comes next."""
    dataset = run.prepared.dataset
    return dataset.sequences()[dataset.user_index(raw_user_id)]
