"""CTR building blocks on hand-sized inputs: field embeddings, FM, cross layer, AutoInt's
interacting layer, DIN's attention and SIM's searches against direct formulas (the fields
themselves: tests/data/test_features.py)."""

from __future__ import annotations

import pytest
import torch

from recadapt.data.features import build_field_tables
from recadapt.errors import ConfigError
from recadapt.nn.ctr import (
    CrossLayer,
    CrossNetwork,
    FeedbackPooling,
    FieldEmbedding,
    InteractingLayer,
    LocalActivationUnit,
    SearchUnit,
    fm_interaction,
    hard_search,
    soft_search,
)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)


def test_field_embedding_shapes_padding_and_multi_valued_mean(feature_dataset):
    users, items = build_field_tables(feature_dataset(), num_buckets=3)
    emb = FieldEmbedding(users, items, dim=4)
    assert emb(torch.tensor([0, 3]), torch.tensor([1, 2])).shape == (2, 3 + 3, 4)
    history = torch.tensor([[0, 1, 2], [0, 0, 3]])
    out = emb.item(history)
    assert out.shape == (2, 3, 3, 4)
    assert torch.equal(out[0, 0], torch.zeros(3, 4))  # padding item → zeros
    genre_table = emb.items.tables[1].weight
    assert torch.allclose(out[0, 1, 1], (genre_table[3] + genre_table[2]) / 2)  # Drama|Comedy
    assert torch.equal(out[1, 2, 1], torch.zeros(4))  # missing genre


def test_fm_term_equals_sum_over_pairs():
    fields = torch.randn(3, 5, 4)
    direct = sum((fields[:, i] * fields[:, j]).sum(-1) for i in range(5) for j in range(i + 1, 5))
    assert torch.allclose(fm_interaction(fields), direct, atol=1e-5)


def test_cross_layer_matches_formula():
    layer = CrossLayer(3)
    with torch.no_grad():
        layer.linear.weight.copy_(torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, -1.0],
                                                [0.5, 0.0, 1.0]]))
        layer.linear.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    x0 = torch.tensor([[1.0, -1.0, 2.0]])
    x = torch.tensor([[0.5, 2.0, -1.0]])
    wx_b = torch.tensor([[0.5 + 4.0 + 0.1, 2.0 + 1.0 - 0.2, 0.25 - 1.0 + 0.3]])
    assert torch.allclose(layer(x0, x), x0 * wx_b + x)
    net = CrossNetwork(3, 2)
    first = net.layers[0](x0, x0)
    assert torch.allclose(net(x0), net.layers[1](x0, first))


def test_interacting_layer_single_head_matches_formula():
    layer = InteractingLayer(4, 6, num_heads=1)
    fields = torch.randn(2, 5, 4)
    q, k, v = layer.query(fields), layer.key(fields), layer.value(fields)
    expected = torch.relu(torch.softmax(q @ k.transpose(1, 2), -1) @ v + layer.residual(fields))
    assert torch.allclose(layer(fields), expected, atol=1e-6)
    assert InteractingLayer(4, 6, num_heads=2)(fields).shape == (2, 5, 6)
    with pytest.raises(ConfigError, match="divisible"):
        InteractingLayer(4, 6, num_heads=4)


def test_feedback_pooling_is_gated_mean_over_real_behaviours():
    pool = FeedbackPooling(2)
    behaviours = torch.tensor([[[9.0, 9.0], [1.0, 2.0], [3.0, 4.0]]])
    labels = torch.tensor([[1.0, 1.0, 0.0]])
    mask = torch.tensor([[False, True, True]])
    assert torch.allclose(pool(behaviours, labels, mask), torch.tensor([[0.5, 1.0]]))  # 1 liked
    assert torch.equal(pool(behaviours, labels, torch.zeros_like(mask)), torch.zeros(1, 2))


def test_din_attention_ignores_padded_positions_and_is_not_normalised():
    unit = LocalActivationUnit(3, hidden=(8,))
    query = torch.randn(2, 3)
    keys = torch.randn(2, 4, 3)
    mask = torch.tensor([[False, False, True, True], [False, True, True, True]])
    pooled, weights = unit(query, keys, mask)
    changed = keys.clone()
    changed[0, 0] = 100.0
    changed[1, 0] = -7.0
    pooled2, weights2 = unit(query, changed, mask)
    assert torch.equal(pooled, pooled2) and torch.equal(weights, weights2)
    assert torch.equal(weights[~mask], torch.zeros(3))
    q = query[0].expand(2, 3)
    raw = unit.mlp(torch.cat([q, keys[0, 2:], q - keys[0, 2:], q * keys[0, 2:]], -1))
    assert torch.allclose(weights[0, 2:], raw.squeeze(-1))  # raw MLP output, no softmax
    assert torch.allclose(pooled[0], (raw * keys[0, 2:]).sum(0), atol=1e-6)


def test_hard_search_keeps_exactly_the_target_category():
    history_category = torch.tensor([[0, 2, 1, 2, 3], [1, 1, 2, 0, 0]])
    mask = torch.tensor([[False, True, True, True, True], [True, True, True, False, False]])
    kept = hard_search(history_category, torch.tensor([2, 0]), mask)
    assert kept.tolist() == [[False, True, False, True, False], [False] * 5]  # 0 matches none
    kept = hard_search(history_category, torch.tensor([1, 1]), mask)
    assert kept.tolist() == [[False, False, True, False, False], [True, True, False, False,
                                                                  False]]


def test_soft_search_keeps_top_k_inner_products():
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    keys = torch.tensor([[[9.0, 0.0], [3.0, 1.0], [-1.0, 5.0], [2.0, 0.0]],
                         [[0.0, 1.0], [0.0, 2.0], [0.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[False, True, True, True], [True, True, False, False]])
    kept = soft_search(query, keys, mask, k=2)  # row 0 scores (pad), 3, -1, 2
    assert kept.tolist() == [[False, True, False, True], [True, True, False, False]]
    assert soft_search(query, keys, mask, k=10).tolist() == mask.tolist()


def test_search_unit_attends_only_to_retrieved_behaviours():
    unit = SearchUnit(2, "soft", top_k=1, hidden=(4,))
    query = torch.tensor([[1.0, 0.0]])
    keys = torch.tensor([[[2.0, 0.0], [0.5, 0.3], [0.1, 0.0]]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    pooled, weights, retrieved = unit(query, keys, mask)
    assert retrieved.tolist() == [[True, False, False]]
    changed = keys.clone()
    changed[0, 2] = torch.tensor([0.2, 0.0])  # still not in the top 1
    assert torch.equal(unit(query, changed, mask)[0], pooled)
    assert weights[0, 1:].abs().sum() == 0
    hard = SearchUnit(2, "hard", top_k=1)
    _, _, retrieved = hard(query, keys, mask, history_category=torch.tensor([[1, 2, 1]]),
                           target_category=torch.tensor([1]))
    assert retrieved.tolist() == [[True, False, True]]  # hard search is not capped at top_k
