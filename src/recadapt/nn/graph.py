"""Graph building blocks for user–item graph recommenders (LightGCN, GraphSAGE), plain torch.

The graph is the bipartite user–item graph over ``num_users + num_items + 1`` nodes in this
order: users ``0 .. num_users - 1``, then items ``0 .. num_items`` at node
``num_users + item`` — item 0 is the padding item, a node that never has edges, so item
indices map to nodes without shifting. Adjacencies are ``torch.sparse_coo`` tensors
(coalesced, float32); propagation is ``torch.sparse.mm``, which back-propagates into the dense
node features.

* :func:`bipartite_adjacency` — symmetric, binary (duplicate edges merged) adjacency ``A``.
* :func:`normalized_adjacency` — ``D^-1/2 A D^-1/2`` (LightGCN, GCN).
* :func:`mean_adjacency` — ``D^-1 A``, row ``v`` averages ``v``'s neighbours (GraphSAGE-mean).
* :func:`sample_neighbours` — keep at most ``fanout`` random edges per row (GraphSAGE sampling).
* :class:`LightGCNPropagation` — weightless propagation, layer mean (He et al., 2020).
* :class:`GraphSAGEEncoder` — mean-aggregator GraphSAGE layers (Hamilton et al., 2017).

Isolated nodes (degree 0) get all-zero rows in every normalised adjacency — no division by
zero — so their propagated features are 0 and models fall back on their own (layer-0 / self)
features. Nothing here knows about datasets; models build the edge lists
(``models/graph_ctr.py``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def bipartite_adjacency(users, items, num_users: int, num_items: int) -> torch.Tensor:
    """Symmetric binary adjacency of the user–item graph (see module docstring for node order).

    ``users`` and ``items`` are equal-length integer sequences (arrays or tensors) of edges
    ``(user, item)``; repeated edges count once (the result is binary), and edges to the
    padding item 0 are dropped so that node stays isolated. Returns a coalesced
    ``[n, n]`` float32 ``torch.sparse_coo`` tensor, ``n = num_users + num_items + 1``.
    """
    users = torch.as_tensor(np.asarray(users), dtype=torch.long).reshape(-1)
    items = torch.as_tensor(np.asarray(items), dtype=torch.long).reshape(-1)
    if users.shape != items.shape:
        raise ValueError(f"users ({users.numel()}) and items ({items.numel()}) differ in length")
    if users.numel() and (users.min() < 0 or users.max() >= num_users):
        raise ValueError(f"user indices must lie in [0, {num_users})")
    if items.numel() and (items.min() < 0 or items.max() > num_items):
        raise ValueError(f"item indices must lie in [0, {num_items}]")
    keep = items > 0
    users, item_nodes = users[keep], items[keep] + num_users
    n = num_users + num_items + 1
    rows = torch.cat([users, item_nodes])
    cols = torch.cat([item_nodes, users])
    adj = _coo(torch.stack([rows, cols]), torch.ones(rows.numel()), (n, n))
    # coalescing sums duplicates; clamp back to 1 so the graph is binary
    return _coo(adj.indices(), adj.values().clamp(max=1.0), (n, n))


def _coo(indices: torch.Tensor, values: torch.Tensor, shape) -> torch.Tensor:
    """A coalesced sparse COO tensor from indices this module built (and checked) itself."""
    return torch.sparse_coo_tensor(indices, values, shape, check_invariants=False).coalesce()


def _degrees(adj: torch.Tensor) -> torch.Tensor:
    """Row sums of a coalesced sparse matrix as a dense vector."""
    rows = adj.indices()[0]
    return torch.zeros(adj.shape[0], dtype=adj.dtype, device=adj.device).index_add_(
        0, rows, adj.values())


def normalized_adjacency(adj: torch.Tensor) -> torch.Tensor:
    """``Â = D^-1/2 A D^-1/2`` (``D`` = row sums of ``A``); isolated nodes stay all-zero."""
    adj = adj.coalesce()
    deg = _degrees(adj)
    inv_sqrt = torch.where(deg > 0, deg.clamp(min=1e-12).rsqrt(), torch.zeros_like(deg))
    rows, cols = adj.indices()
    values = adj.values() * inv_sqrt[rows] * inv_sqrt[cols]
    return _coo(adj.indices(), values, adj.shape)


def mean_adjacency(adj: torch.Tensor) -> torch.Tensor:
    """``D^-1 A``: each non-empty row sums to 1 (the mean over neighbours); isolated nodes
    give all-zero rows."""
    adj = adj.coalesce()
    deg = _degrees(adj)
    inv = torch.where(deg > 0, 1.0 / deg.clamp(min=1e-12), torch.zeros_like(deg))
    values = adj.values() * inv[adj.indices()[0]]
    return _coo(adj.indices(), values, adj.shape)


def sample_neighbours(adj: torch.Tensor, fanout: int,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Keep at most ``fanout`` uniformly drawn edges of every row (GraphSAGE's neighbour
    sampling; rows with ``<= fanout`` edges are kept whole). The result is no longer
    symmetric: row ``v`` lists the neighbours sampled *for* ``v``."""
    if fanout < 1:
        raise ValueError(f"fanout must be >= 1, got {fanout}")
    adj = adj.coalesce()
    rows = adj.indices()[0]
    keys = torch.rand(rows.numel(), generator=generator, device="cpu").to(rows.device)
    order = torch.argsort(keys)
    order = order[torch.argsort(rows[order], stable=True)]  # by row, random within a row
    sorted_rows = rows[order]
    counts = torch.bincount(sorted_rows, minlength=adj.shape[0])
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(rows.numel(), device=rows.device) - starts[sorted_rows]
    kept = order[rank < fanout]
    return _coo(adj.indices()[:, kept], adj.values()[kept], adj.shape)


