"""Decoupled side-adapted networks over cached backbone states (IISAN / IISAN-Versa, III-C–E).

A *side network* is a chain of adapter blocks (SANBs, :class:`~recadapt.nn.adapters.AdapterBlock`)
that reads a frozen backbone's per-layer states from the side; gradients never enter the
backbone, so its states can be computed once and cached.

* :class:`IntraSideNetwork` — one modality, eq. 2:
  ``h_i = SANB_i(μ_i · h_{i-1} + (1 − μ_i) · x_i)``, the first block reading the embedding
  layer only.
* :class:`InterSideNetwork` — two modalities, eq. 3–4:
  ``h_i = SANB_i(β_i · a_i + (1 − β_i) · X_i + h_{i-1})``, with ``X_i`` the other modality's
  state through the dimension transformation layer (DTL) when widths differ (IISAN-VA).
* LayerDrop (III-E): :func:`every_second_block` for symmetric encoders, and the group
  layer-drop of eq. 5 (:func:`group_layer_drop_k`, :func:`group_layer_drop`) for an LLM beside
  a smaller encoder.

Choices where the paper is silent (also in ``docs/decisions.md``):

* Gates are scalars per block, ``μ = sigmoid(w)`` with ``w = 0`` at start (an even mix);
  "without gates" fixes them at 0.5.
* Every backbone state passes through its own LayerNorm before entering a tower: LLM hidden
  states carry outlier dimensions thousands of times larger than the rest, and CNN stages
  differ in scale, so raw states would swamp the gated sums.
* A state whose width differs from the tower's goes through a linear DTL; states of equal width
  share one DTL (the paper's single DTL for an LLM's layers), different widths (CNN stages)
  get one each.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from recadapt.nn.adapters import AdapterBlock


def every_second_block(num_layers: int) -> list[int]:
    """IISAN's LayerDrop for symmetric encoders: keep blocks 2, 4, …, L (the even-numbered
    blocks, Table VII's best "6 of 12"); counted down from the top so an odd L keeps L."""
    if num_layers < 1:
        raise ValueError("an encoder needs at least one block")
    return sorted(range(num_layers, 0, -2))


def group_layer_drop_k(text_layers: int, kept_image_blocks: int) -> int:
    """Eq. 5: the largest ``k`` with ``L_text − k · (L_image / 2) ≥ 1``, where
    ``L_image / 2`` is the number of image blocks kept by LayerDrop."""
    if kept_image_blocks < 1 or text_layers < 1:
        raise ValueError("both encoders need at least one kept block")
    k = (text_layers - 1) // kept_image_blocks
    if k < 1:
        raise ValueError(
            f"group layer-drop needs more text blocks ({text_layers}) than kept image blocks "
            f"({kept_image_blocks})"
        )
    return k


def group_layer_drop(text_layers: int, kept_image_blocks: int) -> list[int]:
    """The text blocks kept for IISAN-VA: ``kept_image_blocks`` blocks spaced ``k`` apart
    (eq. 5), ending at the last block — the same rule as :func:`every_second_block`, whose
    spacing is 2 (the paper's default "6(even_all)" spreads the blocks over the whole LLM)."""
    k = group_layer_drop_k(text_layers, kept_image_blocks)
    return [text_layers - k * (kept_image_blocks - 1 - j) for j in range(kept_image_blocks)]


class StateInputs(nn.Module):
    """LayerNorm per incoming layer, then a DTL (linear) where the width differs from the
    tower's; one DTL per distinct input width (see module docstring)."""

    def __init__(self, dims: Sequence[int], width: int) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(d) for d in dims)
        self.dims = list(dims)
        self.dtl = nn.ModuleDict(
            {str(d): nn.Linear(d, width) for d in sorted(set(dims)) if d != width}
        )

    def forward(self, states: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(states) != len(self.norms):
            raise ValueError(f"expected {len(self.norms)} layers of states, got {len(states)}")
        out = []
        for norm, dim, state in zip(self.norms, self.dims, states, strict=True):
            if state.shape[-1] != dim:
                raise ValueError(f"a state of width {state.shape[-1]} where {dim} was expected")
            x = norm(state)
            out.append(self.dtl[str(dim)](x) if str(dim) in self.dtl else x)
        return out


class Gates(nn.Module):
    """Scalar gates in [0, 1] per block: ``sigmoid(w)``, or a fixed 0.5 without gating."""

    def __init__(self, count: int, learnable: bool = True) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(count)) if learnable else None
        self.count = count

    def values(self) -> torch.Tensor:
        if self.logits is None:
            return torch.full((self.count,), 0.5)
        return torch.sigmoid(self.logits)

    def forward(self, index: int) -> torch.Tensor | float:
        return 0.5 if self.logits is None else torch.sigmoid(self.logits[index])


class IntraSideNetwork(nn.Module):
    """Eq. 2 over one modality's selected layers ``[0, b_1, …, b_n]``: ``n + 1`` SANBs."""

    def __init__(self, dims: Sequence[int], bottleneck: int, dropout: float = 0.1,
                 gated: bool = True, width: int | None = None) -> None:
        super().__init__()
        self.width = width or dims[-1]
        self.inputs = StateInputs(dims, self.width)
        self.blocks = nn.ModuleList(
            AdapterBlock(self.width, bottleneck, dropout) for _ in dims
        )
        self.gates = Gates(len(dims) - 1, gated)

    def forward(self, states: Sequence[torch.Tensor]) -> torch.Tensor:
        xs = self.inputs(states)
        hidden = self.blocks[0](xs[0])
        for i in range(1, len(xs)):
            mu = self.gates(i - 1)
            hidden = self.blocks[i](mu * hidden + (1 - mu) * xs[i])
        return hidden


class InterSideNetwork(nn.Module):
    """Eq. 3–4 over paired layers of two modalities; runs at the width of modality ``a`` (the
    image encoder in the paper), modality ``b`` (the text encoder / LLM) enters via the DTL."""

    def __init__(self, dims_a: Sequence[int], dims_b: Sequence[int], bottleneck: int,
                 dropout: float = 0.1, gated: bool = True) -> None:
        super().__init__()
        if len(dims_a) != len(dims_b):
            raise ValueError(
                f"the inter-modal network pairs layers: {len(dims_a)} vs {len(dims_b)} selected"
            )
        self.width = dims_a[-1]
        self.inputs_a = StateInputs(dims_a, self.width)
        self.inputs_b = StateInputs(dims_b, self.width)
        self.blocks = nn.ModuleList(
            AdapterBlock(self.width, bottleneck, dropout) for _ in dims_a
        )
        self.gates = Gates(len(dims_a), gated)

    def forward(self, states_a: Sequence[torch.Tensor],
                states_b: Sequence[torch.Tensor]) -> torch.Tensor:
        a, x = self.inputs_a(states_a), self.inputs_b(states_b)
        beta = self.gates(0)
        hidden = self.blocks[0](beta * a[0] + (1 - beta) * x[0])
        for i in range(1, len(a)):
            beta = self.gates(i)
            hidden = self.blocks[i](beta * a[i] + (1 - beta) * x[i] + hidden)
        return hidden
