"""Tests for recadapt.eval.metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recadapt.eval.metrics import (
    auc,
    candidate_ranks,
    full_ranks,
    hit_at_k,
    logloss,
    ndcg_at_k,
    ranking_metrics,
    sample_negatives,
    sampled_ranks,
)


def test_hr_ndcg_hand_values():
    ranks = torch.tensor([1, 3, 11])
    assert hit_at_k(ranks, 10).tolist() == [1.0, 1.0, 0.0]
    nd = ndcg_at_k(ranks, 10)
    assert nd.tolist() == pytest.approx([1.0, 0.5, 0.0])
    m = ranking_metrics(ranks, ks=(10, 20))
    assert m["HR@10"] == pytest.approx(2 / 3)
    assert m["NDCG@10"] == pytest.approx((1 + 1 / math.log2(4)) / 3)
    assert m["HR@20"] == pytest.approx(1.0)
    assert m["NDCG@20"] == pytest.approx((1 + 0.5 + 1 / math.log2(12)) / 3)
    assert set(m) == {"HR@10", "NDCG@10", "HR@20", "NDCG@20"}


def test_ranking_metrics_sampled_keys_are_labelled():
    ranks = np.array([1, 2])
    m = ranking_metrics(ranks, ks=(1,), sampled=True)
    assert set(m) == {"sampled_HR@1", "sampled_NDCG@1"}
    assert m["sampled_HR@1"] == pytest.approx(0.5)
    m = ranking_metrics(ranks, ks=(1,), prefix="test_", sampled=True)
    assert set(m) == {"test_sampled_HR@1", "test_sampled_NDCG@1"}
    assert not any(k.startswith("HR") or k.startswith("NDCG") for k in m)


def test_ranks_must_be_one_based():
    with pytest.raises(ValueError):
        hit_at_k(torch.tensor([0, 1]), 10)


def test_full_ranks_basic_and_padding_never_counts():
    # padding column 0 has the highest score: must be ignored
    scores = torch.tensor(
        [
            [100.0, 0.1, 0.9, 0.5, 0.3],  # target 3 (0.5): only item 2 higher -> rank 2
            [100.0, 0.9, 0.1, 0.2, 0.3],  # target 1 (0.9): rank 1
            [100.0, 0.9, 0.1, 0.2, 0.3],  # target 2 (0.1): lowest -> rank 4
        ]
    )
    ranks = full_ranks(scores, torch.tensor([3, 1, 2]))
    assert ranks.dtype == torch.long
    assert ranks.tolist() == [2, 1, 4]


def test_full_ranks_tie_rule_is_pessimistic():
    scores = torch.zeros(2, 6)
    ranks = full_ranks(scores, torch.tensor([1, 5]))
    # all 5 items tie: the target is placed after the 4 others
    assert ranks.tolist() == [5, 5]
    # partial tie: target 2 ties with item 4, item 1 is higher
    scores = torch.tensor([[0.0, 3.0, 2.0, 1.0, 2.0]])
    assert full_ranks(scores, torch.tensor([2])).tolist() == [3]


def test_full_ranks_exclusion_masks_history_but_not_target():
    scores = torch.tensor([[0.0, 0.9, 0.8, 0.7, 0.1], [0.0, 0.9, 0.8, 0.7, 0.1]])
    targets = torch.tensor([3, 3])
    assert full_ranks(scores, targets).tolist() == [3, 3]
    # user 0 has seen items 1 and 3 (3 is also the target: must stay); user 1 nothing
    ranks = full_ranks(scores, targets, exclude=[np.array([1, 3]), np.array([], dtype=int)])
    assert ranks.tolist() == [2, 3]
    # a left-padded history tensor works too, zeros are harmless
    ranks = full_ranks(scores, targets, exclude=torch.tensor([[0, 1, 2], [0, 0, 4]]))
    assert ranks.tolist() == [1, 3]
    # tensors and sets as per-user entries
    ranks = full_ranks(scores, targets, exclude=[torch.tensor([2]), {1, 2}])
    assert ranks.tolist() == [2, 1]


def test_full_ranks_rejects_bad_input():
    scores = torch.zeros(1, 4)
    with pytest.raises(ValueError, match="padding"):
        full_ranks(scores, torch.tensor([0]))
    with pytest.raises(ValueError):
        full_ranks(scores, torch.tensor([4]))
    with pytest.raises(ValueError, match="NaN"):
        full_ranks(torch.tensor([[0.0, float("nan"), 1.0, 2.0]]), torch.tensor([1]))
    with pytest.raises(ValueError):
        full_ranks(scores, torch.tensor([1]), exclude=[[1], [2]])


def test_sampled_ranks():
    scores = torch.tensor([[0.0, 0.5, 0.9, 0.1, 0.5, 0.7]])
    targets = torch.tensor([1])
    # negatives 3 (0.1), 4 (0.5 tie), 2 (0.9): two are >= target -> rank 3
    assert sampled_ranks(scores, targets, torch.tensor([[3, 4, 2]])).tolist() == [3]
    assert sampled_ranks(scores, targets, torch.tensor([[3]])).tolist() == [1]
    # all-equal scores never give rank 1
    assert sampled_ranks(torch.ones(1, 6), targets, torch.tensor([[2, 3]])).tolist() == [3]
    with pytest.raises(ValueError, match="target"):
        sampled_ranks(scores, targets, torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="padding"):
        sampled_ranks(scores, targets, torch.tensor([[0, 2]]))


@pytest.mark.parametrize("num_items", [30, 50_000])
def test_sample_negatives_excludes_and_is_deterministic(num_items):
    exclude = [{1, 2, 3, 7}, set(range(1, num_items - 20)), {num_items}]
    neg = sample_negatives(num_items, exclude, n=20, seed=0)
    assert neg.shape == (3, 20) and neg.dtype == torch.long
    for row, banned in zip(neg.tolist(), exclude, strict=True):
        assert len(set(row)) == 20  # without replacement
        assert all(1 <= i <= num_items for i in row)
        assert not set(row) & banned
    assert torch.equal(neg, sample_negatives(num_items, exclude, n=20, seed=0))
    assert not torch.equal(neg, sample_negatives(num_items, exclude, n=20, seed=1))


def test_sample_negatives_roughly_uniform():
    neg = sample_negatives(10, [{5}] * 3000, n=3, seed=0)
    counts = np.bincount(neg.reshape(-1).numpy(), minlength=11)
    assert counts[0] == 0 and counts[5] == 0
    allowed = counts[[1, 2, 3, 4, 6, 7, 8, 9, 10]]
    assert allowed.min() > 0.8 * 1000 and allowed.max() < 1.2 * 1000


def test_sample_negatives_too_few_items():
    with pytest.raises(ValueError, match="cannot sample"):
        sample_negatives(5, [{1, 2, 3}], n=3, seed=0)


def test_candidate_ranks_rank_column_zero_with_pessimistic_ties():
    scores = torch.tensor([[0.5, 0.1, 0.9, 0.5],   # one better, one tie -> 3
                           [2.0, 1.0, 0.0, -1.0],  # best -> 1
                           [-3.0, -1.0, -2.0, -4.0],  # log-likelihoods: two better -> 3
                           [1.0, 1.0, 1.0, 1.0]])  # all alike: last, not first
    ranks = candidate_ranks(scores)
    assert ranks.tolist() == [3, 1, 3, 4] and ranks.dtype == torch.long
    assert candidate_ranks(torch.tensor([[7.0]])).tolist() == [1]  # no negatives
    assert candidate_ranks(scores.half()).tolist() == [3, 1, 3, 4]
    with pytest.raises(ValueError, match=r"\[B, 1 \+ N\]"):
        candidate_ranks(torch.zeros(4))
    with pytest.raises(ValueError, match=r"\[B, 1 \+ N\]"):
        candidate_ranks(torch.zeros(2, 0))


@pytest.mark.parametrize("num_items", [30, 50_000])
def test_sample_negatives_with_keys_do_not_depend_on_the_batch(num_items):
    exclude = [{1, 2, 3}, {4}, {5, 6, 7, 8}, {4}]
    keys = [10, 11, 12, 13]
    together = sample_negatives(num_items, exclude, n=6, seed=7, keys=keys)
    for row, banned in zip(together.tolist(), exclude, strict=True):
        assert len(set(row)) == 6 and not set(row) & banned
        assert all(1 <= i <= num_items for i in row)
    for b in range(len(keys)):  # alone, or in another batch order: the same row
        alone = sample_negatives(num_items, [exclude[b]], n=6, seed=7, keys=[keys[b]])
        assert torch.equal(alone[0], together[b])
    flipped = sample_negatives(num_items, exclude[::-1], n=6, seed=7, keys=keys[::-1])
    assert torch.equal(flipped, together.flip(0))
    # the key, not the exclusion, picks the stream: users 11 and 13 exclude the same item
    assert not torch.equal(together[1], together[3])
    assert not torch.equal(together, sample_negatives(num_items, exclude, n=6, seed=8,
                                                      keys=keys))
    # without keys a row depends on the rows drawn before it
    shared = sample_negatives(num_items, exclude, n=6, seed=7)
    assert not torch.equal(shared[1], sample_negatives(num_items, exclude[1:], n=6, seed=7)[0])
    with pytest.raises(ValueError, match="keys has 3 entries for 4 users"):
        sample_negatives(num_items, exclude, n=6, seed=7, keys=keys[:3])


def test_auc_hand_example_with_ties():
    labels = [1, 0, 1, 0, 1]
    scores = [0.9, 0.8, 0.5, 0.5, 0.1]
    # pos/neg pairs: (0.9: beats 2), (0.5: beats none, ties 1 -> 0.5), (0.1: 0) => 2.5 / 6
    assert auc(labels, scores) == pytest.approx(2.5 / 6)
    assert auc([0, 1], [0.2, 0.7]) == pytest.approx(1.0)
    assert auc([0, 1], [0.7, 0.2]) == pytest.approx(0.0)
    assert auc([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="one class"):
        auc([1, 1], [0.1, 0.2])


def test_logloss_hand_example():
    labels = np.array([1, 0, 1])
    probs = np.array([0.8, 0.4, 0.5])
    expected = -(math.log(0.8) + math.log(0.6) + math.log(0.5)) / 3
    assert logloss(labels, probs) == pytest.approx(expected)
    # clipping keeps it finite
    assert math.isfinite(logloss([1, 0], [0.0, 1.0]))
    assert logloss([1, 0], [0.0, 1.0]) == pytest.approx(-math.log(1e-7), rel=1e-4)
    with pytest.raises(ValueError, match="logits"):
        logloss([1, 0], [2.0, -1.0])


def test_accuracy_by_hand():
    from recadapt.eval.metrics import accuracy

    # predictions 1, 0, 1, 1 (0.5 counts as yes) against labels 1, 0, 0, 1: 3 of 4 right
    assert accuracy([1, 0, 0, 1], [0.9, 0.2, 0.5, 0.51]) == 0.75
    assert accuracy([1, 0], [0.4, 0.6]) == 0.0
    with pytest.raises(ValueError):
        accuracy([1, 2], [0.1, 0.2])
