"""CROSSAN (Fu et al.): cross-modal side-adapter towers over 2–4 frozen encoders (text, image,
audio, video) and MOMEF fusion, feeding a SASRec user encoder.

    h_i^t  = Adapter_i^t(Σ_m α_i^{t,m} h_{i-1}^m + α_i^{t,H} x_i^t)     (eq. 5, Σ α = 1)
    e_item = Σ_{m ∈ TopK(i)} w_m(i) · f_m(h_n^m)                         (eq. 6, MOMEF)

* One tower per encoder; each tower's layer-i input mixes its own backbone state and the
  previous-layer outputs of all towers (:class:`~recadapt.nn.side_networks.CrossModalSideNetworks`).
* LayerDrop: every tower keeps ``n`` blocks of its encoder, by default half the blocks of the
  shallowest encoder, evenly spaced and ending at the top (:func:`select_side_layers`), so
  towers over encoders of different depths stay aligned layer by layer.
* Fusion: ``momef`` (default, ``top_k`` experts per item), ``dynamic``, ``static`` or
  ``concat`` (Table 5) — :class:`~recadapt.nn.fusion.ModalityFusion`.
* ``cross: false`` is INDSAN (independent towers, Table 6). Loss: in-batch debiased CE (eq. 7–8),
  plus, with ``balance`` > 0 (not in the paper), a balance term on the MOMEF gate
  (:class:`~recadapt.nn.fusion.ModalityFusion`). ``router: cosine`` (not in the paper) scores
  the experts with X-MoE's bounded cosine router instead of eq. 6's linear gate.

After training, :func:`recadapt.report.analysis.write_run_analysis` (called by the
training loop) writes the gate values (``gates.json``), their
heatmap (``gates.png``, the paper's Figure 4) and the mutual information between the towers'
outputs over all items (``mutual_information.json``, section 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from pydantic import Field
from torch import nn

from recadapt.errors import ConfigError
from recadapt.models.content import ContentRecommender
from recadapt.models.registry import register_model
from recadapt.models.sequential import LossName, SASRecEncoderConfig
from recadapt.nn.fusion import FusionMode, ModalityFusion, Router
from recadapt.nn.side_networks import CrossModalSideNetworks, evenly_spaced_blocks

if TYPE_CHECKING:
    from recadapt.config import RunConfig
    from recadapt.data.dataset import Dataset
    from recadapt.encoders.base import EncoderInfo


class SideTowersConfig(SASRecEncoderConfig):
    """What CROSSAN and IISAN-E share: side towers over the cached states of M encoders."""

    loss: LossName = Field("debiased_ce", description="the papers' in-batch debiased CE")
    cached: bool = Field(True, description="train on cached states (false: run the frozen "
                         "encoders at every step)")
    width: int | None = Field(None, ge=1, description="tower width; default: the smallest "
                              "last-layer width among the encoders (others enter via a DTL)")
    adapter_size: int = Field(64, ge=1, description="adapter bottleneck width")
    adapter_dropout: float = Field(0.1, ge=0, lt=1)
    side_layers: int | None = Field(
        None, ge=1, description="blocks each tower reads (besides layer 0); default: half the "
        "blocks of the shallowest encoder (LayerDrop)"
    )
    layer_drop: bool = Field(True, description="false: as many side layers as the shallowest "
                             "encoder has blocks")
    gates: bool = Field(True, description="false: equal fixed weights instead of learned gates")
    blocks: list[list[int]] | None = Field(
        None, description="explicit blocks per encoder (equal counts), e.g. [[2,4,6],[3,6,8]]; "
        "overrides side_layers; layer 0 is always added"
    )


def select_side_layers(config: SideTowersConfig, infos: Sequence[EncoderInfo]) -> list[list[int]]:
    """Layers ``[0, b_1, …, b_n]`` read from each encoder (see module docstring)."""
    depths = [info.num_layers for info in infos]
    if len(depths) < 2:
        raise ConfigError("encoders: CROSSAN and IISAN-E read at least two encoders (modalities)")
    if config.blocks is not None:
        if len(config.blocks) != len(depths) or len({len(b) for b in config.blocks}) != 1:
            raise ConfigError(f"model.blocks: give one list per encoder ({len(depths)}), all of "
                              "the same length")
        for blocks, depth in zip(config.blocks, depths, strict=True):
            if len(set(blocks)) != len(blocks) or not all(1 <= b <= depth for b in blocks):
                raise ConfigError(f"model.blocks: {blocks} must be distinct blocks in 1..{depth}")
        return [[0, *sorted(blocks)] for blocks in config.blocks]
    shallowest = min(depths)
    count = config.side_layers or (max(1, shallowest // 2) if config.layer_drop else shallowest)
    if count > shallowest:
        raise ConfigError(f"model.side_layers: {count} exceeds the blocks of the shallowest "
                          f"encoder ({shallowest})")
    return [[0, *evenly_spaced_blocks(depth, count)] for depth in depths]


def tower_width(config: SideTowersConfig, infos: Sequence[EncoderInfo]) -> int:
    return config.width or min(info.dim for info in infos)


class CROSSANConfig(SideTowersConfig):
    cross: bool = Field(True, description="false: independent towers (INDSAN, Table 6)")
    fusion: FusionMode = Field("momef", description="momef | dynamic | static | concat "
                               "(Table 5)")
    top_k: int = Field(2, ge=1, description="MOMEF: experts (modalities) kept per item")
    balance: float = Field(0.0, ge=0, description="MOMEF: weight of the DeepSeekMoE expert-level "
                           "balance loss on the gate (0: eq. 6 as printed; needs top_k below "
                           "the modalities)")
    router: Router = Field("linear", description="the gate's scores: linear (eq. 6) or cosine "
                           "(X-MoE's cosine router, not in the paper: bounded scores that "
                           "cannot saturate; momef or dynamic)")
    router_temperature: float = Field(0.5, gt=0, description="cosine router: τ of cos(Wz, e_m) "
                                      "/ τ; two weights differ at most by exp(2/τ)")


class MultiTowerRecommender(ContentRecommender):
    """Base of CROSSAN and IISAN-E: M encoders, modality names for reports, and the analysis
    written after training."""

    modality_names: list[str]

    def __init__(self, config: SideTowersConfig, num_items: int, max_seq_len: int,
                 sources: nn.ModuleList, infos: Sequence[EncoderInfo]) -> None:
        super().__init__(config, num_items, max_seq_len, sources)
        #: layers read from each encoder, their widths, and the common tower width
        self.layers = self.select_layers(config, infos)
        self.dims = [[info.layer_dims[i] for i in chosen]
                     for info, chosen in zip(infos, self.layers, strict=True)]
        self.width = tower_width(config, infos)

    @classmethod
    def select_layers(cls, config: SideTowersConfig,  # type: ignore[override]
                      infos: Sequence[EncoderInfo]) -> list[list[int]]:
        return select_side_layers(config, infos)

    @classmethod
    def create(cls, config: SideTowersConfig, dataset: Dataset,  # type: ignore[override]
               run: RunConfig) -> MultiTowerRecommender:
        model = super().create(config, dataset, run)
        assert isinstance(model, MultiTowerRecommender)
        model.modality_names = [spec.name for spec in run.encoders]
        return model

    def names(self) -> list[str]:
        return getattr(self, "modality_names", None) or [
            f"m{i}" for i in range(len(self.sources))]

    def tower_outputs(self, item_ids: torch.Tensor) -> list[torch.Tensor]:
        """Each modality's item representation before fusion (for the analysis)."""
        raise NotImplementedError


