"""Building blocks of the conventional CTR models (RecLoRA's CRMs, ``models/ctr_zoo.py``):
feature-field embeddings, FM, MLP, AutoInt's interacting layer, DCNv2's cross layer, DIN's
local activation unit and SIM's search units.

The fields themselves (dataset columns → codes, code 0 = missing) are built in
:mod:`recadapt.data.features` (:func:`~recadapt.data.features.build_field_tables`);
:class:`FieldEmbedding` embeds them, holding the codes as non-persistent buffers (never in
the state dict; rebuilt identically on reload).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from recadapt.data.features import MISSING, FieldTable
from recadapt.errors import ConfigError


class _SideEmbedding(nn.Module):
    """Fields of one side: per field an embedding table (row 0 = missing = zero vector) and
    the code buffer; a multi-valued field is the mean over its non-missing tokens."""

    def __init__(self, table: FieldTable, dim: int, init_std: float) -> None:
        super().__init__()
        self.names = table.names
        self.tables = nn.ModuleList(nn.Embedding(f.size, dim, padding_idx=MISSING)
                                    for f in table.fields)
        for i, spec in enumerate(table.fields):
            self.register_buffer(f"codes_{i}", torch.from_numpy(spec.codes), persistent=False)
            nn.init.normal_(self.tables[i].weight, std=init_std)
            with torch.no_grad():
                self.tables[i].weight[MISSING].zero_()

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        out = []
        for i, table in enumerate(self.tables):
            codes = getattr(self, f"codes_{i}")[index]  # [..., T]
            vectors = table(codes)
            if codes.shape[-1] == 1:
                out.append(vectors[..., 0, :])
            else:
                count = (codes != MISSING).sum(-1, keepdim=True).clamp(min=1)
                out.append(vectors.sum(-2) / count)
        return torch.stack(out, dim=-2)


class FieldEmbedding(nn.Module):
    """Users' and items' fields (:func:`~recadapt.data.features.build_field_tables`)
    → embeddings ``[..., F, d]``."""

    def __init__(self, users: FieldTable, items: FieldTable, dim: int,
                 init_std: float = 0.01) -> None:
        super().__init__()
        self.dim = dim
        self.users = _SideEmbedding(users, dim, init_std)
        self.items = _SideEmbedding(items, dim, init_std)

    @property
    def num_user_fields(self) -> int:
        return len(self.users.names)

    @property
    def num_item_fields(self) -> int:
        return len(self.items.names)

    def user(self, users: torch.Tensor) -> torch.Tensor:
        """``[..., F_user, d]`` for user indices of any shape."""
        return self.users(users)

    def item(self, items: torch.Tensor) -> torch.Tensor:
        """``[..., F_item, d]`` for item indices of any shape (item 0 → all zeros)."""
        return self.items(items)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``[B, F_user + F_item, d]``: the user's fields then the item's."""
        return torch.cat([self.user(users), self.item(items)], dim=-2)


def fm_interaction(fields: torch.Tensor) -> torch.Tensor:
    """FM's second-order term ``sum_{i<j} <v_i, v_j>`` for ``[B, F, d]`` → ``[B]``, in
    O(F d) via ``((sum v)^2 - sum v^2) / 2``."""
    square_of_sum = fields.sum(dim=1).pow(2)
    sum_of_square = fields.pow(2).sum(dim=1)
    return 0.5 * (square_of_sum - sum_of_square).sum(dim=-1)


class MLP(nn.Sequential):
    """``Linear → ReLU → Dropout`` per hidden size (ReLU: RecLoRA B.1 fixes it), then an
    optional output ``Linear``; ``out_features`` is the output width."""

    def __init__(self, input_dim: int, hidden: Sequence[int], dropout: float = 0.0,
                 output_dim: int | None = None) -> None:
        layers: list[nn.Module] = []
        width = input_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        if output_dim is not None:
            layers.append(nn.Linear(width, output_dim))
            width = output_dim
        super().__init__(*layers)
        self.out_features = width


class InteractingLayer(nn.Module):
    """AutoInt's interacting layer: multi-head self-attention across fields with plain
    inner-product scores (AutoInt eq. 5), heads concatenated, plus a projected residual,
    then ReLU: ``[B, F, d_in]`` → ``[B, F, attention_size]``."""

    def __init__(self, input_dim: int, attention_size: int, num_heads: int = 1,
                 residual: bool = True) -> None:
        super().__init__()
        if attention_size % num_heads:
            raise ConfigError(f"model.attention_size: {attention_size} is not divisible by "
                              f"num_heads={num_heads}")
        self.heads = num_heads
        self.query = nn.Linear(input_dim, attention_size, bias=False)
        self.key = nn.Linear(input_dim, attention_size, bias=False)
        self.value = nn.Linear(input_dim, attention_size, bias=False)
        self.residual = nn.Linear(input_dim, attention_size, bias=False) if residual else None

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, f, _ = x.shape
        return x.view(b, f, self.heads, -1).transpose(1, 2)  # [B, H, F, d_h]

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        q, k, v = (self._split(p(fields)) for p in (self.query, self.key, self.value))
        weights = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(fields.shape[0], fields.shape[1], -1)
        if self.residual is not None:
            out = out + self.residual(fields)
        return torch.relu(out)


