"""NCF / NeuMF (He et al. 2017): the non-sequential backbone of A-LLMRec's Table 9.

Two towers with their own user and item embedding tables: GMF (element-wise product) and an
MLP over the concatenated user and item vectors; a final linear layer reads
``[GMF product ; last MLP layer]`` and gives one logit per (user, item) pair. The model ignores
the history's order and even the history itself: it scores the batch's ``user`` only.

Training reuses the next-item windows (``recadapt.data.batching``): every non-zero ``target`` of
a window is a positive (user, item) pair. With the default ``bce`` loss each positive gets one
uniformly sampled negative (the paper's pointwise log loss); ``ce`` is a softmax over all items.
Windows never target a user's first training item, so that one interaction is not a positive.

Full ranking (``score``) runs NeuMF over all items in chunks. ``item_embeddings`` /
``user_embeddings`` (for A-LLMRec, which needs one vector per user and per item) are the
concatenated GMF and MLP tables: their dot product is the unweighted GMF score plus a dot product
of the MLP embeddings, i.e. the model's *representation*, not NeuMF's exact score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from recadapt.models.base import Recommender
from recadapt.models.registry import register_model
from recadapt.nn import losses

if TYPE_CHECKING:
    from recadapt.config import RunConfig
    from recadapt.data.dataset import Dataset


class NCFConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embedding_size: int = Field(32, ge=1, description="width of each tower's user and item "
                                "embeddings (A-LLMRec's representation is twice this)")
    mlp_layers: list[int] = Field(
        default_factory=lambda: [64, 32, 16], min_length=1,
        description="MLP hidden widths after the concatenated [user; item] input")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout after each MLP layer")
    loss: Literal["bce", "ce"] = Field("bce", description="bce (1 uniform negative per "
                                       "positive, as in the NCF paper) or ce (full softmax)")


@register_model("ncf", NCFConfig)
class NCF(Recommender):
    """NeuMF over user and item indices (see the module docstring)."""

    #: (user, item) pairs per chunk when scoring every item: bounds the MLP's activations
    score_chunk_pairs: int = 1 << 18

    def __init__(self, config: NCFConfig, num_users: int, num_items: int) -> None:
        super().__init__()
        self.loss_name = config.loss
        self.num_items = num_items
        size = config.embedding_size
        self.user_gmf = nn.Embedding(num_users, size)
        self.user_mlp = nn.Embedding(num_users, size)
        self.item_gmf = nn.Embedding(num_items + 1, size, padding_idx=0)
        self.item_mlp = nn.Embedding(num_items + 1, size, padding_idx=0)
        layers: list[nn.Module] = []
        width = 2 * size
        for hidden in config.mlp_layers:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        self.mlp = nn.Sequential(*layers)
        self.predict = nn.Linear(size + width, 1)
        # the item indices, as a buffer so evaluation finds the model's device from it
        self.register_buffer("all_items", torch.arange(num_items + 1), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        """He et al.'s and RecBole's NeuMF: normal(0, 0.01) embeddings, Xavier MLP weights."""
        for table in (self.user_gmf, self.user_mlp, self.item_gmf, self.item_mlp):
            nn.init.normal_(table.weight, std=0.01)
        with torch.no_grad():
            self.item_gmf.weight[0].zero_()
            self.item_mlp.weight[0].zero_()
        for module in [*self.mlp, self.predict]:
            if isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)

    @classmethod
    def create(cls, config: BaseModel, dataset: Dataset, run: RunConfig) -> Recommender:
        """NCF needs the user count too (it has a user table); order and length are unused."""
        return cls(config, dataset.num_users, dataset.num_items)  # type: ignore[arg-type]

    # -- NeuMF ----------------------------------------------------------------------------
    def logits(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """NeuMF logits of ``users`` (``LongTensor[B]``) against ``items`` (``LongTensor`` of
        shape ``[B, C]`` or ``[1, C]``, the same items for every user) → ``[B, C]``."""
        count = items.shape[1]
        user_gmf = self.user_gmf(users).unsqueeze(1)  # [B, 1, e]
        user_mlp = self.user_mlp(users).unsqueeze(1).expand(-1, count, -1)
        item_mlp = self.item_mlp(items).expand(users.shape[0], -1, -1)  # [B, C, e]
        gmf = user_gmf * self.item_gmf(items)
        mlp = self.mlp(torch.cat([user_mlp, item_mlp], dim=-1))
        return self.predict(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)

    def _all_item_logits(self, users: torch.Tensor) -> torch.Tensor:
        """``[B, num_items + 1]`` NeuMF logits of every item, in chunks of items."""
        chunk = max(1, self.score_chunk_pairs // max(1, users.shape[0]))
        return torch.cat([self.logits(users, self.all_items[start:start + chunk].unsqueeze(0))
                          for start in range(0, self.num_items + 1, chunk)], dim=1)

    # -- Recommender contract -------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        target = batch["target"]
        rows, _ = (target > 0).nonzero(as_tuple=True)
        positives = target[target > 0]
        if self.loss_name == "ce":
            # every target of a row belongs to the same user: one logit row per window
            all_logits = self._all_item_logits(batch["user"])
            padding = self.all_items == 0  # padding takes no probability mass
            all_logits = all_logits.masked_fill(padding, float("-inf"))
            return nn.functional.cross_entropy(all_logits[rows], positives)
        users = batch["user"][rows]
        negatives = torch.randint(1, self.num_items + 1, positives.shape, device=target.device)
        pair_logits = self.logits(users, torch.stack([positives, negatives], dim=1))
        return losses.sampled_bce(pair_logits[:, 0], pair_logits[:, 1])

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, num_items + 1]``: NeuMF's own score of every item (column 0 = padding)."""
        return self._all_item_logits(batch["user"])

    def score_candidates(self, batch: dict[str, torch.Tensor],
                         candidates: torch.Tensor) -> torch.Tensor:
        """``[B, C]``: NeuMF on the candidates only (the sampled protocol needs no full table)."""
        return self.logits(batch["user"], candidates)

    def item_embeddings(self) -> torch.Tensor:
        """``[num_items + 1, 2e]``: ``[GMF item vector ; MLP item vector]`` (row 0 = zero)."""
        return torch.cat([self.item_gmf.weight, self.item_mlp.weight], dim=1)

    def user_embeddings(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, 2e]``: ``[GMF user vector ; MLP user vector]``; the dot product with
        :meth:`item_embeddings` is a representation score, not NeuMF's (that is :meth:`score`)."""
        users = batch["user"]
        return torch.cat([self.user_gmf(users), self.user_mlp(users)], dim=1)
