"""Graph building blocks on a hand-sized user–item graph."""

from __future__ import annotations

import math

import pytest
import torch

from recadapt.nn.graph import (
    GraphSAGEEncoder,
    LightGCNPropagation,
    bipartite_adjacency,
    mean_adjacency,
    normalized_adjacency,
    sample_neighbours,
)

# 2 users, 2 items; nodes: u0=0, u1=1, item0 (padding)=2, i1=3, i2=4
# edges u0-i1 (given twice), u0-i2, u1-i2, and one to padding item 0 (dropped)
USERS = [0, 0, 0, 1, 1]
ITEMS = [1, 1, 2, 2, 0]


def hand_graph() -> torch.Tensor:
    return bipartite_adjacency(USERS, ITEMS, num_users=2, num_items=2)


def test_adjacency_is_symmetric_binary_and_padding_is_isolated():
    dense = hand_graph().to_dense()
    expected = torch.zeros(5, 5)
    for user, node in ((0, 3), (0, 4), (1, 4)):
        expected[user, node] = expected[node, user] = 1.0
    assert torch.equal(dense, expected)


def test_normalized_adjacency_matches_hand_computation():
    # degrees: u0 2, u1 1, item0 0, i1 1, i2 2
    expected = torch.zeros(5, 5)
    for a, b, value in ((0, 3, 1 / math.sqrt(2)), (0, 4, 0.5), (1, 4, 1 / math.sqrt(2))):
        expected[a, b] = expected[b, a] = value
    got = normalized_adjacency(hand_graph()).to_dense()
    assert torch.allclose(got, expected, atol=1e-6)


def test_isolated_nodes_give_zero_rows_without_nan():
    empty = bipartite_adjacency([], [], num_users=3, num_items=4)
    for matrix in (normalized_adjacency(empty), mean_adjacency(empty),
                   normalized_adjacency(hand_graph()), mean_adjacency(hand_graph())):
        dense = matrix.to_dense()
        assert not torch.isnan(dense).any()
    assert torch.equal(normalized_adjacency(empty).to_dense(), torch.zeros(8, 8))
    assert torch.equal(normalized_adjacency(hand_graph()).to_dense()[2], torch.zeros(5))
    out = LightGCNPropagation(2)(torch.ones(8, 3), normalized_adjacency(empty))
    assert torch.allclose(out, torch.full((8, 3), 1 / 3))


def test_mean_adjacency_rows_average_neighbours():
    dense = mean_adjacency(hand_graph()).to_dense()
    assert torch.allclose(dense.sum(1), torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0]))
    assert torch.allclose(dense[0, [3, 4]], torch.tensor([0.5, 0.5]))


def test_lightgcn_one_layer_is_mean_of_self_and_propagated():
    torch.manual_seed(0)
    e = torch.randn(5, 4)
    r2 = 1 / math.sqrt(2)
    hand = torch.tensor([[0, 0, 0, r2, 0.5],
                         [0, 0, 0, 0, r2],
                         [0, 0, 0, 0, 0],
                         [r2, 0, 0, 0, 0],
                         [0.5, r2, 0, 0, 0]])
    out = LightGCNPropagation(1)(e, normalized_adjacency(hand_graph()))
    assert torch.allclose(out, (e + hand @ e) / 2, atol=1e-6)
    assert torch.allclose(out[2], e[2] / 2)  # the isolated padding node keeps its own term


def test_lightgcn_is_differentiable_and_weightless():
    propagation = LightGCNPropagation(3)
    assert not list(propagation.parameters())
    e = torch.randn(5, 4, requires_grad=True)
    propagation(e, normalized_adjacency(hand_graph()))[0].sum().backward()
    assert e.grad[4].abs().sum() > 0  # u0's neighbour i2 receives gradient through Â


def test_graphsage_shapes_and_unit_norms():
    torch.manual_seed(0)
    encoder = GraphSAGEEncoder(dim=6, num_layers=2, dropout=0.0).eval()
    out = encoder(torch.randn(5, 6), hand_graph())
    assert out.shape == (5, 6)
    assert torch.allclose(out.norm(dim=-1), torch.ones(5), atol=1e-5)


def test_graphsage_layer_sees_neighbours_only():
    torch.manual_seed(0)
    encoder = GraphSAGEEncoder(dim=6, num_layers=1, dropout=0.0).eval()
    x = torch.randn(5, 6)
    adj = hand_graph()
    before = encoder(x, adj)
    neighbour, stranger = x.clone(), x.clone()
    neighbour[4] += 2.0  # i2 is u1's only neighbour
    stranger[3] += 2.0  # i1 is not u1's neighbour
    assert not torch.allclose(encoder(neighbour, adj)[1], before[1])
    assert torch.allclose(encoder(stranger, adj)[1], before[1], atol=1e-6)


def test_neighbour_sampling_keeps_at_most_fanout_edges_per_row():
    users = torch.arange(6).repeat_interleave(5)
    items = torch.randint(1, 21, (30,))
    adj = bipartite_adjacency(users, items, num_users=6, num_items=20)
    sampled = sample_neighbours(adj, fanout=2, generator=torch.Generator().manual_seed(0))
    dense, full = sampled.to_dense(), adj.to_dense()
    assert torch.all(dense.sum(1) <= 2)
    assert torch.equal(dense.sum(1), full.sum(1).clamp(max=2))
    assert torch.all(dense <= full)  # only existing edges
    assert torch.equal(sample_neighbours(adj, fanout=1000).to_dense(), full)
    encoder = GraphSAGEEncoder(dim=4, num_layers=2, fanout=2).train()
    assert encoder(torch.randn(27, 4), adj).shape == (27, 4)


def test_invalid_indices_are_rejected():
    with pytest.raises(ValueError, match="item indices"):
        bipartite_adjacency([0], [3], num_users=2, num_items=2)
    with pytest.raises(ValueError, match="user indices"):
        bipartite_adjacency([2], [1], num_users=2, num_items=2)
