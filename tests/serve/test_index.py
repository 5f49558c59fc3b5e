"""Exact and FAISS top-K: the exact path is the matrix product, the HNSW path recalls it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recadapt.serve.index import ExactIndex, FaissIndex, build_index


def _unit_vectors(count: int, dim: int = 64, seed: int = 0) -> torch.Tensor:
    vectors = torch.randn(count + 1, dim, generator=torch.Generator().manual_seed(seed))
    vectors = torch.nn.functional.normalize(vectors, dim=1)
    vectors[0] = 0  # padding row
    return vectors


def test_exact_search_is_the_matrix_product_without_excluded_items() -> None:
    vectors = _unit_vectors(500)
    query = torch.randn(64)
    found = ExactIndex(vectors).search(query, 10, exclude=[3, 4])
    scores = vectors @ query
    scores[[0, 3, 4]] = -torch.inf
    assert [i for i, _ in found] == scores.topk(10).indices.tolist()
    assert [s for _, s in found] == pytest.approx(scores.topk(10).values.tolist())
    assert len(ExactIndex(vectors[:4]).search(query, 10, exclude=[1])) == 2


def test_hnsw_recalls_the_exact_top_10_on_random_embeddings() -> None:
    vectors = _unit_vectors(20_000)
    exact, approximate = ExactIndex(vectors), build_index(vectors, ann_threshold=10_000)
    assert isinstance(approximate, FaissIndex) and approximate.kind == "faiss-hnsw"
    queries = torch.randn(200, 64, generator=torch.Generator().manual_seed(1))
    recall = np.mean([
        len({i for i, _ in exact.search(q, 10)} & {i for i, _ in approximate.search(q, 10)}) / 10
        for q in queries
    ])
    assert recall >= 0.9, recall
    # excluded items never come back; scores are the true inner products
    top = exact.search(queries[0], 5)
    kept = approximate.search(queries[0], 5, exclude=[i for i, _ in top[:2]])
    assert not {i for i, _ in top[:2]} & {i for i, _ in kept}
    assert all(s == pytest.approx(float(vectors[i] @ queries[0]), abs=1e-5) for i, s in kept)


def test_added_items_are_found_by_both_kinds_and_similar_is_cosine() -> None:
    vectors = _unit_vectors(300)
    for index in (ExactIndex(vectors), FaissIndex(vectors)):
        index.add(3 * vectors[7:8])  # a scaled twin of item 7: cosine 1, inner product 3
        assert index.size == 301
        assert index.search(vectors[7], 1) == [(301, pytest.approx(3.0, abs=1e-5))]
        assert index.similar(301, 1) == [(7, pytest.approx(1.0, abs=1e-5))]
    assert isinstance(build_index(vectors, ann_threshold=None), ExactIndex)
    assert type(build_index(vectors, ann_threshold=301)) is ExactIndex
