"""Top-K over item vectors: exact, or approximate (FAISS IVF-Flat, IVF-PQ or HNSW) tuned to a
recall.

Rows are item indices: row 0 is the padding item and never returned, rows ``1..n`` the items.
Recommendation ranks by **inner product** (the models' own score, ``user · item``); item
similarity by **cosine** and always exactly (a product over precomputed norms). Every kind holds
the float32 vectors; the FAISS kinds add an inner-product structure that answers ``search``.

Which kind and which search breadth is measured, not guessed (:func:`build_index`): below
``ann_threshold`` items the exact product is cheap enough; from there on an IVF-Flat index
(``nlist`` ≈ 4·√n, trained on a sample) whose ``nprobe`` is the smallest that reaches the
recall target (plus a margin) on tuning queries (bisection against the exact top-10); the
recall reported is measured on *other* held queries. Where that nprobe scans a large share of
the cells (vectors that cluster poorly), an IVF-PQ index is built and tuned too, and the one
that searches the held queries faster at the target is kept. Saving and reloading a built index
beside the run is :mod:`recadapt.serve.index_store`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from recadapt.train.checkpoint import tensors_sha256

#: catalogues of at least this many items get an approximate index by default (below it one
#: matrix-vector product costs well under a millisecond on one core)
DEFAULT_ANN_THRESHOLD = 50_000
#: the share of the exact top-10 the approximate index must find on held queries
DEFAULT_RECALL_TARGET = 0.95
#: HNSW neighbours per node and construction breadth (efSearch is tuned like nprobe)
HNSW_M = 32
HNSW_EF_SEARCH = 256
HNSW_EF_CONSTRUCTION = 80
#: IVF training: at most this many sampled vectors, k-means iterations
IVF_TRAIN_SAMPLE = 200_000
IVF_NITER = 10
#: IVF-PQ: candidates re-ranked exactly per result (k_factor × k from the codes); tuning tries
#: each and keeps the one whose tuned nprobe answers the tuning queries fastest
PQ_K_FACTOR = 32
PQ_K_FACTORS = (16, 64, 256)
#: the breadth is tuned for the target plus this, so that the recall measured on the *held*
#: queries (500 by default: a standard error near 0.01) lands at the target, not just below
TUNE_MARGIN = 0.01
#: ``auto``: an IVF-Flat index whose tuned nprobe scans more than this share of its cells is
#: raced against IVF-PQ (benchmarks/results/serve_100k_pq.json: on 100k random unit vectors,
#: nprobe 438 of 1,024, IVF-PQ serves at 1.19 ms sequential p50 against IVF-Flat's 1.47; on
#: tiled trained vectors, nprobe 1 of 1,024, IVF-Flat is the faster, 0.61 against 0.70)
AUTO_PQ_SHARE = 0.05
#: held queries searched one at a time to measure an index's milliseconds per query
TIMED_QUERIES = 200
K = 10
KINDS = ("auto", "exact", "ivf", "ivfpq", "hnsw")


def _as_matrix(vectors: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().float().cpu().numpy()
    return np.ascontiguousarray(vectors, dtype=np.float32)


def fingerprint(vectors: torch.Tensor | np.ndarray) -> str:
    """SHA-256 of the float32 item-vector matrix (padding row included), its shape and dtype:
    the checkpoints' tensor hash (:func:`recadapt.train.checkpoint.tensors_sha256`)."""
    return tensors_sha256({"item_vectors": torch.from_numpy(_as_matrix(vectors))})


