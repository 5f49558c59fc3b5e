"""Top-K recommendations from a trained run directory (the CLI's ``recommend`` and the HTTP
service, ``recadapt.serve``, share this)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from recadapt.data.batching import left_pad
from recadapt.errors import RecAdaptError
from recadapt.models.base import Recommender
from recadapt.serve.index import (
    DEFAULT_ANN_THRESHOLD,
    DEFAULT_RECALL_TARGET,
    ExactIndex,
    _top_rows,
)
from recadapt.serve.index_store import load_or_build
from recadapt.train.runs import LoadedRun

#: user histories per forward when the service samples query vectors at start
QUERY_BATCH = 256


def ranks_by_dot_product(model: Recommender) -> bool:
    """Whether the model's score is ``user_embeddings · item_embeddings`` (the contract's
    default), so an item index can rank for it; popularity, NeuMF and LLM scorers override
    ``score`` and are ranked through it instead."""
    return type(model).score is Recommender.score


def check_rankable(run: LoadedRun) -> None:
    if run.prepared.is_ctr:
        raise RecAdaptError(f"{run.config.model['name']!r} was trained for data.task=ctr: it "
                            "scores given (user, item) pairs and cannot rank the catalogue")


@torch.no_grad()
def user_vectors(run: LoadedRun, padded: np.ndarray) -> torch.Tensor:
    """``[len(padded), d]`` float32 user vectors of left-padded histories, ``QUERY_BATCH`` at
    a time (the same forward as :func:`rank_batch`)."""
    return torch.cat([run.model.user_embeddings(_batch(padded[i:i + QUERY_BATCH])).float()
                      for i in range(0, len(padded), QUERY_BATCH)])


@torch.no_grad()
def user_queries(run: LoadedRun, padded: np.ndarray, count: int = 1000,
                 seed: int = 0, known: torch.Tensor | None = None) -> np.ndarray:
    """``[≤ count, d]`` user vectors of a sample of the run's users (``padded``: their
    left-padded histories; ``known``: their vectors when already computed, so no forward
    runs), topped up with item vectors when there are fewer users: the queries an index is
    tuned and measured on."""
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(padded), min(count, len(padded)), replace=False))
    if not len(chosen):
        queries = np.zeros((0, 0), np.float32)
    else:
        queries = (known[chosen] if known is not None else user_vectors(run, padded[chosen]))
        queries = queries.float().numpy()
    if len(queries) < count:
        items = run.model.item_embeddings().float().numpy()[1:]
        extra = rng.choice(len(items), min(count - len(queries), len(items)), replace=False)
        queries = items[extra] if not len(queries) else np.concatenate([queries, items[extra]])
    return np.ascontiguousarray(queries, dtype=np.float32)


@torch.no_grad()
def item_index(run: LoadedRun, ann_threshold: int | None = None,
               recall_target: float = DEFAULT_RECALL_TARGET, kind: str = "auto",
               folder=None, padded: np.ndarray | None = None,
               known: torch.Tensor | None = None) -> ExactIndex | None:
    """The top-K index over the run's item vectors (:func:`serve.index_store.load_or_build`: exact
    below ``ann_threshold`` items, else tuned to ``recall_target`` on user vectors — rows of
    ``known`` when given — and saved in ``folder``), or ``None`` for models that do not rank
    by a dot product."""
    if not ranks_by_dot_product(run.model):
        return None
    vectors = run.model.item_embeddings()

    def queries() -> np.ndarray:
        histories = padded if padded is not None else padded_histories(run)
        return user_queries(run, histories, known=known)

    return load_or_build(vectors, folder, queries, recall_target, kind, ann_threshold)


def padded_histories(run: LoadedRun) -> np.ndarray:
    """``[num_users, max_seq_len]`` every user's most recent items, left-padded."""
    length = run.config.data.max_seq_len
    return np.stack([left_pad(s, length) for s in run.prepared.dataset.sequences()]) \
        if run.prepared.dataset.num_users else np.zeros((0, length), np.int64)


def _batch(padded: np.ndarray) -> dict[str, torch.Tensor]:
    return {"history": torch.from_numpy(np.ascontiguousarray(padded, dtype=np.int64)),
            "user": torch.zeros(len(padded), dtype=torch.long)}


@torch.no_grad()
def rank_batch(run: LoadedRun, padded: np.ndarray, seen: Sequence[np.ndarray],
               k: int, index: ExactIndex | None = None,
               vectors: torch.Tensor | None = None) -> list[list[tuple[int, float]]]:
    """:func:`rank` of several histories at once (``padded``: ``[B, max_seq_len]``, ``seen``:
    each one's items to exclude): one sequence-model forward and one search for the batch.
    ``vectors``: the batch's user vectors when already known (the forward is skipped)."""
    if index is not None:
        if vectors is None:
            vectors = run.model.user_embeddings(_batch(padded))
        return index.search_batch(vectors, k, seen)
    return _top_rows(run.model.score(_batch(padded)).float(), k, seen)


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
    check_rankable(run)
    padded = left_pad(np.asarray(history, dtype=np.int64), run.config.data.max_seq_len)
    return rank_batch(run, padded[None], [np.unique(history)], k, index)[0]


def recommend(run: LoadedRun, history: np.ndarray, k: int) -> list[dict]:
    """Top-``k`` items after ``history`` (item indices), history items excluded, exactly."""
    dataset = run.prepared.dataset
    return [
        {"item_id": str(dataset.item_ids[i]), "title": dataset.item_title(i), "score": s}
        for i, s in rank(run, history, k, item_index(run, ann_threshold=None))
    ]


def user_history(run: LoadedRun, raw_user_id: str) -> np.ndarray:
    """All of a user's interactions (train, valid and test): recommend what comes next."""
    dataset = run.prepared.dataset
    return dataset.sequences()[dataset.user_index(raw_user_id)]


__all__ = ["DEFAULT_ANN_THRESHOLD", "item_index", "rank", "rank_batch", "recommend",
           "user_history", "user_vectors"]
