"""Frozen backbone (MoRec-style frozen features; IISAN-Versa Table VI "Frozen Backbone").

Each encoder's last-layer state of an item, normalised, concatenated over the encoders and
mapped by one linear layer to the item vector; only that layer and the SASRec user encoder
train. The floor any adaptation method must beat, and the cheapest content model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from pydantic import Field
from torch import nn

from recadapt.models.content import ContentRecommender, LastLayerFusion
from recadapt.models.registry import register_model
from recadapt.models.sequential import LossName, SASRecEncoderConfig

if TYPE_CHECKING:
    from recadapt.encoders.base import EncoderInfo


class FrozenConfig(SASRecEncoderConfig):
    loss: LossName = Field("debiased_ce", description="the papers' in-batch debiased CE")
    cached: bool = Field(True, description="read the last layer from the state cache")


@register_model("frozen", FrozenConfig)
class FrozenBackbone(ContentRecommender):
    """Last-layer frozen features of every configured encoder → linear → SASRec."""

    @classmethod
    def select_layers(cls, config: FrozenConfig,
                      infos: Sequence[EncoderInfo]) -> list[list[int]]:
        return [[info.num_layers] for info in infos]

    def __init__(self, config: FrozenConfig, num_items: int, max_seq_len: int,
                 sources: nn.ModuleList, infos: Sequence[EncoderInfo]) -> None:
        super().__init__(config, num_items, max_seq_len, sources)
        self.tower = LastLayerFusion(infos, config.hidden_size)

    def item_vectors(self, item_ids: torch.Tensor) -> torch.Tensor:
        return self.tower(self.sources, item_ids)