def all_cores() -> int:
    """The cores this process may run on (its affinity), for building."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class ExactIndex:
    """Exact top-K by inner product (``search``) and cosine (``similar``)."""

    kind = "exact"

    def __init__(self, vectors: torch.Tensor | np.ndarray) -> None:
        table = torch.as_tensor(vectors).detach().float().cpu().contiguous()
        self.vectors = table
        self.norms = table.norm(dim=1).clamp_min(1e-12)
        #: how it was chosen and measured (``/health``)
        self.params: dict[str, Any] = {}
        self.recall_at_10: float | None = 1.0

    @property
    def size(self) -> int:
        """Number of items (padding excluded)."""
        return len(self.vectors) - 1

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def add(self, vectors: torch.Tensor | np.ndarray) -> None:
        """Append items (they take the next indices)."""
        new = torch.as_tensor(vectors).detach().float().cpu()
        self.vectors = torch.cat([self.vectors, new])
        self.norms = torch.cat([self.norms, new.norm(dim=1).clamp_min(1e-12)])

    def search(self, query: torch.Tensor, k: int,
               exclude: Iterable[int] = ()) -> list[tuple[int, float]]:
        """The ``k`` items of highest ``query · item``, ``exclude`` (indices) left out."""
        return self.search_batch(query.reshape(1, -1), k, [list(exclude)])[0]

    def search_batch(self, queries: torch.Tensor | np.ndarray, k: int,
                     excludes: Sequence[Iterable[int]]) -> list[list[tuple[int, float]]]:
        """``search`` of each row of ``queries`` with its own exclusions, in one product."""
        scores = torch.as_tensor(queries).float() @ self.vectors.T  # a fresh tensor: no clone
        return _top_rows(scores, k, excludes)

    def similar(self, item: int, k: int) -> list[tuple[int, float]]:
        """The ``k`` items of highest cosine with ``item`` (itself excluded)."""
        cosine = (self.vectors @ self.vectors[item]) / (self.norms * self.norms[item])
        return _top_rows(cosine.unsqueeze(0), k, [[item]])[0]


def _top_rows(scores: torch.Tensor, k: int,
              excludes: Sequence[Iterable[int]]) -> list[list[tuple[int, float]]]:
    """Top-``k`` of each row of ``scores`` (modified in place: padding and exclusions at -inf),
    one ``topk`` for the batch; a row returns at most its number of allowed items."""
    scores[:, 0] = -torch.inf
    excluded = [np.unique(np.asarray(list(e), dtype=np.int64)) for e in excludes]
    rows = np.repeat(np.arange(len(excluded)), [len(e) for e in excluded])
    if len(rows):
        scores[torch.from_numpy(rows), torch.from_numpy(np.concatenate(excluded))] = -torch.inf
    size = scores.shape[1] - 1
    allowed = [max(0, size - int(((e >= 1) & (e <= size)).sum())) for e in excluded]
    top = torch.topk(scores, min(k, size), dim=1)
    indices, values = top.indices.tolist(), top.values.tolist()
    return [list(zip(i[:min(k, a)], v[:min(k, a)], strict=True))
            for i, v, a in zip(indices, values, allowed, strict=True)]


class FaissIndex(ExactIndex):
    """Approximate inner-product top-K through a FAISS index over items ``1..n`` (FAISS id
    ``j`` is item ``j + 1``); ``similar`` stays exact. Returned scores are true inner products
    (flat codes). Subclasses set ``structure`` and the search breadth (:meth:`set_breadth`)."""

    kind = "faiss"
    breadth_name = ""

    def __init__(self, vectors: torch.Tensor | np.ndarray, structure: Any = None) -> None:
        super().__init__(vectors)
        self.structure = structure if structure is not None else self._build()
        self.recall_at_10 = None

    def _build(self) -> Any:
        raise NotImplementedError

    @property
    def breadth(self) -> int:
        raise NotImplementedError

    def set_breadth(self, value: int) -> None:
        raise NotImplementedError

    def max_breadth(self) -> int:
        raise NotImplementedError

    def tune_breadth(self, queries: np.ndarray, truth: np.ndarray, target: float) -> None:
        """Set the search breadth for ``target`` recall on ``queries`` (:func:`tune`)."""
        tune(self, queries, truth, target)

    def add(self, vectors: torch.Tensor | np.ndarray) -> None:
        before = len(self.vectors)
        super().add(vectors)
        self.structure.add(self.vectors[before:].numpy())

    def search_batch(self, queries: torch.Tensor | np.ndarray, k: int,
                     excludes: Sequence[Iterable[int]]) -> list[list[tuple[int, float]]]:
        excluded = [set(e) for e in excludes]
        wanted = min(k + max((len(e) for e in excluded), default=0), self.size)
        scores, ids = self.structure.search(_as_matrix(queries), wanted)
        out = []
        for row_scores, row_ids, skip in zip(scores, ids, excluded, strict=True):
            found = [(int(j) + 1, float(s)) for j, s in zip(row_ids, row_scores, strict=True)
                     if j >= 0 and int(j) + 1 not in skip]
            out.append(found[:k])
        return out


class IVFIndex(FaissIndex):
    """FAISS ``IndexIVFFlat`` (inner product): ``nlist`` k-means cells, a query scans the
    ``nprobe`` cells nearest it; new items are assigned to their cell and found at once."""

    kind = "faiss-ivf"
    breadth_name = "nprobe"

    def __init__(self, vectors: torch.Tensor | np.ndarray, nlist: int | None = None,
                 structure: Any = None) -> None:
        self.nlist = nlist or default_nlist(len(vectors) - 1)
        super().__init__(vectors, structure)
        self.nlist = int(self._ivf().nlist)
        self.params = {"nlist": self.nlist, "nprobe": self.breadth}

    def _ivf(self) -> Any:
        """The IVF part of ``structure`` (itself here)."""
        return self.structure

    def _build(self) -> Any:
        import faiss

        items = self.vectors[1:].numpy()
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.niter = IVF_NITER
        ivf.cp.seed = 0
        ivf.train(_training_sample(items, self.nlist))
        ivf.add(items)
        ivf.nprobe = min(8, self.nlist)
        return ivf

    @property
    def breadth(self) -> int:
        return int(self._ivf().nprobe)

    def set_breadth(self, value: int) -> None:
        self._ivf().nprobe = int(value)
        self.params["nprobe"] = int(value)

    def max_breadth(self) -> int:
        return self.nlist


class IVFPQIndex(IVFIndex):
    """FAISS ``IndexIVFPQFastScan`` (4-bit codes, 2 dimensions per sub-quantizer: 32 bytes per
    64-d item, scanned with SIMD lookup tables) inside an ``IndexRefineFlat``: a query scans
    the ``nprobe`` nearest cells' codes for ``k_factor`` × k candidates, which are re-ranked by
    their exact inner products. For catalogues whose vectors cluster poorly (a large share of
    the cells must be probed), where scanning float vectors is the cost."""

    kind = "faiss-ivfpq"

    def __init__(self, vectors: torch.Tensor | np.ndarray, nlist: int | None = None,
                 k_factor: int = PQ_K_FACTOR, structure: Any = None) -> None:
        self.k_factor = k_factor
        super().__init__(vectors, nlist, structure)
        self.params["k_factor"] = int(self.structure.k_factor)

    def _ivf(self) -> Any:
        import faiss

        return faiss.extract_index_ivf(self.structure)

    def _build(self) -> Any:
        import faiss

        if self.dim % 2:
            raise ValueError(f"ivfpq needs an even vector dimension, got {self.dim}")
        items = self.vectors[1:].numpy()
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFPQFastScan(quantizer, self.dim, self.nlist, self.dim // 2, 4,
                                       faiss.METRIC_INNER_PRODUCT)
        ivf.cp.niter = IVF_NITER
        ivf.cp.seed = 0
        refined = faiss.IndexRefineFlat(ivf)
        refined.k_factor = float(self.k_factor)
        refined.train(_training_sample(items, self.nlist))
        refined.add(items)
        ivf.nprobe = min(8, self.nlist)
        return refined

    def set_k_factor(self, value: float) -> None:
        self.structure.k_factor = float(value)
        self.params["k_factor"] = int(value)

    def tune_breadth(self, queries: np.ndarray, truth: np.ndarray, target: float) -> None:
        """nprobe and the re-ranking depth together (:func:`tune_k_factor`)."""
        tune_k_factor(self, queries, truth, target)


class HNSWIndex(FaissIndex):
    """FAISS ``IndexHNSWFlat`` (inner product): a graph, ``efSearch`` candidates per query.
    Slow to build at a million items (minutes per core): kept for ``--index hnsw``."""

    kind = "faiss-hnsw"
    breadth_name = "efSearch"

    def __init__(self, vectors: torch.Tensor | np.ndarray, m: int = HNSW_M,
                 ef_search: int = HNSW_EF_SEARCH,
                 ef_construction: int = HNSW_EF_CONSTRUCTION, structure: Any = None) -> None:
        self.m, self.ef_construction, self._ef = m, ef_construction, ef_search
        super().__init__(vectors, structure)
        self.params = {"M": int(self.structure.hnsw.nb_neighbors(1)),
                       "efConstruction": int(self.structure.hnsw.efConstruction),
                       "efSearch": self.breadth}

    def _build(self) -> Any:
        import faiss

        graph = faiss.IndexHNSWFlat(self.dim, self.m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = self.ef_construction
        graph.hnsw.efSearch = self._ef
        graph.add(self.vectors[1:].numpy())
        return graph

    @property
    def breadth(self) -> int:
        return int(self.structure.hnsw.efSearch)

    def set_breadth(self, value: int) -> None:
        self.structure.hnsw.efSearch = int(value)
        self.params["efSearch"] = int(value)

    def max_breadth(self) -> int:
        return max(4096, K)


#: the ``kind`` option → the approximate index it builds
ANN_KINDS: dict[str, type[FaissIndex]] = {"ivf": IVFIndex, "ivfpq": IVFPQIndex,
                                          "hnsw": HNSWIndex}


def _training_sample(items: np.ndarray, nlist: int) -> np.ndarray:
    """The vectors k-means trains on: a seeded sample of at most ``IVF_TRAIN_SAMPLE`` (at
    least 40 per cell)."""
    sample = min(len(items), max(IVF_TRAIN_SAMPLE, 40 * nlist))
    chosen = np.sort(np.random.default_rng(0).choice(len(items), sample, replace=False))
    return items[chosen]


def default_nlist(size: int) -> int:
    """A power of two near 4·√n (1M items: 4096), at least 1 and at most n / 39 (FAISS wants
    ~39 training points per cell)."""
    target = 4 * np.sqrt(max(size, 1))
    nlist = 2 ** int(np.round(np.log2(max(target, 1))))
    return int(max(1, min(nlist, size // 39 or 1)))


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    """``[Q, k]`` FAISS ids (item − 1) of the exact inner-product top-``k`` (no padding row)."""
    import faiss

    _, ids = faiss.knn(np.ascontiguousarray(queries, dtype=np.float32),
                       np.ascontiguousarray(vectors[1:]), k, metric=faiss.METRIC_INNER_PRODUCT)
    return ids


def recall(index: FaissIndex, queries: np.ndarray, truth: np.ndarray, k: int = K) -> float:
    """Mean share of each query's exact top-``k`` (``truth``, FAISS ids) that ``index`` finds."""
    _, ids = index.structure.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ids, truth, strict=True)]))


