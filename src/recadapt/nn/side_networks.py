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
  a smaller encoder; :func:`evenly_spaced_blocks` for towers over encoders of any depths.
* :class:`CrossModalSideNetworks` — CROSSAN's towers over 2–4 modalities (CROSSAN eq. 5), each
  layer's input a gated mix of its own backbone state and all towers' previous outputs.

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


class MixingWeights(nn.Module):
    """Per slot (block), weights over ``options`` inputs that are positive and sum to 1:
    ``softmax(w_slot)`` with ``w = 0`` at start (an even mix), or fixed ``1 / options``
    without gating. With two options this is the scalar gate ``β = sigmoid(w_a − w_b)``."""

    def __init__(self, count: int, options: int, learnable: bool = True) -> None:
        super().__init__()
        self.count, self.options = count, options
        self.logits = nn.Parameter(torch.zeros(count, options)) if learnable else None

    def values(self) -> torch.Tensor:
        """``[count, options]``."""
        if self.logits is None:
            return torch.full((self.count, self.options), 1.0 / self.options)
        return torch.softmax(self.logits, dim=-1)

    def forward(self, index: int) -> torch.Tensor:
        if self.logits is None:
            return torch.full((self.options,), 1.0 / self.options)
        return torch.softmax(self.logits[index], dim=-1)


class InterSideNetwork(nn.Module):
    """Eq. 3–4 over paired layers of two or more modalities:
    ``h_i = SANB_i(Σ_m β_i^m X_i^m + h_{i-1})`` with ``Σ_m β_i^m = 1``.

    Two modalities give IISAN's ``β_i · a_i + (1 − β_i) · X_i``; more give IISAN-E's "gated
    sum of all modalities into the inter-SAN" (CROSSAN paper, 6.1). The network runs at
    ``width`` (default: the last-layer width of modality 0 — the image encoder in IISAN); the
    other modalities enter through the DTL where their widths differ."""

    def __init__(self, dims: Sequence[Sequence[int]], bottleneck: int, dropout: float = 0.1,
                 gated: bool = True, width: int | None = None) -> None:
        super().__init__()
        if len(dims) < 2:
            raise ValueError("the inter-modal network needs at least two modalities")
        if len({len(d) for d in dims}) != 1:
            raise ValueError(
                f"the inter-modal network pairs layers: {[len(d) for d in dims]} selected"
            )
        self.width = width or dims[0][-1]
        self.inputs = nn.ModuleList(StateInputs(d, self.width) for d in dims)
        self.blocks = nn.ModuleList(
            AdapterBlock(self.width, bottleneck, dropout) for _ in dims[0]
        )
        self.gates = MixingWeights(len(dims[0]), len(dims), gated)

    def forward(self, states: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
        xs = [inputs(s) for inputs, s in zip(self.inputs, states, strict=True)]
        hidden: torch.Tensor | None = None
        for i, block in enumerate(self.blocks):
            beta = self.gates(i).to(xs[0][i].dtype)
            mixed = sum(beta[m] * x[i] for m, x in enumerate(xs))
            hidden = block(mixed if hidden is None else mixed + hidden)
        assert hidden is not None
        return hidden


def evenly_spaced_blocks(num_layers: int, count: int) -> list[int]:
    """``count`` blocks of an ``num_layers``-block encoder, evenly spaced and ending at the
    last block: ``round(L · j / count)`` for ``j = 1..count``. With ``count = L / 2`` this is
    :func:`every_second_block` (the papers' LayerDrop); it lets towers over encoders of
    different depths (CROSSAN) keep the same number of side layers."""
    if not 1 <= count <= num_layers:
        raise ValueError(f"cannot keep {count} of {num_layers} blocks")
    # floor(L·j/count + 1/2) in integers (no float rounding surprises)
    return [(2 * num_layers * j + count) // (2 * count) for j in range(1, count + 1)]


class CrossModalSideNetworks(nn.Module):
    """CROSSAN's side-adapter towers, one per modality, eq. 5:

        h_i^t = Adapter_i^t(Σ_m α_i^{t,m} h_{i-1}^m + α_i^{t,H} x_i^t),   Σ α = 1,

    where ``x_i^t`` is tower ``t``'s own backbone state at its ``i``-th kept layer (through
    LayerNorm and, where widths differ, a DTL to the common ``width``) and ``h_{i-1}^m`` the
    previous-layer outputs of **all** towers (its own included). Layer 0 (the embedding
    output) feeds each tower's first adapter directly: there are no previous outputs yet (the
    paper's Figure 4 shows uniform gates in row 0, as zero inputs would leave them).

    ``cross=False`` is INDSAN, the independent-towers ablation: each tower mixes only its own
    previous output and its own backbone state (IISAN's intra-modal eq. 2, as a softmax over
    two). ``gated=False`` fixes every mix at equal weights.
    """

    def __init__(self, dims: Sequence[Sequence[int]], width: int, bottleneck: int,
                 dropout: float = 0.1, gated: bool = True, cross: bool = True) -> None:
        super().__init__()
        if len({len(d) for d in dims}) != 1:
            raise ValueError(f"every tower needs the same number of layers, got "
                             f"{[len(d) for d in dims]}")
        self.num_towers, self.num_slots, self.width = len(dims), len(dims[0]), width
        self.cross = cross
        self.inputs = nn.ModuleList(StateInputs(d, width) for d in dims)
        self.blocks = nn.ModuleList(
            nn.ModuleList(AdapterBlock(width, bottleneck, dropout) for _ in range(self.num_slots))
            for _ in dims
        )
        # per tower, per layer 1..n: weights over [own state H, previous outputs of towers]
        options = 1 + (self.num_towers if cross else 1)
        self.gates = nn.ModuleList(
            MixingWeights(self.num_slots - 1, options, gated) for _ in dims
        )

    def forward(self, states: Sequence[Sequence[torch.Tensor]]) -> list[torch.Tensor]:
        """Per-modality lists of selected-layer states → each tower's last output."""
        xs = [inputs(s) for inputs, s in zip(self.inputs, states, strict=True)]
        hidden = [blocks[0](x[0]) for blocks, x in zip(self.blocks, xs, strict=True)]
        for i in range(1, self.num_slots):
            previous = hidden
            hidden = []
            for t in range(self.num_towers):
                alpha = self.gates[t](i - 1).to(xs[t][i].dtype)
                mixed = alpha[0] * xs[t][i]
                if self.cross:
                    mixed = mixed + sum(alpha[1 + m] * h for m, h in enumerate(previous))
                else:
                    mixed = mixed + alpha[1] * previous[t]
                hidden.append(self.blocks[t][i](mixed))
        return hidden

    def gate_table(self) -> torch.Tensor:
        """``[towers, layers 1..n, 1 + towers]`` gate values (own state first); for INDSAN the
        other towers' columns are 0. The data of the paper's Figure 4."""
        table = torch.zeros(self.num_towers, self.num_slots - 1, 1 + self.num_towers)
        for t, gates in enumerate(self.gates):
            values = gates.values().detach().float().cpu()
            if self.cross:
                table[t] = values
            else:
                table[t, :, 0] = values[:, 0]
                table[t, :, 1 + t] = values[:, 1]
        return table
