"""Embedded-PEFT baselines (IISAN-Versa Table III): FFT, Adapter [Houlsby], LoRA, BitFit.

Each configured encoder runs *inside* the training graph at every step, its last-layer state
of an item normalised, concatenated over the encoders and mapped by one linear layer to the
item vector for the same SASRec user encoder as IISAN and the frozen baseline (models/frozen.py,
whose item tower this is, with a trainable backbone):

* ``fft``: every backbone parameter trains;
* ``lora``: peft LoRA on the attention query/value projections (r 8, alpha 16, dropout 0.1);
* ``adapter``: Houlsby adapters after the attention-output and feed-forward-output projections
  of every layer, plus the backbone's LayerNorms;
* ``bitfit``: only the backbone's bias terms.

The per-encoder LayerNorm, the fusion layer and SASRec train in every method. A CNN backbone's
BatchNorm statistics update only under ``fft`` (:meth:`EmbeddedPEFT.train`). The backbone's
trainable parameters get their own learning rate (``backbone_lr``), as usual in fine-tuning.
These are the methods IISAN-Versa's efficiency analysis (IV) contrasts with decoupled PEFT: the
backward pass traverses the whole foundation model, and nothing can be cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import torch
from pydantic import Field
from torch import nn

from recadapt.models.content import ContentRecommender, LastLayerFusion, LiveStates
from recadapt.models.registry import register_model
from recadapt.models.sequential import LossName, SASRecEncoderConfig
from recadapt.nn.peft_methods import (
    add_houlsby_adapters,
    add_lora,
    mark_method,
    train_all,
    train_biases,
)

if TYPE_CHECKING:
    from recadapt.encoders.base import EncoderInfo


class EPEFTConfig(SASRecEncoderConfig):
    """Keys shared by the four methods; each registered name has its own subclass, so a key of
    another method (``lora_r`` under ``adapter``) is rejected instead of silently ignored."""

    method: ClassVar[str] = ""

    loss: LossName = Field(
        "debiased_ce", description="the papers' in-batch debiased CE (ce would run the "
        "backbone with gradients over the whole catalogue at every step)"
    )
    backbone_lr: float | None = Field(
        1e-4, gt=0, description="learning rate of every trainable parameter inside the "
        "encoders (FFT weights, LoRA matrices, adapters, biases); null: train.lr"
    )


class FFTConfig(EPEFTConfig):
    method: ClassVar[str] = "fft"


class LoRAConfig(EPEFTConfig):
    method: ClassVar[str] = "lora"

    lora_r: int = Field(8, ge=1, description="LoRA rank")
    lora_alpha: float = Field(16, gt=0, description="LoRA scaling numerator (scale alpha / r)")
    lora_dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the LoRA input")
    lora_targets: list[str] | None = Field(
        None, description="module-name suffixes LoRA wraps in every encoder (each encoder must "
        "match at least one); default: the attention query and value projections"
    )


class AdapterConfig(EPEFTConfig):
    method: ClassVar[str] = "adapter"

    adapter_size: int = Field(64, ge=1, description="Houlsby adapter bottleneck width")
    adapter_targets: list[str] | None = Field(
        None, description="Linear module-name suffixes followed by an adapter; default: the "
        "attention-output and feed-forward-output projections of every layer"
    )


class BitFitConfig(EPEFTConfig):
    method: ClassVar[str] = "bitfit"


def adapt_backbone(config: EPEFTConfig, backbone: nn.Module) -> None:
    """Apply ``config.method`` to one encoder's backbone, in place."""
    mark_method(backbone, config.method)
    if isinstance(config, LoRAConfig):
        add_lora(backbone, config.lora_r, config.lora_alpha, config.lora_dropout,
                 config.lora_targets)
    elif isinstance(config, AdapterConfig):
        add_houlsby_adapters(backbone, config.adapter_size, config.adapter_targets)
    elif config.method == "fft":
        train_all(backbone)
    elif config.method == "bitfit":
        train_biases(backbone)
    else:
        raise ValueError(f"unknown embedded-PEFT method {config.method!r}")


class EmbeddedPEFT(ContentRecommender):
    """Trainable encoders (one method) → last-layer state → LayerNorm → concat → linear →
    SASRec. Registered once per method (``fft``, ``lora``, ``adapter``, ``bitfit``)."""

    #: never cached, always live and trainable: the backbone's parameters change at every
    #: optimiser step, so states computed before a step are stale after it (and the backward
    #: pass needs the backbone's activations anyway)
    cacheable = False

    @classmethod
    def select_layers(cls, config: EPEFTConfig,
                      infos: Sequence[EncoderInfo]) -> list[list[int]]:
        return [[info.num_layers] for info in infos]

    def __init__(self, config: EPEFTConfig, num_items: int, max_seq_len: int,
                 sources: nn.ModuleList, infos: Sequence[EncoderInfo]) -> None:
        """``sources``: one ``LiveStates(..., trainable=True)`` per encoder, over its last
        layer; the method is applied to each backbone here, so a model built from fresh
        encoders has the same parameters (and ``state_dict`` keys) as the one saved."""
        for source in sources:
            if not (isinstance(source, LiveStates) and source.trainable):
                raise TypeError("embedded PEFT trains the encoders: pass "
                                "LiveStates(..., trainable=True) sources")
        super().__init__(config, num_items, max_seq_len, sources)
        for source in sources:
            adapt_backbone(config, source.backbone_encoder.backbone())
        self.tower = LastLayerFusion(infos, config.hidden_size)
        self.method = config.method
        self.backbone_lr = config.backbone_lr

    def item_vectors(self, item_ids: torch.Tensor) -> torch.Tensor:
        return self.tower(self.sources, item_ids)

    def train(self, mode: bool = True) -> EmbeddedPEFT:
        """BatchNorm running statistics are buffers, not parameters. Under ``fft`` they update
        as in ordinary fine-tuning; ``lora``, ``adapter`` and ``bitfit`` do not train them (they
        are not among the method's parameters), so a CNN backbone's BatchNorm layers stay in
        eval mode and normalise with the pretrained statistics, whatever the item batches."""
        super().train(mode)
        if mode and self.method != "fft":
            for source in self.sources:
                for module in source.backbone_encoder.backbone().modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
        return self

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The trainable parameters inside the encoders (what ``method`` trains)."""
        return [p for p in self.sources.parameters() if p.requires_grad]

    def parameter_groups(self, lr: float) -> list[dict]:
        backbone = self.backbone_parameters()
        inside = {id(p) for p in backbone}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in inside]
        groups = [{"params": rest, "lr": lr}]
        if backbone:
            groups.append({"params": backbone,
                           "lr": lr if self.backbone_lr is None else self.backbone_lr})
        return groups


@register_model("fft", FFTConfig)
class FullFineTuning(EmbeddedPEFT):
    """FFT: the whole backbone trains."""


@register_model("lora", LoRAConfig)
class LoRA(EmbeddedPEFT):
    """LoRA (Hu et al.) in the attention query/value projections."""


@register_model("adapter", AdapterConfig)
class HoulsbyAdapter(EmbeddedPEFT):
    """Houlsby adapters after each layer's attention and feed-forward outputs."""


@register_model("bitfit", BitFitConfig)
class BitFit(EmbeddedPEFT):
    """BitFit (Ben Zaken et al.): the backbone's biases train."""
