"""Training losses shared by every model (torch).

Conventions (see :mod:`recadapt.models.base`): items are ``1..num_items``, index 0 is padding;
item tables are ``[num_items + 1, d]`` with row 0 = padding; training batches hold a
left-padded ``history[B, L]`` and per-position ``target[B, L]`` (0 = no loss).

* :func:`full_softmax_ce` -- cross-entropy over the whole catalogue (padding excluded).
* :func:`sampled_bce` -- SASRec's binary cross-entropy with sampled negatives.
* :func:`debiased_in_batch_ce` -- the in-batch, popularity-debiased cross-entropy of IISAN /
  IISAN-Versa (III-G, eq. 6-7) and CROSSAN (sec. 4, eq. 7-8), with its helpers
  :func:`log_popularity` and :func:`in_batch_candidates`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F


def full_softmax_ce(
    queries: torch.Tensor, item_table: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Mean softmax cross-entropy of ``queries @ item_table.T`` against ``targets``.

    Args:
        queries: ``[N, d]`` user/position representations (only rows that carry a loss).
        item_table: ``[num_items + 1, d]``; row 0 is padding and is masked to ``-inf``, so it
            never takes probability mass.
        targets: ``LongTensor[N]`` in ``1..num_items``.

    Returns:
        Scalar, the mean over the ``N`` rows.
    """
    if queries.dim() != 2 or item_table.dim() != 2 or queries.shape[1] != item_table.shape[1]:
        raise ValueError(
            f"queries [N, d] and item_table [num_items + 1, d] must share d, got "
            f"{tuple(queries.shape)} and {tuple(item_table.shape)}"
        )
    targets = targets.reshape(-1).long()
    if targets.shape[0] != queries.shape[0]:
        raise ValueError(f"{targets.shape[0]} targets for {queries.shape[0]} queries")
    if targets.numel() and (targets.min() < 1 or targets.max() >= item_table.shape[0]):
        raise ValueError(f"targets must be item indices in 1..{item_table.shape[0] - 1}")
    logits = queries @ item_table.T
    pad = torch.zeros_like(logits, dtype=torch.bool)
    pad[:, 0] = True
    logits = logits.masked_fill(pad, float("-inf"))
    return F.cross_entropy(logits, targets)


def sampled_bce(pos_logits: torch.Tensor, neg_logits: torch.Tensor) -> torch.Tensor:
    """SASRec's loss: ``mean(-log σ(pos)) + mean(-log(1 - σ(neg)))``.

    Args:
        pos_logits: ``[N]`` logits of the true next items (valid positions only).
        neg_logits: ``[N]`` or ``[N, K]`` logits of sampled negatives; with ``K`` negatives per
            positive the second term is the mean over all ``N * K`` of them.

    Returns:
        Scalar: mean over positives plus mean over negatives (each term is a mean, as in the
        reference PyTorch SASRec; with one negative per positive this equals the original
        per-position sum divided by the number of positions).
    """
    if pos_logits.numel() == 0 or neg_logits.numel() == 0:
        raise ValueError("sampled_bce needs at least one positive and one negative logit")
    pos = F.binary_cross_entropy_with_logits(pos_logits, torch.ones_like(pos_logits))
    neg = F.binary_cross_entropy_with_logits(neg_logits, torch.zeros_like(neg_logits))
    return pos + neg


