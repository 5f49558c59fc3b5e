"""The bottleneck adapter block, shared by every method that uses one.

* IISAN / IISAN-Versa's side-adapted network block (SANB, III-C): decoupled from the backbone,
  it reads (gated) backbone states.
* CROSSAN's side adapters (Houlsby adapter blocks).
* Houlsby adapters *inside* a backbone (the embedded-PEFT "Adapter" baseline), where the block
  wraps a sub-layer's output.

One block: ``y = LayerNorm(x + up(act(down(x))))`` when ``post_norm`` (the side networks: their
input mixes backbone states of very different scales, e.g. LLM outlier dimensions, so the output
is re-normalised), or ``y = x + up(act(down(x)))`` (Houlsby's in-backbone form, whose
surrounding sub-layer already normalises). ``up`` starts at zero in the in-backbone form so an
inserted adapter is the identity at initialisation, as in Houlsby et al.
"""

from __future__ import annotations

import torch
from torch import nn


class AdapterBlock(nn.Module):
    """Down-projection to ``bottleneck``, non-linearity, up-projection, residual."""

    def __init__(
        self,
        dim: int,
        bottleneck: int,
        dropout: float = 0.0,
        post_norm: bool = True,
        zero_init: bool = False,
    ) -> None:
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.act = nn.GELU()
        self.up = nn.Linear(bottleneck, dim)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim) if post_norm else None
        if zero_init:
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x + self.dropout(self.up(self.act(self.down(x))))
        return self.norm(out) if self.norm is not None else out
