"""ID-based next-item recommenders: popularity, SASRec, GRU4Rec.

SASRec and GRU4Rec share one class: an item-ID embedding table (also the output layer, tied as
in SASRec/RecBole) feeding a sequence encoder from ``nn/sequence.py``.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from recadapt import losses
from recadapt.models.base import Recommender
from recadapt.nn.sequence import GRU4RecEncoder, SASRecEncoder
from recadapt.registry import register_model

LossName = Literal["ce", "bce", "debiased_ce"]


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


class SequentialConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(64, ge=1, description="item embedding and encoder width")
    loss: LossName = Field("ce", description="ce (full softmax), bce (1 sampled negative), "
                           "debiased_ce (in-batch, popularity-corrected)")


class SASRecConfig(SequentialConfig):
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(2, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    inner_size: int | None = Field(None, description="feed-forward width (default 4 × hidden)")


class GRU4RecConfig(SequentialConfig):
    gru_size: int = Field(128, ge=1)
    num_layers: int = Field(1, ge=1)
    dropout: float = Field(0.3, ge=0, lt=1)


class IDSequentialRecommender(Recommender):
    """Item-ID embeddings + a causal sequence encoder; next-item scores by dot product."""

    def __init__(self, config: SequentialConfig, num_items: int, encoder: nn.Module) -> None:
        super().__init__()
        self.loss_name = config.loss
        self.num_items = num_items
        self.items = nn.Embedding(num_items + 1, config.hidden_size, padding_idx=0)
        nn.init.normal_(self.items.weight, std=0.02)
        with torch.no_grad():
            self.items.weight[0].zero_()
        self.encoder = encoder
        self.register_buffer("log_popularity", torch.zeros(num_items + 1))

    def fit_statistics(self, item_counts: torch.Tensor) -> None:
        self.log_popularity.copy_(losses.log_popularity(item_counts).to(self.log_popularity))

    def item_embeddings(self) -> torch.Tensor:
        return self.items.weight

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        valid = history > 0
        return self.encoder(self.items(history), valid)

    def user_embeddings(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encode(batch["history"])[:, -1]

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        history, target = batch["history"], batch["target"]
        states = self.encode(history)
        rows = target > 0
        queries, positives = states[rows], target[rows]
        if self.loss_name == "ce":
            return losses.full_softmax_ce(queries, self.items.weight, positives)
        if self.loss_name == "bce":
            negatives = torch.randint(1, self.num_items + 1, positives.shape, device=history.device)
            pos_logits = (queries * self.items(positives)).sum(-1)
            neg_logits = (queries * self.items(negatives)).sum(-1)
            return losses.sampled_bce(pos_logits, neg_logits)
        candidates = losses.in_batch_candidates(history, target)
        return losses.debiased_in_batch_ce(
            states[candidates.batch_index, candidates.position],
            candidates.targets,
            candidates.candidate_ids,
            self.items(candidates.candidate_ids),
            self.log_popularity,
            candidates.interacted,
        )


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
