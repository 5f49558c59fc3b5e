"""Significance between two run directories from their per-user test ranks (ranks.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

from recadapt.errors import RecAdaptError
from recadapt.eval.metrics import hit_at_k, ndcg_at_k
from recadapt.eval.significance import paired_t_test


def _read_ranks(run_dir: Path) -> dict:
    path = Path(run_dir) / "ranks.json"
    if not path.is_file():
        raise RecAdaptError(f"{run_dir} has no ranks.json: train the run to the end first")
    return json.loads(path.read_text(encoding="utf-8"))


def per_user_metric(ranks: np.ndarray, metric: str) -> np.ndarray:
    match = re.fullmatch(r"(HR|NDCG)@(\d+)", metric)
    if not match:
        raise RecAdaptError(f"--metric must look like HR@10 or NDCG@20, got {metric!r}")
    fn = hit_at_k if match.group(1) == "HR" else ndcg_at_k
    return np.asarray(fn(torch.as_tensor(ranks), int(match.group(2))), dtype=np.float64)


def compare_runs(run_a: Path, run_b: Path, metric: str) -> dict:
    a, b = _read_ranks(run_a), _read_ranks(run_b)
    if a["protocol"] != b["protocol"]:
        raise RecAdaptError(f"runs use different protocols: {a['protocol']} vs {b['protocol']}")
    rank_b = dict(zip(b["users"], b["ranks"], strict=True))
    common = [u for u in a["users"] if u in rank_b]
    if len(common) != len(a["users"]) or len(common) != len(b["users"]):
        raise RecAdaptError("runs evaluated different users: compare runs on the same split")
    ranks_a = np.asarray(a["ranks"])
    ranks_b = np.asarray([rank_b[u] for u in a["users"]])
    result = paired_t_test(per_user_metric(ranks_a, metric), per_user_metric(ranks_b, metric))
    return {"metric": metric, "run_a": str(run_a), "run_b": str(run_b), **result}
