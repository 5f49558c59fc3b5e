"""Next-item models = an *item tower* (item index → vector) + a causal sequence encoder.

ID models (SASRec, GRU4Rec) use an embedding table as the tower; content models (IISAN, the
embedded-PEFT baselines, frozen features) compute item vectors from frozen-encoder states. The
training losses, user representations and full-ranking scores are the same for all of them and
live here, once.

Content towers are costly, so :meth:`SequentialRecommender.item_vectors` is called once per
step on the *distinct* items of the batch (history and targets together), and in evaluation the
whole item table is computed once and reused until the weights change.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from recadapt.models.base import Recommender
from recadapt.nn import losses

LossName = Literal["ce", "bce", "debiased_ce"]


class SequentialConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(64, ge=1, description="item vector and sequence encoder width")
    loss: LossName = Field("ce", description="ce (full softmax), bce (1 sampled negative), "
                           "debiased_ce (in-batch, popularity-corrected)")


class SASRecEncoderConfig(SequentialConfig):
    """The SASRec user encoder of the papers (IISAN V-D, CROSSAN 5): 2 blocks, 2 heads."""

    num_layers: int = Field(2, ge=1, description="transformer blocks of the sequence encoder")
    num_heads: int = Field(2, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    inner_size: int | None = Field(None, description="feed-forward width (default 4 × hidden)")


class SequentialRecommender(Recommender):
    """Subclasses implement :meth:`item_vectors` (and may override :meth:`all_item_vectors`)."""

    #: chunk size when computing the whole item table through a content tower
    table_chunk: int = 4096

    def __init__(self, config: SequentialConfig, num_items: int, encoder: nn.Module) -> None:
        super().__init__()
        self.loss_name = config.loss
        self.num_items = num_items
        self.encoder = encoder
        self.register_buffer("log_popularity", torch.zeros(num_items + 1))
        self._item_table: torch.Tensor | None = None

    # -- the item tower -------------------------------------------------------------------
    def item_vectors(self, item_ids: torch.Tensor) -> torch.Tensor:
        """``[n, d]`` vectors of ``item_ids`` (``LongTensor[n]``, distinct, may contain 0)."""
        raise NotImplementedError

    def all_item_vectors(self) -> torch.Tensor:
        """``[num_items + 1, d]`` for every item (row 0 = padding, zero)."""
        device = self.log_popularity.device
        chunks = [
            self.item_vectors(torch.arange(start, min(start + self.table_chunk,
                                                      self.num_items + 1), device=device))
            for start in range(0, self.num_items + 1, self.table_chunk)
        ]
        table = torch.cat(chunks)
        return torch.cat([torch.zeros_like(table[:1]), table[1:]])

    def _distinct_vectors(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                            torch.Tensor]:
        """Vectors of the distinct items of ``ids``: ``(unique_ids, vectors, inverse)``; the
        padding item gets a zero vector. In evaluation they are rows of the item table, which
        is computed once (a content tower would otherwise encode every batch's items again)."""
        unique, inverse = torch.unique(ids.reshape(-1), return_inverse=True)
        if self.training or torch.is_grad_enabled():
            vectors = self.item_vectors(unique)
        else:
            vectors = self.item_embeddings()[unique]
        vectors = vectors * (unique != 0).unsqueeze(-1).to(vectors.dtype)
        return unique, vectors, inverse.view(ids.shape)

    # -- Recommender contract -------------------------------------------------------------
    def fit_statistics(self, item_counts: torch.Tensor) -> None:
        self.log_popularity.copy_(losses.log_popularity(item_counts).to(self.log_popularity))

    def item_embeddings(self) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            return self.all_item_vectors()
        if self._item_table is None:  # evaluation: compute once, reuse for every batch
            # detached: an ID model's table is its Parameter, and assigning a Parameter to
            # a module attribute would register it (and put it into the state dict)
            self._item_table = self.all_item_vectors().detach()
        return self._item_table

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        _, vectors, inverse = self._distinct_vectors(history)
        return self.encoder(vectors[inverse], history > 0)

    def user_embeddings(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encode(batch["history"])[:, -1]

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        history, target = batch["history"], batch["target"]
        unique, vectors, inverse = self._distinct_vectors(torch.cat([history, target], dim=1))
        states = self.encoder(vectors[inverse[:, : history.shape[1]]], history > 0)
        rows = target > 0
        queries, positives = states[rows], target[rows]
        if self.loss_name == "ce":
            return losses.full_softmax_ce(queries, self.all_item_vectors(), positives)
        if self.loss_name == "bce":
            negatives = torch.randint(1, self.num_items + 1, positives.shape, device=history.device)
            _, neg_vectors, neg_inverse = self._distinct_vectors(negatives)
            pos_logits = (queries * vectors[inverse[:, history.shape[1]:][rows]]).sum(-1)
            neg_logits = (queries * neg_vectors[neg_inverse]).sum(-1)
            return losses.sampled_bce(pos_logits, neg_logits)
        candidates = losses.in_batch_candidates(history, target)
        candidate_vectors = vectors[torch.searchsorted(unique, candidates.candidate_ids)]
        return losses.debiased_in_batch_ce(
            states[candidates.batch_index, candidates.position],
            candidates.targets,
            candidates.candidate_ids,
            candidate_vectors,
            self.log_popularity,
            candidates.interacted,
        )

    # -- keep the evaluation item table honest ---------------------------------------------
    def train(self, mode: bool = True) -> SequentialRecommender:
        self._item_table = None
        return super().train(mode)

    def load_state_dict(self, *args, **kwargs):  # type: ignore[override]
        self._item_table = None
        return super().load_state_dict(*args, **kwargs)

    def _apply(self, fn, *args, **kwargs):  # type: ignore[override]
        self._item_table = None
        return super()._apply(fn, *args, **kwargs)
