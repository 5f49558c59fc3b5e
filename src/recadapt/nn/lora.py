"""Personalized LoRA (RecLoRA 3.2): a bank of meta-LoRAs mixed per sample by gate weights.

Each target Linear ``W`` of a frozen model gets ``N_m`` meta-LoRA pairs ``(A_k, B_k)`` of rank
``r``; for a sample with gate weights ``alpha`` (``[N_m]``, a softmax) its personalized update
is ``A_p B_p^T = sum_k alpha_k A_k B_k^T`` (eq. 11), used as ordinary LoRA (eq. 9):
``y = x W^T + s · x A_p B_p^T`` with ``s = lora_alpha / r``.

It is applied in **batched form without building a weight per sample**: the A's are stacked
into one ``[d_in, N_m·r]`` matrix and the B's into ``[N_m·r, d_out]``, so
``x A_all`` gives every meta-LoRA's rank-r code at once; multiplying the ``k``-th block of that
code by ``alpha_k`` of the sample and projecting with ``B_all`` is exactly ``x sum_k alpha_k A_k
B_k^T``. Cost: one ``d_in × N_m·r`` and one ``N_m·r × d_out`` matmul per token — the shape of
peft's ``poly`` tuner (which routes per task) with the routing weights given per sample.

Gate weights are set for the next forward passes with :func:`gating` (a context manager), so the
LLM's own ``forward`` signature is untouched; a forward pass without gate weights is an error,
not a silent un-personalized pass. Initialisation as LoRA: ``A`` Kaiming-uniform, ``B`` zero, so
the wrapped model starts exactly as the frozen one. Weights save and load through the model's
``state_dict`` (safetensors in the run folder), under ``<layer>.lora_A`` / ``.lora_B``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from recadapt.errors import ConfigError
from recadapt.nn.peft_methods import WrappedLinear, default_lora_targets, linear_names, matches


class PersonalizedLoRALinear(WrappedLinear):
    """A frozen Linear plus a bank of ``num_meta`` LoRA pairs mixed by per-sample gates."""

    def __init__(self, base_layer: nn.Linear, num_meta: int, r: int = 8, alpha: float = 16,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if num_meta < 1 or r < 1:
            raise ConfigError(f"personalized LoRA needs num_meta >= 1 and r >= 1 (got "
                              f"{num_meta}, {r})")
        self.base_layer = base_layer
        self.num_meta, self.r, self.scaling = num_meta, r, alpha / r
        weight = base_layer.weight
        self.lora_A = nn.Parameter(torch.empty(base_layer.in_features, num_meta * r,
                                               device=weight.device, dtype=weight.dtype))
        self.lora_B = nn.Parameter(torch.zeros(num_meta * r, base_layer.out_features,
                                               device=weight.device, dtype=weight.dtype))
        for k in range(num_meta):  # each A_k as peft initialises lora_A (Kaiming-uniform)
            block = torch.empty(r, base_layer.in_features)
            nn.init.kaiming_uniform_(block, a=math.sqrt(5))
            self.lora_A.data[:, k * r:(k + 1) * r] = block.T.to(weight)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.gates: torch.Tensor | None = None  # [B, num_meta], set by `gating`

    def delta_weight(self, gates: torch.Tensor) -> torch.Tensor:
        """``[B, d_in, d_out]``: each sample's ``A_p B_p^T = sum_k alpha_k A_k B_k^T``
        (explicit; for tests and inspection — the forward never builds it)."""
        a = self.lora_A.view(self.in_features, self.num_meta, self.r)
        b = self.lora_B.view(self.num_meta, self.r, self.out_features)
        per_meta = torch.einsum("ikr,kro->kio", a, b)  # A_k B_k^T
        return torch.einsum("bk,kio->bio", gates.to(per_meta), per_meta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        gates = self.gates
        if gates is None:
            raise RuntimeError("personalized LoRA layer called without gate weights: wrap the "
                               "forward pass in recadapt.nn.lora.gating(model, gates)")
        if gates.shape[0] != x.shape[0]:
            raise ValueError(f"{gates.shape[0]} gate rows for a batch of {x.shape[0]}")
        codes = self.dropout(x).to(self.lora_A.dtype) @ self.lora_A  # [B, ..., N_m·r]
        scale = gates.to(codes).repeat_interleave(self.r, dim=-1)  # [B, N_m·r]
        scale = scale.view(scale.shape[0], *([1] * (codes.dim() - 2)), scale.shape[-1])
        return out + ((codes * scale) @ self.lora_B).to(out.dtype) * self.scaling


def add_personalized_lora(model: nn.Module, num_meta: int, r: int = 8, alpha: float = 16,
                          dropout: float = 0.0, targets: Sequence[str] | None = None
                          ) -> list[str]:
    """Replace the target Linears of ``model`` (q and v projections by default, matched by
    name suffix as in ``peft_methods``) with :class:`PersonalizedLoRALinear`; everything else is
    frozen, only the meta-LoRA banks train. Returns the wrapped module names."""
    chosen = list(targets) if targets else default_lora_targets(model)
    names = [n for n in linear_names(model) if any(matches(n, t) for t in chosen)]
    if not names:
        raise ConfigError(f"model.lora_targets: {chosen} match no Linear layer of "
                          f"{type(model).__name__}")
    for param in model.parameters():
        param.requires_grad_(False)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, PersonalizedLoRALinear(getattr(parent, child), num_meta, r,
                                                      alpha, dropout))
    return names


def personalized_layers(model: nn.Module) -> list[PersonalizedLoRALinear]:
    return [m for m in model.modules() if isinstance(m, PersonalizedLoRALinear)]


@contextmanager
def gating(model: nn.Module, gates: torch.Tensor) -> Iterator[None]:
    """Use ``gates`` (``[B, num_meta]``, one row per sample of the batch) in every personalized
    LoRA layer of ``model`` during the block; cleared afterwards."""
    layers = personalized_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no personalized LoRA layer")
    if gates.dim() != 2 or gates.shape[1] != layers[0].num_meta:
        raise ValueError(f"gates must be [B, {layers[0].num_meta}], got {tuple(gates.shape)}")
    try:
        for layer in layers:
            layer.gates = gates
        yield
    finally:
        for layer in layers:
            layer.gates = None


class LoRAGate(nn.Module):
    """RecLoRA eq. 13–14: ``beta = W2 ReLU(LN(W1 R + b1)) + b2``, ``alpha = softmax(beta /
    tau)`` over the ``num_meta`` meta-LoRAs, from a CTR model's representation ``R``."""

    def __init__(self, in_dim: int, num_meta: int, hidden: int | None = None,
                 temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"model.temperature must be > 0 (got {temperature})")
        hidden = hidden or in_dim
        self.first = nn.Linear(in_dim, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.second = nn.Linear(hidden, num_meta)
        self.temperature = temperature

    def forward(self, representation: torch.Tensor) -> torch.Tensor:
        beta = self.second(torch.relu(self.norm(self.first(representation))))
        return torch.softmax(beta / self.temperature, dim=-1)