class CrossLayer(nn.Module):
    """DCNv2's full-rank cross layer: ``x_{l+1} = x_0 * (W x_l + b) + x_l``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x0 * self.linear(x) + x


class CrossNetwork(nn.Module):
    """``num_layers`` stacked :class:`CrossLayer` s over ``x_0``."""

    def __init__(self, dim: int, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(CrossLayer(dim) for _ in range(num_layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self.layers:
            x = layer(x0, x)
        return x


class FeedbackPooling(nn.Module):
    """The history as one field for the feature-interaction models: ``sum_j g_{y_j} * b_j / n``
    over the ``n`` real behaviours, ``g`` a learnt gate vector per feedback (disliked, liked)
    initialised to (0, 1): a liked-weighted mean that can learn to use disliked behaviours."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gates = nn.Parameter(torch.stack([torch.zeros(dim), torch.ones(dim)]))

    def forward(self, behaviours: torch.Tensor, labels: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        gate = self.gates[(labels >= 0.5).long()]  # [B, L, d]
        weighted = torch.where(mask.unsqueeze(-1), gate * behaviours, 0.0)
        return weighted.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)


class LocalActivationUnit(nn.Module):
    """DIN's attention: weight ``w_j = MLP([q, k_j, q - k_j, q * k_j])`` per behaviour, used
    as is (no softmax, so the pooled vector keeps the intensity of interest, DIN 4.3);
    padded behaviours get weight 0 and never enter the sum."""

    def __init__(self, dim: int, hidden: Sequence[int] = (64,), dropout: float = 0.0) -> None:
        super().__init__()
        self.mlp = MLP(4 * dim, hidden, dropout, output_dim=1)

    def forward(self, query: torch.Tensor, keys: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``query [B, D]``, ``keys [B, L, D]``, ``mask [B, L]`` (True = real behaviour) →
        ``(pooled [B, D], weights [B, L])``."""
        keys = torch.where(mask.unsqueeze(-1), keys, 0.0)
        q = query.unsqueeze(1).expand_as(keys)
        scores = self.mlp(torch.cat([q, keys, q - keys, q * keys], dim=-1)).squeeze(-1)
        weights = torch.where(mask, scores, 0.0)
        return (weights.unsqueeze(-1) * keys).sum(1), weights


def hard_search(history_category: torch.Tensor, target_category: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
    """SIM hard search: keep the behaviours of the target's category (``[B, L]`` bool); a
    missing category (0) matches nothing."""
    target = target_category.unsqueeze(-1)
    return mask & (history_category == target) & (target != MISSING)


def soft_search(query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor,
                k: int) -> torch.Tensor:
    """SIM soft search: keep the ``k`` real behaviours with the largest inner product
    ``<query, key_j>`` (all of them when fewer); ``[B, L]`` bool."""
    scores = (keys @ query.unsqueeze(-1)).squeeze(-1).masked_fill(~mask, float("-inf"))
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices
    keep = torch.zeros_like(mask).scatter(1, top, True)
    return keep & mask


class SearchUnit(nn.Module):
    """SIM: the general search unit (hard: same category; soft: top-k inner product) picks
    behaviours, then DIN's local activation unit pools the retrieved ones (the exact search
    unit, here without SIM's time encoding and multi-head attention, which short ID histories
    do not need)."""

    def __init__(self, dim: int, mode: Literal["hard", "soft"], top_k: int,
                 hidden: Sequence[int] = (64,), dropout: float = 0.0) -> None:
        super().__init__()
        self.mode = mode
        self.top_k = top_k
        self.attention = LocalActivationUnit(dim, hidden, dropout)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor, *,
                search_query: torch.Tensor | None = None,
                search_keys: torch.Tensor | None = None,
                history_category: torch.Tensor | None = None,
                target_category: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(pooled [B, D], weights [B, L], retrieved [B, L])``; soft search compares
        ``search_query``/``search_keys`` (default: ``query``/``keys``), hard search the
        categories."""
        if self.mode == "hard":
            if history_category is None or target_category is None:
                raise ValueError("hard search needs history_category and target_category")
            retrieved = hard_search(history_category, target_category, mask)
        else:
            sq = query if search_query is None else search_query
            sk = keys if search_keys is None else search_keys
            retrieved = soft_search(sq.detach(), sk.detach(), mask, self.top_k)
        pooled, weights = self.attention(query, keys, retrieved)
        return pooled, weights, retrieved
