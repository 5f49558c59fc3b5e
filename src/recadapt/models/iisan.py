"""IISAN / IISAN-Versa (Fu et al.): intra- and inter-modal side-adapted networks over the cached
per-layer states of two frozen encoders, fused into item vectors for a SASRec user encoder.

    e_item = FL([e_b : e_inter : e_a])                      (eq. 1; FL = linear)
    e_a    = IntraSAN(states of encoder 0)                   (eq. 2, e.g. text / an LLM)
    e_b    = IntraSAN(states of encoder 1)                   (eq. 2, e.g. image / a 2nd text field)
    e_inter = InterSAN(encoder 1 states, DTL(encoder 0 states))   (eq. 3–4)

* **IISAN-VS** (symmetric: equal depth and width): LayerDrop keeps every second block of both.
* **IISAN-VA** (asymmetric: an LLM beside a smaller encoder): the smaller encoder keeps every
  second block (n blocks), the LLM keeps n blocks spaced k apart with k from eq. 5, and the DTL
  maps the LLM's width to the smaller encoder's for the inter-modal network.

Layer 0 (the embedding output) always feeds each network's first block. ``cached: true`` (the
default) trains on the state cache only; ``cached: false`` runs the frozen encoders each step.
Loss: the in-batch debiased cross-entropy (III-G). Ablations (Table VI–VIII) are switches:
``layer_drop``, ``gates``, ``intra``, ``inter``, explicit ``blocks``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from recadapt.errors import ConfigError
from recadapt.models.content import ContentRecommender
from recadapt.models.registry import register_model
from recadapt.models.sequential import LossName, SASRecEncoderConfig
from recadapt.nn.fusion import ModalityFusion
from recadapt.nn.side_networks import (
    InterSideNetwork,
    IntraSideNetwork,
    every_second_block,
    group_layer_drop,
)

if TYPE_CHECKING:
    from recadapt.encoders.base import EncoderInfo


class IISANConfig(SASRecEncoderConfig):
    loss: LossName = Field("debiased_ce", description="the papers' in-batch debiased CE")
    variant: Literal["auto", "vs", "va"] = Field(
        "auto", description="vs: symmetric LayerDrop; va: group layer-drop (eq. 5) for the first "
        "encoder; auto: vs when both encoders have the same depth, else va"
    )
    cached: bool = Field(True, description="train on cached states (false: run the frozen "
                         "encoders at every step)")
    adapter_size: int = Field(64, ge=1, description="SANB bottleneck width")
    adapter_dropout: float = Field(0.1, ge=0, lt=1)
    layer_drop: bool = Field(True, description="false: a SANB for every block (Table VI)")
    gates: bool = Field(True, description="false: fixed 0.5 mixes instead of learned gates")
    intra: bool = Field(True, description="use the two intra-modal networks")
    inter: bool = Field(True, description="use the inter-modal network")
    blocks: list[list[int]] | None = Field(
        None, description="explicit blocks per encoder, e.g. [[2,4,6],[2,4,6]] (Tables VII–VIII); "
        "overrides layer_drop; layer 0 is always added"
    )

    @model_validator(mode="after")
    def _some_tower(self) -> IISANConfig:
        if not (self.intra or self.inter):
            raise ValueError("at least one of intra and inter must be true")
        return self


def select_blocks(config: IISANConfig, num_layers: Sequence[int]) -> list[list[int]]:
    """Blocks (excluding layer 0) read from encoder 0 and encoder 1, per the config."""
    if config.blocks is not None:
        if len(config.blocks) != 2:
            raise ConfigError("model.blocks: give one list of blocks per encoder (two lists)")
        for blocks, depth in zip(config.blocks, num_layers, strict=True):
            bad = [b for b in blocks if not 1 <= b <= depth]
            if bad or not blocks:
                raise ConfigError(f"model.blocks: {blocks} must be non-empty, within 1..{depth}")
        return [sorted(set(b)) for b in config.blocks]
    if not config.layer_drop:
        return [list(range(1, depth + 1)) for depth in num_layers]
    second = every_second_block(num_layers[1])
    variant = config.variant
    if variant == "auto":
        variant = "vs" if num_layers[0] == num_layers[1] else "va"
    first = (every_second_block(num_layers[0]) if variant == "vs"
             else group_layer_drop(num_layers[0], len(second)))
    return [first, second]


@register_model("iisan", IISANConfig)
class IISAN(ContentRecommender):
    """IISAN-Versa over two encoders (see module docstring)."""

    num_encoders = 2

    @classmethod
    def select_layers(cls, config: IISANConfig, infos: Sequence[EncoderInfo]) -> list[list[int]]:
        return [[0, *blocks] for blocks in select_blocks(config, [i.num_layers for i in infos])]

    def __init__(self, config: IISANConfig, num_items: int, max_seq_len: int,
                 sources: nn.ModuleList, infos: Sequence[EncoderInfo]) -> None:
        super().__init__(config, num_items, max_seq_len, sources)
        layers = self.select_layers(config, infos)
        self.layers = layers
        dims = [[info.layer_dims[i] for i in chosen] for info, chosen in zip(infos, layers,
                                                                              strict=True)]
        # the inter-modal network pairs layer 0 and the top blocks of the two selections
        # (the paper's rule for unequal block counts, VI-E)
        pairs = min(len(dims[0]), len(dims[1])) - 1
        self.inter_slots = [[0, *range(len(d) - pairs, len(d))] for d in dims]
        drop, gated, size = config.adapter_dropout, config.gates, config.adapter_size
        widths = []
        if config.intra:
            self.intra_a = IntraSideNetwork(dims[0], size, drop, gated)
            self.intra_b = IntraSideNetwork(dims[1], size, drop, gated)
            widths += [self.intra_b.width, self.intra_a.width]
        if config.inter:
            self.inter_net = InterSideNetwork([[dims[1][s] for s in self.inter_slots[1]],
                                               [dims[0][s] for s in self.inter_slots[0]]],
                                              size, drop, gated)
            widths.append(self.inter_net.width)
        self.fusion = ModalityFusion(widths, config.hidden_size, "concat")  # FL of eq. 1
        self.use_intra, self.use_inter = config.intra, config.inter

    def item_vectors(self, item_ids: torch.Tensor) -> torch.Tensor:
        states_a, states_b = (source(item_ids) for source in self.sources)
        parts = []  # eq. 1 order: [e_image : e_inter : e_text]
        if self.use_intra:
            parts.append(self.intra_b(states_b))
        if self.use_inter:
            parts.append(self.inter_net([[states_b[s] for s in self.inter_slots[1]],
                                         [states_a[s] for s in self.inter_slots[0]]]))
        if self.use_intra:
            parts.append(self.intra_a(states_a))
        return self.fusion(parts)

    def gate_values(self) -> dict[str, list[float]]:
        """Learned gate values per network (μ of eq. 2, β of eq. 3: the weight of modality b's
        own state), for reports."""
        out = {}
        for name in ("intra_a", "intra_b"):
            net = getattr(self, name, None)
            if net is not None:
                out[name] = net.gates.values().tolist()
        if hasattr(self, "inter_net"):
            out["inter_net"] = self.inter_net.gates.values()[:, 0].tolist()
        return out
