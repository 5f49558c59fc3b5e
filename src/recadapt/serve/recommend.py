"""Top-K recommendations from a trained run directory (the CLI's ``recommend`` and the HTTP
service, ``recadapt.serve``, share this)."""

from __future__ import annotations

import numpy as np
import torch

from recadapt.data.batching import left_pad
from recadapt.errors import RecAdaptError
from recadapt.models.base import Recommender
from recadapt.serve.index import HNSW_EF_SEARCH, ExactIndex, build_index
from recadapt.train.runs import LoadedRun


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
