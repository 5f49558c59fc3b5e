"""IISAN-E: IISAN extended to M modalities, the baseline of the CROSSAN paper (section 6.1).

"We extend its structure by incorporating additional intra-SAN layers to handle more MFMs. In
this expanded IISAN-E, we use a gated sum to combine the hidden states of all MFMs into the
inter-SAN."

    e_m     = IntraSAN_m(states of encoder m)                  (IISAN eq. 2, one per modality)
    e_inter = InterSAN(Σ_m β_i^m X_i^m + h_{i-1})              (IISAN eq. 3–4, Σ_m β_i^m = 1)
    e_item  = FL([e_1 : … : e_M : e_inter])                    (IISAN eq. 1)

For a fair comparison with CROSSAN it reads the same layers (:func:`select_side_layers`) at the
same tower width, so both train on the same caches; with two encoders of equal depth it is
IISAN-VS up to the order of the fused parts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from pydantic import Field, model_validator
from torch import nn

from recadapt.models.crossan import MultiTowerRecommender, SideTowersConfig
from recadapt.models.registry import register_model
from recadapt.nn.fusion import ModalityFusion
from recadapt.nn.side_networks import InterSideNetwork, IntraSideNetwork

if TYPE_CHECKING:
    from recadapt.encoders.base import EncoderInfo


class IISANEConfig(SideTowersConfig):
    intra: bool = Field(True, description="use the intra-modal networks")
    inter: bool = Field(True, description="use the inter-modal network")

    @model_validator(mode="after")
    def _some_tower(self) -> IISANEConfig:
        if not (self.intra or self.inter):
            raise ValueError("at least one of intra and inter must be true")
        return self


@register_model("iisan-e", IISANEConfig)
class IISANE(MultiTowerRecommender):
    """IISAN-E over the run's encoders (see module docstring)."""

    def __init__(self, config: IISANEConfig, num_items: int, max_seq_len: int,
                 sources: nn.ModuleList, infos: Sequence[EncoderInfo]) -> None:
        super().__init__(config, num_items, max_seq_len, sources, infos)
        dims, width = self.dims, self.width
        size, drop, gated = config.adapter_size, config.adapter_dropout, config.gates
        self.intra = nn.ModuleList(
            IntraSideNetwork(d, size, drop, gated, width=width) for d in dims
        ) if config.intra else None
        self.inter_net = InterSideNetwork(dims, size, drop, gated, width=width) \
            if config.inter else None
        parts = (len(dims) if config.intra else 0) + (1 if config.inter else 0)
        self.fusion = ModalityFusion([width] * parts, config.hidden_size, "concat")

    def _intra_outputs(self, states: list[list[torch.Tensor]]) -> list[torch.Tensor]:
        if self.intra is None:
            return []
        return [net(s) for net, s in zip(self.intra, states, strict=True)]

    def tower_outputs(self, item_ids: torch.Tensor) -> list[torch.Tensor]:
        """The intra towers' outputs, one per modality (the inter tower mixes them all)."""
        if self.intra is None:
            return []
        return self._intra_outputs([source(item_ids) for source in self.sources])

    def item_vectors(self, item_ids: torch.Tensor) -> torch.Tensor:
        states = [source(item_ids) for source in self.sources]
        parts = self._intra_outputs(states)
        if self.inter_net is not None:
            parts.append(self.inter_net(states))
        return self.fusion(parts)
