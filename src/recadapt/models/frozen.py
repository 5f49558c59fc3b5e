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

from recadapt.models.content import ContentModel
from recadapt.models.sequential import LossName, SASRecEncoderConfig, SequentialRecommender
from recadapt.nn.sequence import SASRecEncoder
from recadapt.registry import register_model

if TYPE_CHECKING:
    from recadapt.encoders.base import EncoderInfo


class FrozenConfig(SASRecEncoderConfig):
    loss: LossName = Field("debiased_ce", description="the papers' in-batch debiased CE")
    cached: bool = Field(True, description="read the last layer from the state cache")


@register_model("frozen", FrozenConfig)
class FrozenBackbone(ContentModel, SequentialRecommender):
    """Last-layer frozen features of every configured encoder → linear → SASRec."""

    @classmethod
    def select_layers(cls, config: FrozenConfig,
                      infos: Sequence[EncoderInfo]) -> list[list[int]]:
        return [[info.num_layers] for info in infos]

    @classmethod
    def create(cls, config: FrozenConfig, dataset, run) -> FrozenBackbone:  # type: ignore[override]
        sources, infos = cls.state_sources(config, dataset, run, cached=config.cached)
        return cls(config, dataset.num_items, run.data.max_seq_len, sources, infos)

    def __init__(self, config: FrozenConfig, num_items: int, max_seq_len: int,
                 sources: nn.ModuleList, infos: Sequence[EncoderInfo]) -> None:
        encoder = SASRecEncoder(config.hidden_size, config.num_layers, config.num_heads,
                                config.dropout, max_seq_len, config.inner_size)
        super().__init__(config, num_items, encoder)
        self.sources = sources
        self.norms = nn.ModuleList(nn.LayerNorm(info.dim) for info in infos)
        self.fusion = nn.Linear(sum(info.dim for info in infos), config.hidden_size)

    def item_vectors(self, item_ids: torch.Tensor) -> torch.Tensor:
        parts = [norm(source(item_ids)[0]) for norm, source in zip(self.norms, self.sources,
                                                                     strict=True)]
        return self.fusion(torch.cat(parts, dim=-1))