@register_model("crossan", CROSSANConfig)
class CROSSAN(MultiTowerRecommender):
    """CROSSAN / INDSAN over the run's encoders (see module docstring)."""

    def __init__(self, config: CROSSANConfig, num_items: int, max_seq_len: int,
                 sources: nn.ModuleList, infos: Sequence[EncoderInfo]) -> None:
        try:
            ModalityFusion.check(len(infos), config.fusion, config.top_k, config.balance,
                                 config.router, config.router_temperature)
        except ValueError as error:
            raise ConfigError(f"model: {error}") from None
        super().__init__(config, num_items, max_seq_len, sources, infos)
        self.towers = CrossModalSideNetworks(self.dims, self.width, config.adapter_size,
                                             config.adapter_dropout, config.gates, config.cross)
        self.fusion = ModalityFusion([self.width] * len(infos), config.hidden_size,
                                     config.fusion, config.top_k, config.balance,
                                     config.router, config.router_temperature)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The recommendation loss, plus MOMEF's balance term when ``balance`` > 0."""
        self.fusion.take_balance_loss()  # drop terms of forward passes outside a loss
        loss = super().loss(batch)
        balance = self.fusion.take_balance_loss()
        return loss if balance is None else loss + balance.to(loss.dtype)

    def tower_outputs(self, item_ids: torch.Tensor) -> list[torch.Tensor]:
        return self.towers([source(item_ids) for source in self.sources])

    def item_vectors(self, item_ids: torch.Tensor) -> torch.Tensor:
        return self.fusion(self.tower_outputs(item_ids))

    def gate_table(self) -> torch.Tensor:
        return self.towers.gate_table()
