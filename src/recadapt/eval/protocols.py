"""Evaluation protocols over a trained next-item model.

* ``full`` (default, IISAN V-C / CROSSAN 5): the target's rank among **all** items; the user's
  other history items are masked out (they would otherwise crowd the top of any model that
  repeats history; RecBole masks the same way), the target itself never is.
* ``ctr``: one probability per labelled sample (``recadapt.data.ctr``); AUC and LogLoss.
* ``sampled``: the target's rank among itself and N uniformly sampled items the user never
  interacted with; metric keys carry a ``sampled_`` prefix so they cannot pass for full ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from recadapt.config import EvalConfig
from recadapt.data.batching import eval_batches
from recadapt.data.ctr import CTRSamples, CTRSplit, ctr_batches
from recadapt.data.splits import EvalSet, NextItemSplit
from recadapt.eval import metrics
from recadapt.models.base import Recommender


@dataclass
class EvalResult:
    """Metrics plus per-user (next-item: ``ranks``) or per-sample (CTR: ``probs`` with
    ``items``/``labels``) values for paired significance tests."""

    metrics: dict[str, float]
    users: np.ndarray
    ranks: np.ndarray
    protocol: str
    probs: np.ndarray | None = None
    items: np.ndarray | None = None
    labels: np.ndarray | None = None


@torch.no_grad()
def evaluate_ctr(model: Recommender, samples: CTRSamples, batch_size: int,
                 device: torch.device | None = None, progress: bool = False) -> EvalResult:
    """AUC and LogLoss of ``sigmoid(model.score(batch))`` over every sample."""
    device = device or next(iter(model.buffers()), torch.zeros(0)).device
    # LLM scorers cap their batch (a 1024-prompt batch would not fit in memory)
    batch_size = min(batch_size, getattr(model, "eval_batch_size", None) or batch_size)
    was_training = model.training
    model.eval()
    probs = []
    batches = ctr_batches(samples, batch_size)
    total = -(-len(samples) // batch_size)
    for batch in tqdm(batches, total=total, desc="evaluate", leave=False, disable=not progress):
        batch = {k: v.to(device) for k, v in batch.items()}
        probs.append(torch.sigmoid(model.score(batch).float()).cpu())
    model.train(was_training)
    p = torch.cat(probs).numpy().astype(np.float64)
    values = {"AUC": metrics.auc(samples.labels, p), "LogLoss": metrics.logloss(samples.labels, p)}
    return EvalResult(values, samples.users, np.zeros(0, np.int64), "ctr", probs=p,
                      items=samples.items, labels=samples.labels)


@torch.no_grad()
def evaluate(
    model: Recommender,
    eval_set: EvalSet,
    num_items: int,
    config: EvalConfig,
    max_len: int,
    device: torch.device | None = None,
    protocol: str | None = None,
) -> EvalResult:
    """Rank every target of ``eval_set`` under ``protocol`` (default: ``config.protocol``)."""
    protocol = protocol or config.protocol
    device = device or next(iter(model.buffers()), torch.zeros(0)).device
    was_training = model.training
    model.eval()
    ranks = []
    for begin_batch, histories in eval_batches(eval_set, max_len, config.batch_size):
        batch = {k: v.to(device) for k, v in begin_batch.items()}
        scores = model.score(batch).float()
        targets = batch["target"]
        if protocol == "full":
            ranks.append(metrics.full_ranks(scores, targets, histories))
        else:
            exclude = [np.append(h, t) for h, t in zip(histories, targets.tolist(), strict=True)]
            seed = config.seed + len(ranks)
            negatives = metrics.sample_negatives(num_items, exclude, config.num_negatives, seed)
            ranks.append(metrics.sampled_ranks(scores, targets, negatives.to(device)))
    model.train(was_training)
    all_ranks = torch.cat(ranks).cpu() if ranks else torch.zeros(0, dtype=torch.long)
    values = metrics.ranking_metrics(all_ranks, ks=tuple(config.ks), sampled=protocol != "full")
    return EvalResult(values, eval_set.users, all_ranks.numpy(), protocol)


def evaluate_part(model: Recommender, split: NextItemSplit | CTRSplit, part: str,
                  config: EvalConfig, max_len: int, device: torch.device | None = None,
                  protocol: str | None = None, progress: bool = False) -> EvalResult:
    """Evaluate ``split.valid`` or ``split.test`` under the task's protocol: AUC/LogLoss for
    CTR splits, ranking (``protocol``, default ``config.protocol``) for next-item splits."""
    if part not in {"valid", "test"}:
        raise ValueError(f"part must be valid or test, got {part!r}")
    if isinstance(split, CTRSplit):
        samples = split.valid if part == "valid" else split.test
        return evaluate_ctr(model, samples, config.batch_size, device, progress)
    eval_set = split.valid if part == "valid" else split.test
    return evaluate(model, eval_set, split.dataset.num_items, config, max_len, device, protocol)