def tune(index: FaissIndex, queries: np.ndarray, truth: np.ndarray, target: float) -> int:
    """The smallest search breadth whose recall@10 on ``queries`` reaches ``target``
    (bisection: recall grows with the breadth), set on ``index``; the largest if none does."""
    low, high = 1, index.max_breadth()
    index.set_breadth(high)
    if recall(index, queries, truth) < target:
        return high
    while low < high:
        middle = (low + high) // 2
        index.set_breadth(max(middle, K if index.kind == "faiss-hnsw" else 1))
        if recall(index, queries, truth) >= target:
            high = middle
        else:
            low = middle + 1
    index.set_breadth(max(high, K if index.kind == "faiss-hnsw" else 1))
    return index.breadth


def tune_k_factor(index: IVFPQIndex, queries: np.ndarray, truth: np.ndarray,
                  target: float, k_factors: Sequence[int] = PQ_K_FACTORS) -> None:
    """IVF-PQ's two breadths: for each re-ranking depth in ``k_factors`` the smallest nprobe
    that reaches ``target`` (:func:`tune`), then the pair that answers ``queries`` one at a
    time fastest, as the service searches (:func:`ms_per_query`), among those that reach it
    (the one of highest recall if none does)."""
    tried = []
    for k_factor in k_factors:
        index.set_k_factor(k_factor)
        nprobe = tune(index, queries, truth, target)
        found = recall(index, queries, truth)
        tried.append((found, ms_per_query(index, queries[:TIMED_QUERIES]), k_factor, nprobe))
    reaching = [t for t in tried if t[0] >= target]
    _, _, k_factor, nprobe = (min(reaching, key=lambda t: t[1]) if reaching
                              else max(tried, key=lambda t: t[0]))
    index.set_k_factor(k_factor)
    index.set_breadth(nprobe)
    index.params["k_factor_tried"] = [
        {"k_factor": k, "nprobe": n, "recall": round(r, 4), "ms_per_query": round(ms, 4)}
        for r, ms, k, n in tried]


