"""ID-based next-item recommenders: popularity, SASRec, GRU4Rec, NextItNet, Caser.

SASRec, GRU4Rec, NextItNet and Caser share one class: an item-ID embedding table (also the
output layer, tied as in SASRec/RecBole) as the item tower of
:class:`~recadapt.models.sequential.SequentialRecommender`, feeding a sequence encoder from
``nn/sequence.py``. NCF, which ignores order, is in ``models/ncf.py``.
"""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from recadapt.models.base import Recommender
from recadapt.models.registry import register_model
from recadapt.models.sequential import (
    SASRecEncoderConfig,
    SequentialConfig,
    SequentialRecommender,
)
from recadapt.nn.sequence import (
    CaserActivation,
    CaserEncoder,
    GRU4RecEncoder,
    NextItNetEncoder,
    SASRecEncoder,
)


class PopularityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


@register_model("popularity", PopularityConfig)
class Popularity(Recommender):
    """Scores every item by its number of training interactions; the floor any model must beat."""

    trainable = False

    def __init__(self, config: PopularityConfig, num_items: int, max_seq_len: int) -> None:
        super().__init__()
        self.register_buffer("counts", torch.zeros(num_items + 1))

    def fit_statistics(self, item_counts: torch.Tensor) -> None:
        self.counts.copy_(item_counts.to(self.counts))

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.counts.unsqueeze(0).expand(batch["history"].shape[0], -1)


class SASRecConfig(SASRecEncoderConfig):
    pass


class GRU4RecConfig(SequentialConfig):
    gru_size: int = Field(128, ge=1)
    num_layers: int = Field(1, ge=1)
    dropout: float = Field(0.3, ge=0, lt=1)


class NextItNetConfig(SequentialConfig):
    """RecBole's NextItNet defaults (hidden 64, kernel 3, dilations [1, 4] × 5 blocks, CE)."""

    kernel_size: int = Field(3, ge=2, description="width of each causal convolution")
    dilations: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [1, 4], min_length=1,
        description="one residual block per entry (its convolutions dilate by d, then 2d)")
    num_blocks: int = Field(5, ge=1, description="how many times the dilations are repeated")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the input item vectors")


class CaserSettings(BaseModel):
    """Caser's own settings, shared by ``caser`` and ``caser-ctr`` (Tang & Wang 2018 defaults:
    L 5, n_v 4, n_h 16, dropout 0.5, ReLU)."""

    window: int = Field(5, ge=1, description="L: how many most recent items each position reads")
    n_v: int = Field(4, ge=0, description="vertical convolution filters (L × 1)")
    n_h: int = Field(16, ge=0, description="horizontal filters of each height 1..L (h × d)")
    dropout: float = Field(0.5, ge=0, lt=1, description="dropout before the fully connected layer")
    fc_activation: CaserActivation = Field("relu", description=(
        "the paper's φ_a after the fully connected layer"))

    @model_validator(mode="after")
    def _some_filters(self) -> CaserSettings:
        if self.n_v + self.n_h == 0:
            raise ValueError("n_v and n_h are both 0: Caser needs at least one convolution")
        return self


class CaserConfig(CaserSettings, SequentialConfig):
    """Caser's defaults; no user embedding (``nn/sequence.py`` ``CaserEncoder``: user-ID free
    like the other encoders)."""


class IDSequentialRecommender(SequentialRecommender):
    """Item-ID embeddings (tied input and output, as in SASRec/RecBole) + a causal encoder."""

    def __init__(self, config: SequentialConfig, num_items: int, encoder: nn.Module) -> None:
        super().__init__(config, num_items, encoder)
        self.items = nn.Embedding(num_items + 1, config.hidden_size, padding_idx=0)
        nn.init.normal_(self.items.weight, std=0.02)
        with torch.no_grad():
            self.items.weight[0].zero_()

    def item_vectors(self, item_ids: torch.Tensor) -> torch.Tensor:
        return self.items(item_ids)

    def all_item_vectors(self) -> torch.Tensor:
        return self.items.weight


@register_model("sasrec", SASRecConfig)
class SASRec(IDSequentialRecommender):
    """SASRec with the papers' defaults (hidden 64, 2 blocks, 2 heads, dropout 0.1)."""

    def __init__(self, config: SASRecConfig, num_items: int, max_seq_len: int) -> None:
        encoder = SASRecEncoder(config.hidden_size, config.num_layers, config.num_heads,
                                config.dropout, max_seq_len, config.inner_size)
        super().__init__(config, num_items, encoder)


@register_model("gru4rec", GRU4RecConfig)
class GRU4Rec(IDSequentialRecommender):
    """GRU4Rec trained on every position of the sequence (RecBole's layout)."""

    def __init__(self, config: GRU4RecConfig, num_items: int, max_seq_len: int) -> None:
        encoder = GRU4RecEncoder(config.hidden_size, config.gru_size, config.num_layers,
                                 config.dropout)
        super().__init__(config, num_items, encoder)


@register_model("nextitnet", NextItNetConfig)
class NextItNet(IDSequentialRecommender):
    """NextItNet (Yuan et al. 2019), a CNN backbone of A-LLMRec's Table 9; trained on every
    position at once like the other sequence models (RecBole makes one sample per prefix: the
    same targets at more compute)."""

    def __init__(self, config: NextItNetConfig, num_items: int, max_seq_len: int) -> None:
        encoder = NextItNetEncoder(config.hidden_size, config.kernel_size, config.dilations,
                                   config.num_blocks, config.dropout)
        super().__init__(config, num_items, encoder)


@register_model("caser", CaserConfig)
class Caser(IDSequentialRecommender):
    """Caser (Tang & Wang 2018), convolutions over the last L items, trained on every position
    at once like the other sequence models (the paper slides windows of L items over each
    sequence and predicts the next T = 3 with sampled negatives: ``loss: bce`` is the closest
    here; the default is the library's full softmax)."""

    def __init__(self, config: CaserConfig, num_items: int, max_seq_len: int) -> None:
        encoder = CaserEncoder(config.hidden_size, config.window, config.n_v, config.n_h,
                               config.dropout, config.fc_activation)
        super().__init__(config, num_items, encoder)
        self.window = config.window

    def user_embeddings(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # the last position reads the last L items only: encode just those columns
        return self.encode(batch["history"][:, -self.window:])[:, -1]