def log_popularity(item_counts: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``log p_i`` with add-one smoothing, for the debiasing term of the in-batch loss.

    Args:
        item_counts: ``[num_items + 1]`` training interaction counts indexed by item (index 0
            = padding; whatever it holds is ignored).

    Returns:
        ``FloatTensor[num_items + 1]`` with ``p_i = (count_i + 1) / sum_j (count_j + 1)``
        over ``j = 1..num_items``, so unseen items get a finite ``log p``. Padding index 0 is
        given the value of an unseen item, ``log(1 / Z)`` -- finite, so indexing it never
        produces NaN, and it is never a candidate anyway.
    """
    counts = torch.as_tensor(
        np.asarray(item_counts) if not isinstance(item_counts, torch.Tensor) else item_counts
    ).double()
    if counts.dim() != 1 or counts.shape[0] < 2:
        raise ValueError("item_counts must be 1-D [num_items + 1] with at least one item")
    if (counts[1:] < 0).any() or torch.isnan(counts).any():
        raise ValueError("item_counts must be non-negative")
    smoothed = counts + 1.0
    smoothed[0] = 1.0
    total = smoothed[1:].sum()
    return torch.log(smoothed / total).float()


class InBatchCandidates(NamedTuple):
    """Output of :func:`in_batch_candidates`; ``N`` rows = valid positions, ``C`` candidates."""

    #: ``LongTensor[N]``: batch row (user) of each valid position
    batch_index: torch.Tensor
    #: ``LongTensor[N]``: sequence position of each valid position
    position: torch.Tensor
    #: ``LongTensor[N]``: the target item of each row
    targets: torch.Tensor
    #: ``LongTensor[C]``: unique non-zero target items in the batch, sorted ascending
    candidate_ids: torch.Tensor
    #: ``BoolTensor[N, C]``: candidate ``c`` is in the row's user's items (history or targets)
    interacted: torch.Tensor


def in_batch_candidates(history: torch.Tensor, target: torch.Tensor) -> InBatchCandidates:
    """Rows, candidates and the ``I_u`` mask for :func:`debiased_in_batch_ce`.

    Args:
        history: ``LongTensor[B, L]`` left-padded item sequences.
        target: ``LongTensor[B, L]`` next item per position, 0 = no loss.

    Returns:
        :class:`InBatchCandidates`. Rows are the positions with ``target != 0`` (row-major
        order); gather the model's queries with ``seq_out[res.batch_index, res.position]``
        and the candidate embeddings with ``item_table[res.candidate_ids]``. ``I_u`` is the set
        of the user's items *visible in the batch* (its history and all of its targets), so
        ``interacted[row, c]`` is the same for every row of one user.
    """
    if history.shape != target.shape or history.dim() != 2:
        raise ValueError(
            f"history and target must both be [B, L], got {tuple(history.shape)} and "
            f"{tuple(target.shape)}"
        )
    history = history.long()
    target = target.long()
    valid = target != 0
    if not valid.any():
        raise ValueError("batch has no non-zero targets: nothing to train on")
    batch_index, position = valid.nonzero(as_tuple=True)
    row_targets = target[batch_index, position]
    candidate_ids = torch.unique(row_targets)  # sorted
    num_candidates = candidate_ids.shape[0]

    # user x candidate membership, via searchsorted (memory B * C, not B * L * C)
    items = torch.cat([history, target], dim=1)
    slot = torch.searchsorted(candidate_ids, items).clamp(max=num_candidates - 1)
    hit = (candidate_ids[slot] == items) & (items != 0)
    slot = torch.where(hit, slot, torch.full_like(slot, num_candidates))  # dummy column
    user_items = torch.zeros(
        history.shape[0], num_candidates + 1, dtype=torch.bool, device=history.device
    )
    user_items.scatter_(1, slot, True)
    interacted = user_items[:, :num_candidates][batch_index]
    return InBatchCandidates(batch_index, position, row_targets, candidate_ids, interacted)


def debiased_in_batch_ce(
    queries: torch.Tensor,
    targets: torch.Tensor,
    candidate_ids: torch.Tensor,
    candidate_emb: torch.Tensor,
    log_popularity: torch.Tensor,
    interacted: torch.Tensor,
) -> torch.Tensor:
    """In-batch debiased cross-entropy (CROSSAN eq. 7-8, IISAN-Versa eq. 6-7).

    For row ``n`` (user ``u``, target ``i``), with logits ``s_j = q_n · e_j - log p_j`` over the
    in-batch candidates ``j``::

        D_ni = exp(s_i) + sum_{j in batch, j not in I_u} exp(s_j)
        loss_n = -log(exp(s_i) / D_ni)

    i.e. candidates the user interacted with (``interacted[n, j]``) are dropped from the
    denominator, **except the target itself**.

    Args:
        queries: ``[N, d]`` one query per row.
        targets: ``LongTensor[N]`` target item per row; each must occur in ``candidate_ids``.
        candidate_ids: ``LongTensor[C]`` distinct item indices of the candidates.
        candidate_emb: ``[C, d]`` their embeddings.
        log_popularity: ``[num_items + 1]`` ``log p`` per item (see :func:`log_popularity`).
        interacted: ``BoolTensor[N, C]``, True where candidate ``c`` is in row ``n``'s ``I_u``.

    Returns:
        Scalar: the **mean** over rows. The papers sum over users and positions; the mean only
        rescales the loss (and thus the effective learning rate) and keeps it independent of
        the batch size.

    Raises:
        ValueError: on shape mismatches, duplicate candidates, or a target that is not among
            the candidates.
    """
    n_rows, dim = queries.shape
    targets = targets.reshape(-1).long()
    candidate_ids = candidate_ids.reshape(-1).long()
    n_cand = candidate_ids.shape[0]
    if targets.shape[0] != n_rows:
        raise ValueError(f"{targets.shape[0]} targets for {n_rows} queries")
    if candidate_emb.shape != (n_cand, dim):
        raise ValueError(
            f"candidate_emb must be [C={n_cand}, d={dim}], got {tuple(candidate_emb.shape)}"
        )
    if interacted.shape != (n_rows, n_cand):
        raise ValueError(
            f"interacted must be [N={n_rows}, C={n_cand}], got {tuple(interacted.shape)}"
        )
    if torch.unique(candidate_ids).shape[0] != n_cand:
        raise ValueError("candidate_ids must be distinct")
    is_target = targets[:, None] == candidate_ids[None, :]
    found = is_target.any(dim=1)
    if not found.all():
        missing = targets[~found].unique().tolist()[:10]
        raise ValueError(f"targets not among the in-batch candidates: {missing}")
    target_col = is_target.long().argmax(dim=1)

    logits = queries @ candidate_emb.T - log_popularity[candidate_ids].to(queries.dtype)[None, :]
    mask = interacted.bool() & ~is_target
    logits = logits.masked_fill(mask, float("-inf"))
    return F.cross_entropy(logits, target_col)


__all__ = [
    "InBatchCandidates",
    "debiased_in_batch_ce",
    "full_softmax_ce",
    "in_batch_candidates",
    "log_popularity",
    "sampled_bce",
]