def _split_queries(queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tuning and held queries: alternate rows, so both halves come from the same mix."""
    return queries[0::2], queries[1::2]


def build_index(vectors: torch.Tensor | np.ndarray, queries: np.ndarray | None = None,
                recall_target: float = DEFAULT_RECALL_TARGET, kind: str = "auto",
                ann_threshold: int | None = DEFAULT_ANN_THRESHOLD,
                threads: int | None = None) -> ExactIndex:
    """The index for ``vectors``: ``kind`` ``auto`` is exact below ``ann_threshold`` items
    (``None``: always exact) and from it on IVF-Flat, or IVF-PQ where that is measured faster
    (:func:`_faster_of_ivf_and_ivfpq`); an approximate index gets the smallest search breadth
    that reaches ``recall_target`` on half of ``queries`` and its recall@10 measured on the
    other half (``queries``: ``[Q, d]``, default random unit vectors). Built with ``threads``
    FAISS threads (default all cores), then left at that setting."""
    if kind not in KINDS:
        raise ValueError(f"index kind {kind!r}: choose from {KINDS}")
    size = len(vectors) - 1
    if kind == "exact" or (kind == "auto" and (ann_threshold is None or size < ann_threshold)):
        index = ExactIndex(vectors)
        index.params = {"chosen": "exact" if kind == "exact" else
                        f"auto: {size} items < ann threshold {ann_threshold}"}
        return index
    import faiss

    faiss.omp_set_num_threads(threads or all_cores())
    matrix = _as_matrix(vectors)
    index = _built(ANN_KINDS.get(kind, IVFIndex), matrix, queries, recall_target)
    if kind == "auto":
        return _faster_of_ivf_and_ivfpq(index, matrix, queries, recall_target)
    return index


def _built(kind: type[FaissIndex], matrix: np.ndarray, queries: np.ndarray | None,
           recall_target: float) -> FaissIndex:
    started = time.perf_counter()
    index = kind(matrix)
    build_seconds = time.perf_counter() - started
    measure(index, queries, recall_target)
    index.params["build_seconds"] = round(build_seconds, 3)
    return index


def _faster_of_ivf_and_ivfpq(ivf: FaissIndex, matrix: np.ndarray, queries: np.ndarray | None,
                             recall_target: float) -> FaissIndex:
    """``auto``'s choice: IVF-Flat, unless its tuned nprobe scans more than
    ``AUTO_PQ_SHARE`` of its cells (vectors that cluster poorly, where scanning float vectors
    is the cost) and an IVF-PQ index of the same vectors, tuned to the same target, reaches it
    on the held queries and searches them faster one at a time (as the service does)."""
    share = ivf.breadth / ivf.max_breadth()
    if share <= AUTO_PQ_SHARE or ivf.dim % 2:
        ivf.params["chosen"] = (f"auto: ivf (nprobe scans {share:.1%} of the cells"
                                + (", odd dim)" if ivf.dim % 2 else ")"))
        return ivf
    pq = _built(IVFPQIndex, matrix, queries, recall_target)
    faster = pq.params["held_ms_per_query"] < ivf.params["held_ms_per_query"]
    kept = pq if faster and (pq.recall_at_10 or 0.0) >= recall_target else ivf
    kept.params["chosen"] = (f"auto: {'ivfpq' if kept is pq else 'ivf'} (ivf nprobe scans "
                             f"{share:.1%} of the cells; the faster at the target is kept)")
    kept.params["raced"] = {name: {"ms_per_query": other.params["held_ms_per_query"],
                                   "recall_at_10": other.recall_at_10,
                                   other.breadth_name: other.breadth}
                            for name, other in (("ivf", ivf), ("ivfpq", pq))}
    return kept


def ms_per_query(index: FaissIndex, queries: np.ndarray) -> float:
    """Milliseconds per search of ``queries`` one at a time (after one unmeasured search)."""
    rows = np.ascontiguousarray(queries, dtype=np.float32)
    index.structure.search(rows[:1], K)
    started = time.perf_counter()
    for row in range(len(rows)):
        index.structure.search(rows[row:row + 1], K)
    return 1000 * (time.perf_counter() - started) / max(1, len(rows))


def random_queries(count: int, dim: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    queries = rng.standard_normal((count, dim), dtype=np.float32)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def measure(index: FaissIndex, queries: np.ndarray | None, recall_target: float) -> None:
    """Tune the breadth on half of ``queries`` for ``recall_target``, measure recall@10 on
    the other half (both against the exact top-10), and record it in ``index.params``."""
    if queries is None or len(queries) < 2:
        queries = random_queries(1000, index.dim)
    started = time.perf_counter()
    tuning, held = _split_queries(_as_matrix(queries))
    matrix = index.vectors.numpy()
    tuned_for = min(1.0, recall_target + TUNE_MARGIN)
    index.tune_breadth(tuning, exact_top(matrix, tuning), tuned_for)
    index.recall_at_10 = recall(index, held, exact_top(matrix, held))
    index.params["held_ms_per_query"] = round(ms_per_query(index, held[:TIMED_QUERIES]), 4)
    index.params.update(recall_target=recall_target, tuned_for=tuned_for,
                        tuning_queries=len(tuning),
                        held_queries=len(held),
                        tune_seconds=round(time.perf_counter() - started, 3))
