"""Tests for recadapt.nn.losses, incl. a loop-based reference of the debiased in-batch CE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recadapt.nn.losses import (
    debiased_in_batch_ce,
    full_softmax_ce,
    in_batch_candidates,
    log_popularity,
    sampled_bce,
)


def test_full_softmax_ce_matches_cross_entropy_on_hand_logits():
    queries = torch.eye(2)
    # rows = items 0..3; logits = queries @ table.T = table.T
    table = torch.tensor([[50.0, 50.0], [1.0, 0.0], [2.0, 3.0], [0.5, -1.0]])
    targets = torch.tensor([2, 3])
    loss = full_softmax_ce(queries, table, targets)
    # padding item 0 (logit 50) excluded: classes are items 1..3, targets shifted by one
    hand = torch.tensor([[1.0, 2.0, 0.5], [0.0, 3.0, -1.0]])
    expected = F.cross_entropy(hand, targets - 1)
    assert loss.item() == pytest.approx(expected.item())
    lse0 = math.log(math.exp(1) + math.exp(2) + math.exp(0.5))
    lse1 = math.log(math.exp(0) + math.exp(3) + math.exp(-1))
    assert loss.item() == pytest.approx(((lse0 - 2.0) + (lse1 + 1.0)) / 2, rel=1e-6)


def test_full_softmax_ce_rejects_padding_target():
    with pytest.raises(ValueError, match=r"1\.\.3"):
        full_softmax_ce(torch.eye(2), torch.ones(4, 2), torch.tensor([0, 1]))


def test_sampled_bce():
    pos = torch.tensor([2.0, -1.0])
    neg = torch.tensor([[0.5, -3.0], [1.0, 0.0]])
    sig = torch.sigmoid
    expected = -(torch.log(sig(pos))).mean() - torch.log(1 - sig(neg)).mean()
    assert sampled_bce(pos, neg).item() == pytest.approx(expected.item(), rel=1e-6)
    # SASRec: one negative per positive
    p, n = torch.tensor([0.3]), torch.tensor([-0.2])
    hand = -math.log(1 / (1 + math.exp(-0.3))) - math.log(1 - 1 / (1 + math.exp(0.2)))
    assert sampled_bce(p, n).item() == pytest.approx(hand, rel=1e-6)


def test_log_popularity_add_one_smoothing():
    counts = np.array([99, 3, 0, 1])  # index 0 = padding, ignored
    lp = log_popularity(counts)
    z = 4 + 1 + 2
    assert lp.shape == (4,) and lp.dtype == torch.float32
    assert lp.tolist() == pytest.approx(
        [math.log(1 / z), math.log(4 / z), math.log(1 / z), math.log(2 / z)]
    )
    assert torch.isfinite(lp).all()
    assert torch.exp(lp[1:]).sum().item() == pytest.approx(1.0)
    assert torch.equal(lp, log_popularity(torch.tensor(counts)))
    with pytest.raises(ValueError):
        log_popularity(np.array([0, -1, 2]))


def _reference_loss(queries, row_targets, row_user, cand_ids, cand_emb, log_pop, user_items):
    """Eq. 7-8 literally: for each row, D = exp(s_i) + sum_{j in batch, j not in I_u} exp(s_j)."""
    total = 0.0
    for n in range(queries.shape[0]):
        i = int(row_targets[n])
        items_u = user_items[int(row_user[n])]

        def s(j, n=n):
            c = cand_ids.index(j)
            return float(queries[n] @ cand_emb[c]) - float(log_pop[j])

        denom = math.exp(s(i))
        for j in cand_ids:  # the batch's candidate items
            if j not in items_u:
                denom += math.exp(s(j))
        total += -math.log(math.exp(s(i)) / denom)
    return total / queries.shape[0]


def _tiny_batch():
    # 3 users, left-padded, items 1..9; items shared across users;
    # user 2's history contains item 4, which is user 0's target;
    # user 1's history contains item 7, another row's (user 2's) target.
    history = torch.tensor(
        [
            [0, 1, 2, 3],
            [0, 0, 7, 5],
            [4, 2, 6, 8],
        ]
    )
    target = torch.tensor(
        [
            [0, 2, 3, 4],
            [0, 0, 5, 9],
            [2, 6, 8, 7],
        ]
    )
    return history, target


def test_in_batch_candidates_structure():
    history, target = _tiny_batch()
    res = in_batch_candidates(history, target)
    assert res.candidate_ids.tolist() == [2, 3, 4, 5, 6, 7, 8, 9]
    assert res.batch_index.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert res.position.tolist() == [1, 2, 3, 2, 3, 0, 1, 2, 3]
    assert res.targets.tolist() == [2, 3, 4, 5, 9, 2, 6, 8, 7]
    assert torch.equal(res.targets, target[res.batch_index, res.position])
    user_items = {0: {1, 2, 3, 4}, 1: {5, 7, 9}, 2: {2, 4, 6, 7, 8}}
    for n, u in enumerate(res.batch_index.tolist()):
        expected = [c in user_items[u] for c in res.candidate_ids.tolist()]
        assert res.interacted[n].tolist() == expected
    with pytest.raises(ValueError, match="no non-zero targets"):
        in_batch_candidates(history, torch.zeros_like(target))


def test_debiased_in_batch_ce_matches_loop_reference():
    torch.manual_seed(0)
    history, target = _tiny_batch()
    res = in_batch_candidates(history, target)
    num_items, d = 9, 5
    table = torch.randn(num_items + 1, d)
    counts = torch.tensor([0, 5, 9, 1, 0, 3, 7, 2, 4, 1])
    log_pop = log_popularity(counts)
    queries = torch.randn(res.targets.shape[0], d)
    cand_emb = table[res.candidate_ids]
    loss = debiased_in_batch_ce(
        queries, res.targets, res.candidate_ids, cand_emb, log_pop, res.interacted
    )
    user_items = {0: {1, 2, 3, 4}, 1: {5, 7, 9}, 2: {2, 4, 6, 7, 8}}
    ref = _reference_loss(
        queries,
        res.targets.tolist(),
        res.batch_index.tolist(),
        res.candidate_ids.tolist(),
        cand_emb,
        log_pop,
        user_items,
    )
    assert loss.item() == pytest.approx(ref, rel=1e-5)
    # the debiasing term matters: without it the value differs
    plain = debiased_in_batch_ce(
        queries, res.targets, res.candidate_ids, cand_emb, torch.zeros(10), res.interacted
    )
    assert abs(plain.item() - loss.item()) > 1e-3
    # and the I_u mask matters: without it the value differs too
    unmasked = debiased_in_batch_ce(
        queries,
        res.targets,
        res.candidate_ids,
        cand_emb,
        log_pop,
        torch.zeros_like(res.interacted),
    )
    assert abs(unmasked.item() - loss.item()) > 1e-3
    # gradients flow to queries and candidate embeddings
    q = queries.clone().requires_grad_(True)
    e = cand_emb.clone().requires_grad_(True)
    debiased_in_batch_ce(q, res.targets, res.candidate_ids, e, log_pop, res.interacted).backward()
    assert torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0
    assert torch.isfinite(e.grad).all() and e.grad.abs().sum() > 0


def test_debiased_in_batch_ce_masked_candidates_do_not_count():
    # one row: user interacted with items 3 and 4 (4 is the target); candidates 2, 3, 4
    cand_ids = torch.tensor([2, 3, 4])
    targets = torch.tensor([4])
    interacted = torch.tensor([[False, True, True]])
    log_pop = torch.zeros(5)
    q = torch.tensor([[1.0]])

    def loss_with(emb):
        return debiased_in_batch_ce(q, targets, cand_ids, emb, log_pop, interacted).item()

    base = loss_with(torch.tensor([[0.5], [1.0], [2.0]]))
    # hand: only candidates 2 (non-interacted) and 4 (target) in the denominator
    assert base == pytest.approx(-math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.5))))
    # changing the masked candidate's score (item 3) leaves the loss unchanged
    assert loss_with(torch.tensor([[0.5], [50.0], [2.0]])) == pytest.approx(base)
    # changing the non-masked candidate's score changes it
    assert loss_with(torch.tensor([[3.0], [1.0], [2.0]])) != pytest.approx(base)
    # the target is never masked, even though it is in I_u
    assert loss_with(torch.tensor([[0.5], [1.0], [-2.0]])) != pytest.approx(base)

    # popularity of a masked candidate does not matter either; of an unmasked one it does
    def loss_pop(lp):
        emb = torch.tensor([[0.5], [1.0], [2.0]])
        return debiased_in_batch_ce(q, targets, cand_ids, emb, lp, interacted).item()

    assert loss_pop(torch.tensor([0.0, 0.0, 0.0, -9.0, 0.0])) == pytest.approx(base)
    assert loss_pop(torch.tensor([0.0, 0.0, -9.0, 0.0, 0.0])) != pytest.approx(base)


def test_debiased_in_batch_ce_target_missing_from_candidates():
    with pytest.raises(ValueError, match="not among the in-batch candidates"):
        debiased_in_batch_ce(
            torch.ones(1, 2),
            torch.tensor([7]),
            torch.tensor([1, 2]),
            torch.ones(2, 2),
            torch.zeros(8),
            torch.zeros(1, 2, dtype=torch.bool),
        )
    with pytest.raises(ValueError, match="distinct"):
        debiased_in_batch_ce(
            torch.ones(1, 2),
            torch.tensor([1]),
            torch.tensor([1, 1]),
            torch.ones(2, 2),
            torch.zeros(8),
            torch.zeros(1, 2, dtype=torch.bool),
        )
