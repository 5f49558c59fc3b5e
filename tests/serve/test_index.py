"""Exact and FAISS top-K: the exact path is the matrix product, the approximate kinds recall it
at the target they were tuned for, and a saved index is reloaded only for the same vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recadapt.serve.index import (
    PQ_K_FACTORS,
    ExactIndex,
    HNSWIndex,
    IVFIndex,
    IVFPQIndex,
    build_index,
    exact_top,
    fingerprint,
    recall,
)
from recadapt.serve.index_store import load_or_build


def _unit_vectors(count: int, dim: int = 64, seed: int = 0) -> torch.Tensor:
    vectors = torch.randn(count + 1, dim, generator=torch.Generator().manual_seed(seed))
    vectors = torch.nn.functional.normalize(vectors, dim=1)
    vectors[0] = 0  # padding row
    return vectors


def _clustered(count: int, dim: int = 32, clusters: int = 50, seed: int = 0) -> np.ndarray:
    """Vectors around a few centres (like trained item embeddings), row 0 zero."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    vectors = centres[rng.integers(clusters, size=count + 1)]
    vectors += 0.3 * rng.standard_normal(vectors.shape).astype(np.float32)
    vectors[0] = 0
    return vectors


def _queries(vectors: np.ndarray, count: int = 400, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = vectors[1 + rng.integers(len(vectors) - 1, size=count)]
    return rows + 0.3 * rng.standard_normal(rows.shape).astype(np.float32)


def test_exact_search_is_the_matrix_product_without_excluded_items() -> None:
    vectors = _unit_vectors(500)
    query = torch.randn(64)
    found = ExactIndex(vectors).search(query, 10, exclude=[3, 4])
    scores = vectors @ query
    scores[[0, 3, 4]] = -torch.inf
    assert [i for i, _ in found] == scores.topk(10).indices.tolist()
    assert [s for _, s in found] == pytest.approx(scores.topk(10).values.tolist())
    assert len(ExactIndex(vectors[:4]).search(query, 10, exclude=[1])) == 2
    # a batch answers each row as alone, with its own exclusions
    queries = torch.randn(3, 64)
    excludes = [[1, 2], [], [5]]
    batch = ExactIndex(vectors).search_batch(queries, 7, excludes)
    alone = [ExactIndex(vectors).search(q, 7, e) for q, e in zip(queries, excludes, strict=True)]
    assert [[i for i, _ in row] for row in batch] == [[i for i, _ in row] for row in alone]
    assert [[s for _, s in row] for row in batch] == [  # the product rounds per shape
        pytest.approx([s for _, s in row], abs=1e-5) for row in alone]


KIND_CLASSES = {"ivf": IVFIndex, "ivfpq": IVFPQIndex, "hnsw": HNSWIndex}


@pytest.mark.parametrize("kind", ["ivf", "ivfpq", "hnsw"])
def test_the_breadth_is_tuned_to_the_recall_target(kind) -> None:
    vectors = _clustered(6000)
    queries = _queries(vectors)
    index = build_index(vectors, queries, recall_target=0.9, kind=kind, threads=1)
    assert type(index) is KIND_CLASSES[kind]
    held = queries[1::2]  # the half it was not tuned on
    measured = recall(index, held, exact_top(vectors, held))
    assert index.recall_at_10 == pytest.approx(measured)
    assert measured >= 0.85, measured
    breadth = index.breadth
    assert index.params[index.breadth_name] == breadth
    if breadth > (10 if kind == "hnsw" else 1):  # one step narrower misses the target
        index.set_breadth(max(10, breadth // 2) if kind == "hnsw" else breadth - 1)
        assert recall(index, queries[0::2], exact_top(vectors, queries[0::2])) < \
            index.params["tuned_for"] or kind == "hnsw"
    # excluded items never come back; scores are the true inner products
    index.set_breadth(index.max_breadth())
    top = ExactIndex(vectors).search(torch.from_numpy(queries[0]), 5)
    kept = index.search(torch.from_numpy(queries[0]), 5, exclude=[i for i, _ in top[:2]])
    assert [i for i, _ in kept] == [i for i, _ in top[2:]] + [
        i for i, _ in ExactIndex(vectors).search(torch.from_numpy(queries[0]), 7)[5:]]
    assert all(s == pytest.approx(float(vectors[i] @ queries[0]), abs=1e-4) for i, s in kept)


def test_the_kind_follows_the_catalogue_size() -> None:
    vectors = _clustered(2000)
    small = build_index(vectors, _queries(vectors), ann_threshold=5000)
    assert type(small) is ExactIndex and small.recall_at_10 == 1.0
    assert type(build_index(vectors, ann_threshold=None)) is ExactIndex
    large = build_index(vectors, _queries(vectors), recall_target=0.95, ann_threshold=1000,
                        threads=1)
    assert isinstance(large, IVFIndex) and large.recall_at_10 >= 0.9
    assert large.params["recall_target"] == 0.95 and large.params["held_queries"] == 200
    with pytest.raises(ValueError, match="index kind"):
        build_index(vectors, kind="lsh")


def test_a_saved_index_is_reloaded_for_the_same_vectors_only(tmp_path) -> None:
    vectors = _clustered(3000)
    queries = _queries(vectors)
    asked = []

    def lazy():
        asked.append(1)
        return queries

    built = load_or_build(vectors, tmp_path, lazy, 0.9, "ivf", threads=1)
    assert built.params["source"].startswith("built") and asked == [1]
    meta = json.loads((tmp_path / "index.json").read_text())
    assert meta["vectors_sha256"] == fingerprint(vectors) and meta["count"] == 3000
    assert meta["kind"] == "faiss-ivf" and meta["params"]["nprobe"] == built.breadth
    assert meta["recall_at_10"] == built.recall_at_10

    loaded = load_or_build(vectors, tmp_path, lazy, 0.9, "ivf", threads=1)
    assert loaded.params["source"].startswith("loaded") and asked == [1]  # no queries needed
    assert loaded.breadth == built.breadth and loaded.recall_at_10 == built.recall_at_10
    probe = torch.from_numpy(queries[:20])
    assert loaded.search_batch(probe, 10, [[]] * 20) == built.search_batch(probe, 10, [[]] * 20)

    changed = vectors.copy()
    changed[5] += 1
    rebuilt = load_or_build(changed, tmp_path, lazy, 0.9, "ivf", threads=1)
    assert "item vectors changed" in rebuilt.params["source"] and asked == [1, 1]
    assert json.loads((tmp_path / "index.json").read_text())["vectors_sha256"] == \
        fingerprint(changed)
    # another kind asked for: rebuilt too; another recall target: re-tuned, not rebuilt
    assert "hnsw" in load_or_build(changed, tmp_path, lazy, 0.9, "hnsw", threads=1).kind
    retuned = load_or_build(changed, tmp_path, lazy, 0.5, "hnsw", threads=1)
    assert "re-tuned" in retuned.params["source"] and retuned.params["recall_target"] == 0.5


def test_added_items_are_found_by_every_kind_and_similar_is_cosine() -> None:
    vectors = _unit_vectors(300)
    for index in (ExactIndex(vectors), HNSWIndex(vectors), IVFIndex(vectors),
                  IVFPQIndex(vectors)):
        if isinstance(index, IVFIndex):
            index.set_breadth(index.max_breadth())
        index.add(3 * vectors[7:8])  # a scaled twin of item 7: cosine 1, inner product 3
        assert index.size == 301
        assert index.search(vectors[7], 1) == [(301, pytest.approx(3.0, abs=1e-5))]
        assert index.similar(301, 1) == [(7, pytest.approx(1.0, abs=1e-5))]


def test_an_ivfpq_index_reranks_exactly_and_is_saved_with_its_k_factor(tmp_path) -> None:
    """The codes only choose candidates: the scores are exact inner products, and a reloaded
    index (codes, flat vectors, nprobe, k_factor) answers the same."""
    vectors = _unit_vectors(4000, dim=32)
    queries = _queries(vectors.numpy())
    built = load_or_build(vectors, tmp_path, queries, 0.9, "ivfpq", threads=1)
    assert built.kind == "faiss-ivfpq" and built.params["k_factor"] in PQ_K_FACTORS
    assert [t["k_factor"] for t in built.params["k_factor_tried"]] == list(PQ_K_FACTORS)
    assert json.loads((tmp_path / "index.json").read_text())["kind"] == "faiss-ivfpq"
    probe = torch.from_numpy(queries[:20])
    found = built.search_batch(probe, 10, [[]] * 20)
    for row, query in zip(found, probe, strict=True):
        assert all(s == pytest.approx(float(vectors[i] @ query), abs=1e-5) for i, s in row)
    loaded = load_or_build(vectors, tmp_path, None, 0.9, "ivfpq", threads=1)
    assert loaded.params["source"].startswith("loaded") and type(loaded) is IVFPQIndex
    assert (loaded.breadth, loaded.params["k_factor"]) == (built.breadth,
                                                            built.params["k_factor"])
    assert loaded.structure.k_factor == built.params["k_factor"]
    assert loaded.search_batch(probe, 10, [[]] * 20) == found
    loaded.structure.k_factor = 1.0  # without re-ranking the codes alone recall less
    assert recall(loaded, queries, exact_top(vectors.numpy(), queries)) < built.recall_at_10


def test_auto_races_ivfpq_only_where_ivf_scans_many_cells() -> None:
    clustered = _clustered(4000)
    kept = build_index(clustered, _queries(clustered), recall_target=0.9, ann_threshold=1000,
                       threads=1)
    assert type(kept) is IVFIndex and kept.params["chosen"].startswith("auto: ivf (nprobe")
    assert kept.params["held_ms_per_query"] > 0

    spread = _unit_vectors(4000, dim=32).numpy()  # no structure: most cells must be probed
    raced = build_index(spread, None, recall_target=0.9, ann_threshold=1000, threads=1)
    assert "ivf nprobe scans" in raced.params["chosen"], raced.params
    ivf, pq = raced.params["raced"]["ivf"], raced.params["raced"]["ivfpq"]
    pq_wins = pq["recall_at_10"] >= 0.9 and pq["ms_per_query"] < ivf["ms_per_query"]
    assert type(raced) is (IVFPQIndex if pq_wins else IVFIndex), raced.params
    assert raced.recall_at_10 == (pq if pq_wins else ivf)["recall_at_10"] >= 0.85


@pytest.mark.parametrize("pq_ms", [0.5, 2.0])
def test_auto_keeps_the_faster_of_the_two(monkeypatch, pq_ms) -> None:
    import recadapt.serve.index as index_module

    monkeypatch.setattr(index_module, "ms_per_query",
                        lambda index, queries: pq_ms if type(index) is IVFPQIndex else 1.0)
    spread = _unit_vectors(4000, dim=32).numpy()
    raced = build_index(spread, None, recall_target=0.9, ann_threshold=1000, threads=1)
    assert type(raced) is (IVFPQIndex if pq_ms < 1.0 else IVFIndex), raced.params
    assert raced.params["raced"]["ivfpq"]["ms_per_query"] == pq_ms
