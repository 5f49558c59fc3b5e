"""Semantic behaviour retrieval for CTR samples: RecLoRA's Long-Short Modality Retriever (3.4)
and ReLLa's retrieval (TALLRec + the same retrieval in the prompt).

Instead of the most recent behaviours, each sample keeps the behaviours most *relevant* to its
target item: every item's text runs once through an LLM (the packaged SmolLM2-135M by default),
its last layer's last-token state is the item's representation (through the library's state
cache, so it is computed once per catalogue and model), PCA reduces it to ``dims`` dimensions
(denoising, as in the paper), and the cosine similarity to the target ranks the behaviours of
the sample's history pool (``data.ctr.history_len``, e.g. 100 behaviours before it). The top
``long_len`` (e.g. 60) become the ID history the CTR model reads, the top ``short_len`` (e.g.
10) the text history of the prompt (``text_history*``); both keep time order. Choices the paper
leaves open: the item text is the item's title (``{title}``); ties keep the more recent
behaviour; PCA is fit on all items of the catalogue (no label is involved). The item vectors
come from the state cache (:func:`recadapt.cache.item_vectors.semantic_item_vectors`); this
module ranks behaviours by them.
"""

from __future__ import annotations

import numpy as np

from recadapt.errors import ConfigError


def pca_unit_vectors(states: np.ndarray, dims: int) -> np.ndarray:
    """Rows projected on their ``dims`` leading principal components, then L2-normalised."""
    centred = states - states.mean(axis=0, keepdims=True)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ components[:dims].T
    norms = np.linalg.norm(reduced, axis=1, keepdims=True)
    return reduced / np.maximum(norms, 1e-12)


def top_k_positions(history: np.ndarray, targets: np.ndarray, vectors: np.ndarray,
                    k: int) -> np.ndarray:
    """``[n, k]`` column indices into ``history`` of the ``k`` behaviours most similar to each
    target (cosine; ties → the more recent), in time order, left-padded with ``-1`` when a
    sample has fewer than ``k`` behaviours."""
    if history.size and (history.max() >= len(vectors) or targets.max() >= len(vectors)):
        raise ConfigError("retrieval: an item index exceeds the item representations")
    sims = np.einsum("nhd,nd->nh", vectors[history], vectors[targets])
    width = history.shape[1]
    recency = np.arange(width) / (10.0 * max(width, 1))  # tie-break, far below a cosine step
    score = np.where(history > 0, sims + 1e-9 * recency, -np.inf)
    k_eff = min(k, width)
    chosen = np.argsort(-score, axis=1, kind="stable")[:, :k_eff]
    chosen_score = np.take_along_axis(score, chosen, axis=1)
    chosen = np.where(np.isfinite(chosen_score), chosen, -1)
    chosen.sort(axis=1)  # time order; -1 (missing) first = left padding
    if k_eff < k:
        chosen = np.hstack([np.full((len(chosen), k - k_eff), -1), chosen])
    return chosen


def gather(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``values[row, positions]`` with ``-1`` positions as 0 (padding)."""
    picked = np.take_along_axis(values, np.maximum(positions, 0), axis=1)
    return np.where(positions >= 0, picked, 0).astype(values.dtype)


def recent_positions(history: np.ndarray, k: int) -> np.ndarray:
    """``[n, k]`` column indices of the ``k`` most recent behaviours (left-padded history), in
    time order, ``-1`` where the sample has fewer — the no-retrieval counterpart of
    :func:`top_k_positions`."""
    width = history.shape[1]
    columns = np.arange(width - k, width)
    positions = np.broadcast_to(columns, (len(history), k)).copy()
    inside = positions >= 0
    valid = np.zeros_like(positions, dtype=bool)
    valid[:, inside[0]] = history[:, positions[0, inside[0]]] > 0
    return np.where(valid, positions, -1)