def _propagate(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``adj @ x`` in the adjacency's dtype (sparse kernels do not take half precision)."""
    return torch.sparse.mm(adj, x.to(adj.dtype))


class LightGCNPropagation(nn.Module):
    """LightGCN (He et al., SIGIR 2020): ``e^(k+1) = Â e^(k)`` (eq. 2/3: neighbourhood
    aggregation with symmetric normalisation, no weights, no non-linearity, no self-loop),
    combined as ``mean_k e^(k)`` over ``k = 0..K`` (eq. 4 with ``α_k = 1 / (K + 1)``).

    ``forward(x, adj)``: ``x`` ``[n, d]`` layer-0 embeddings, ``adj`` the normalised
    adjacency ``Â`` (:func:`normalized_adjacency`). An isolated node's output is ``x/(K+1)``.
    """

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        if num_layers < 0:
            raise ValueError(f"num_layers must be >= 0, got {num_layers}")
        self.num_layers = num_layers

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        layer = x.to(adj.dtype)
        total = layer
        for _ in range(self.num_layers):
            layer = _propagate(adj, layer)
            total = total + layer
        return total / (self.num_layers + 1)


class GraphSAGEEncoder(nn.Module):
    """GraphSAGE with the mean aggregator (Hamilton et al., NeurIPS 2017, Algorithm 1):

    ``h^(k+1)_v = normalize(σ(W_k [h^(k)_v || mean_{u ∈ N(v)} h^(k)_u]))``

    with ``σ = ReLU`` on every layer but the last, which stays linear so its unit-norm outputs
    can point anywhere (a ReLU there would confine every output to the positive orthant and
    every dot product between two outputs to ``[0, 1]``). ``W_k`` is ``[2d → d]`` without bias,
    as in the paper's formula; dropout is applied to each layer's input features (self and
    neighbours alike). Outputs are L2-normalised rows; a node without neighbours is encoded
    from its own features alone (the mean over an empty set is taken as 0).

    **Neighbourhoods.** By default every layer aggregates the full neighbourhood: the
    user–item graphs here have a few thousand nodes, so one sparse product over all edges
    is cheaper than sampling, and exact. ``fanout`` (optional) restores the paper's sampling
    for larger graphs: in training mode each layer averages at most ``fanout`` neighbours
    drawn uniformly per node (a fresh draw every layer and call); evaluation always uses the
    full neighbourhood, making predictions deterministic.

    ``forward(x, adj)``: ``x`` ``[n, dim]``; ``adj`` the (binary) adjacency — the mean
    aggregation normalises it itself; pass ``mean_adj`` to reuse a precomputed
    :func:`mean_adjacency` when no sampling is done.
    """

    def __init__(self, dim: int, num_layers: int, dropout: float = 0.0,
                 fanout: int | None = None) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if fanout is not None and fanout < 1:
            raise ValueError(f"fanout must be >= 1, got {fanout}")
        self.layers = nn.ModuleList(nn.Linear(2 * dim, dim, bias=False)
                                    for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.fanout = fanout
        for layer in self.layers:
            nn.init.xavier_uniform_(layer.weight)

    def forward(self, x: torch.Tensor, adj: torch.Tensor,
                mean_adj: torch.Tensor | None = None) -> torch.Tensor:
        sampling = self.training and self.fanout is not None
        if not sampling and mean_adj is None:
            mean_adj = mean_adjacency(adj)
        h = x
        for index, layer in enumerate(self.layers):
            aggregate = mean_adjacency(sample_neighbours(adj, self.fanout)) if sampling \
                else mean_adj
            h = self.dropout(h)
            neighbours = _propagate(aggregate, h).to(h.dtype)
            h = layer(torch.cat([h, neighbours], dim=-1))
            if index < len(self.layers) - 1:
                h = F.relu(h)
            h = F.normalize(h, dim=-1)
        return h
