"""Evaluation protocols over a trained next-item model.

* ``full`` (default, IISAN V-C / CROSSAN 5): the target's rank among **all** items; the user's
  other history items are masked out (they would otherwise crowd the top of any model that
  repeats history; RecBole masks the same way), the target itself never is.
* ``ctr``: one probability per labelled sample (``recadapt.data.ctr``); AUC and LogLoss.
* ``sampled``: the target's rank among itself and N uniformly sampled items the user never
  interacted with; metric keys carry a ``sampled_`` prefix so they cannot pass for full ranking.

Under ``accelerate launch`` the loop passes its accelerator as ``processes``: each process
scores a contiguous slice of the users (or CTR samples), the per-user ranks are gathered in
order, and every process computes the same metrics from all of them, exactly as one process
would (no user is padded in or counted twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recadapt.config import EvalConfig
from recadapt.data.batching import eval_batches
from recadapt.data.ctr import CTRSamples, CTRSplit, ctr_batches
from recadapt.data.splits import EvalSet, NextItemSplit
from recadapt.distributed import gather_parts, shard_rows
from recadapt.eval import metrics
from recadapt.models.base import Recommender
from recadapt.progress import progress_bar


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
                 device: torch.device | None = None, progress: bool = False,
                 processes: Any | None = None) -> EvalResult:
    """AUC and LogLoss of ``sigmoid(model.score(batch))`` over every sample (``processes``:
    see the module docstring)."""
    device = device or next(iter(model.buffers()), torch.zeros(0)).device
    # LLM scorers cap their batch (a 1024-prompt batch would not fit in memory)
    batch_size = min(batch_size, getattr(model, "eval_batch_size", None) or batch_size)
    was_training = model.training
    model.eval()
    probs = [torch.zeros(0)]
    rows = shard_rows(len(samples), processes)
    local = samples if len(rows) == len(samples) else samples.subset(rows)
    batches = ctr_batches(local, batch_size) if len(local) else iter(())
    total = -(-len(local) // batch_size)
    for batch in progress_bar(batches, total=total, desc="evaluate", leave=False,
                              disable=not progress):
        batch = {k: v.to(device) for k, v in batch.items()}
        probs.append(torch.sigmoid(model.score(batch).float()).cpu())
    model.train(was_training)
    p = np.concatenate(gather_parts(torch.cat(probs).numpy().astype(np.float64), processes))
    values = {"AUC": metrics.auc(samples.labels, p), "LogLoss": metrics.logloss(samples.labels, p)}
    return EvalResult(values, samples.users, np.zeros(0, np.int64), "ctr", probs=p,
                      items=samples.items, labels=samples.labels)


def candidate_lists(eval_set: EvalSet, batch: dict[str, torch.Tensor],
                    histories: Sequence[np.ndarray], num_items: int, config: EvalConfig,
                    interacted: Sequence[np.ndarray] | None = None) -> torch.Tensor:
    """``[B, 1 + N]`` candidates of the sampled protocol: the target first, then N items the
    user never interacted with (``interacted[user]``: the whole sequence when known, else the
    history), drawn by a generator seeded with ``(eval.seed, user)`` so that every model of a
    comparison ranks exactly the same lists whatever its batch size."""
    users = batch["user"].tolist()
    targets = batch["target"].tolist()
    exclude = [np.append(interacted[u] if interacted is not None else h, t)
               for u, h, t in zip(users, histories, targets, strict=True)]
    negatives = metrics.sample_negatives(num_items, exclude, config.num_negatives, config.seed,
                                         keys=users)
    return torch.cat([batch["target"][:, None].cpu(), negatives], dim=1)


@torch.no_grad()
def evaluate(
    model: Recommender,
    eval_set: EvalSet,
    num_items: int,
    config: EvalConfig,
    max_len: int,
    device: torch.device | None = None,
    protocol: str | None = None,
    interacted: Sequence[np.ndarray] | None = None,
    generate: bool = False,
    progress: bool = False,
    processes: Any | None = None,
) -> EvalResult:
    """Rank every target of ``eval_set`` under ``protocol`` (default: ``config.protocol``).

    ``interacted`` (per user index, e.g. ``dataset.sequences()``) keeps every item a user ever
    interacted with out of its sampled negatives. With ``generate`` and a model that can
    *generate* its choice (``generate_choices``, A-LLMRec), the sampled protocol also reports
    the generated choice's hit rate and how often the generation matched no candidate.
    ``processes`` (an accelerator or accelerate ``PartialState``): every process must call,
    each ranks its slice of the users (see the module docstring)."""
    protocol = protocol or config.protocol
    device = device or next(iter(model.buffers()), torch.zeros(0)).device
    batch_size = min(config.batch_size, getattr(model, "eval_batch_size", None) or
                     config.batch_size)
    generator = getattr(model, "generate_choices", None) if generate else None
    rows = shard_rows(len(eval_set), processes)
    local = eval_set if len(rows) == len(eval_set) else EvalSet(
        eval_set.users[rows], [eval_set.histories[i] for i in rows], eval_set.targets[rows])
    was_training = model.training
    model.eval()
    ranks = [torch.zeros(0, dtype=torch.long)]
    hits, unmatched = [torch.zeros(0, dtype=torch.bool)], [torch.zeros(0, dtype=torch.bool)]
    batches = eval_batches(local, max_len, batch_size)
    total = -(-len(local) // batch_size)
    for begin_batch, histories in progress_bar(batches, total=total, desc="evaluate", leave=False,
                                       disable=not progress):
        batch = {k: v.to(device) for k, v in begin_batch.items()}
        targets = batch["target"]
        if protocol == "full":
            ranks.append(metrics.full_ranks(model.score(batch).float(), targets,
                                            histories).cpu().long())
            continue
        candidates = candidate_lists(local, begin_batch, histories, num_items, config,
                                     interacted).to(device)
        ranks.append(metrics.candidate_ranks(model.score_candidates(batch, candidates)).cpu()
                     .long())
        if generator is not None:
            chosen = generator(batch, candidates).to(device)
            hits.append((chosen == targets).cpu())
            unmatched.append((chosen == 0).cpu())
    model.train(was_training)
    local_parts = (torch.cat(ranks).numpy(), torch.cat(hits).numpy(),
                   torch.cat(unmatched).numpy())
    parts = gather_parts(local_parts, processes)
    all_ranks = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    all_hits = np.concatenate([p[1] for p in parts])
    values = metrics.ranking_metrics(all_ranks, ks=tuple(config.ks), sampled=protocol != "full")
    if generator is not None and protocol != "full" and len(all_hits):
        values["sampled_generated_HR@1"] = float(all_hits.astype(np.float64).mean())
        values["generated_unmatched"] = float(
            np.concatenate([p[2] for p in parts]).astype(np.float64).mean())
    return EvalResult(values, eval_set.users, all_ranks.numpy(), protocol)


def evaluate_part(model: Recommender, split: NextItemSplit | CTRSplit, part: str,
                  config: EvalConfig, max_len: int, device: torch.device | None = None,
                  protocol: str | None = None, progress: bool = False,
                  processes: Any | None = None) -> EvalResult:
    """Evaluate ``split.valid`` or ``split.test`` under the task's protocol: AUC/LogLoss for
    CTR splits, ranking (``protocol``, default ``config.protocol``) for next-item splits."""
    if part not in {"valid", "test"}:
        raise ValueError(f"part must be valid or test, got {part!r}")
    if isinstance(split, CTRSplit):
        samples = split.valid if part == "valid" else split.test
        return evaluate_ctr(model, samples, config.batch_size, device, progress, processes)
    eval_set = split.valid if part == "valid" else split.test
    return evaluate(model, eval_set, split.dataset.num_items, config, max_len, device, protocol,
                    interacted=split.dataset.sequences(), generate=part == "test",
                    progress=progress, processes=processes)
