"""A built FAISS index kept beside the run: ``index.faiss`` and ``index.json`` (what it was
built from: kind, count, dim, parameters, measured recall, and the SHA-256 of the item-vector
matrix), each written atomically. :func:`load_or_build` reloads it when the vectors and the
asked kind are the same, and refuses it (rebuilds and saves over) when they are not."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from recadapt.io import atomic_write, write_json
from recadapt.serve.index import (
    ANN_KINDS,
    DEFAULT_ANN_THRESHOLD,
    DEFAULT_RECALL_TARGET,
    ExactIndex,
    FaissIndex,
    _as_matrix,
    all_cores,
    build_index,
    fingerprint,
    measure,
)

log = logging.getLogger(__name__)

INDEX_FILE, META_FILE = "index.faiss", "index.json"


def save_index(index: FaissIndex, folder: Path, vectors_sha256: str) -> None:
    """``folder/index.faiss`` and ``folder/index.json`` (what it was built from), each written
    atomically (a reader never sees half a file)."""
    import faiss

    meta = {"kind": index.kind, "count": index.size, "dim": index.dim,
            "vectors_sha256": vectors_sha256, "params": index.params,
            "recall_at_10": index.recall_at_10, "faiss": faiss.__version__}
    atomic_write(folder / INDEX_FILE, lambda tmp: faiss.write_index(index.structure, str(tmp)))
    write_json(folder / META_FILE, meta)


#: a saved index's kind → the ``kind`` option that builds it
KIND_OPTION = {index.kind: option for option, index in ANN_KINDS.items()}


def _stale(meta: dict, kind: str, vectors_sha256: str, count: int, dim: int) -> str | None:
    """Why a saved index cannot serve these vectors, or ``None`` when it can."""
    if meta.get("vectors_sha256") != vectors_sha256 or meta.get("count") != count \
            or meta.get("dim") != dim:
        return "the item vectors changed since it was built"
    if kind not in ("auto", KIND_OPTION.get(meta.get("kind"))):
        return f"it is a {meta.get('kind')} index and {kind!r} was asked for"
    return None


def load_index(folder: Path, vectors: np.ndarray, meta: dict) -> FaissIndex:
    import faiss

    structure = faiss.read_index(str(folder / INDEX_FILE))
    index = ANN_KINDS[KIND_OPTION.get(meta["kind"], "ivf")](vectors, structure=structure)
    index.params.update(meta.get("params", {}))
    index.set_breadth(int(meta["params"][index.breadth_name]))
    index.recall_at_10 = meta.get("recall_at_10")
    return index


def load_or_build(vectors: torch.Tensor | np.ndarray, folder: Path | None,
                  queries: Callable[[], np.ndarray | None] | np.ndarray | None = None,
                  recall_target: float = DEFAULT_RECALL_TARGET, kind: str = "auto",
                  ann_threshold: int | None = DEFAULT_ANN_THRESHOLD,
                  threads: int | None = None) -> ExactIndex:
    """:func:`build_index`, through ``folder``: an approximate index saved there from the same
    vectors (SHA-256, count, dim) and of the asked kind is loaded instead of rebuilt (its
    breadth re-tuned, without a rebuild, when the recall target changed); a stale one is
    refused with a log line, rebuilt and saved over. ``queries`` may be a callable, asked only
    when a build or tuning needs them. ``index.params["source"]`` says which happened."""
    matrix = _as_matrix(vectors)
    size, dim = len(matrix) - 1, matrix.shape[1]
    wants_ann = kind in ("ivf", "ivfpq", "hnsw") or (kind == "auto" and ann_threshold is not None
                                             and size >= ann_threshold)
    if not wants_ann or folder is None:
        index = build_index(matrix, _queries(queries) if wants_ann else None, recall_target,
                            kind, ann_threshold, threads)
        index.params.setdefault("source", "built")
        return index
    folder = Path(folder)
    sha = fingerprint(matrix)
    reason = "there is none"
    if (folder / META_FILE).is_file() and (folder / INDEX_FILE).is_file():
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
            reason = _stale(meta, kind, sha, size, dim) or ""
        except (OSError, ValueError) as err:
            reason = f"{META_FILE} is unreadable ({err})"
        if not reason:
            started = time.perf_counter()
            index = load_index(folder, matrix, meta)
            index.params["load_seconds"] = round(time.perf_counter() - started, 3)
            index.params["source"] = f"loaded {folder / INDEX_FILE}"
            if meta.get("params", {}).get("recall_target") != recall_target:
                import faiss

                faiss.omp_set_num_threads(threads or all_cores())
                measure(index, _queries(queries), recall_target)
                index.params["source"] += " (re-tuned for the new recall target)"
                _try_save(index, folder, sha)
            return index
        log.warning("index in %s not used: %s; rebuilding it", folder, reason)
    index = build_index(matrix, _queries(queries), recall_target, kind, ann_threshold, threads)
    index.params["source"] = f"built ({folder / INDEX_FILE}: {reason})"
    if isinstance(index, FaissIndex):
        _try_save(index, folder, sha)
    return index


def _queries(queries: Callable[[], np.ndarray | None] | np.ndarray | None) -> np.ndarray | None:
    return queries() if callable(queries) else queries


def _try_save(index: FaissIndex, folder: Path, sha: str) -> None:
    try:
        save_index(index, folder, sha)
    except OSError as err:  # a read-only run folder still serves, it just rebuilds next time
        log.warning("could not save the index in %s: %s", folder, err)
