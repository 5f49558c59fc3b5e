"""The conventional CTR models (CRMs) RecLoRA compares against (section 4.1.3, appendix B)
and reads as its gate driver (section 3.2, ``R_c = CRM(x^ID)``): feature-interaction models
DeepFM, AutoInt, DCNv2 and user-behaviour models DIN, SIM (hard or soft search).

**Inputs.** Every model sees every feature field (RecLoRA appendix C keeps all fields for the
CTR baselines): user ID + user profile columns, item ID + item attribute columns, built by
:func:`recadapt.data.features.build_field_tables` (numeric columns bucketed — ML-100K's age,
release year and zip code —, multi-valued genres as the mean of their embeddings, ID-like
columns such as titles skipped unless named in ``feature_columns``; see that module), each an
``embedding_dim`` vector (``F x d``).

**History.** The feature-interaction models take "average pooling across users' historical
behaviours ... as additional feature fields" (appendix B) as **one** extra field: each
behaviour is the mean of its item's field embeddings and the field is
``sum_j g_{y_j} * b_j / n`` with a learnt gate vector per feedback (liked / disliked),
initialised to (1, 0) — a liked-weighted mean that may learn to use disliked behaviours
(``nn.ctr.FeedbackPooling``; with implicit data every behaviour is liked: a plain mean). DIN
and SIM embed each behaviour as its item's concatenated field embeddings plus a liked /
disliked embedding (as ``models/ctr.py`` adds feedback to behaviours), attend to them with
the target item's concatenated fields as the query, and feed ``[user fields, target fields,
pooled interest]`` to an MLP. SIM first retrieves behaviours: ``search: hard`` keeps those of
the target's category (the first genre of ``category_column``, default the first item field
named like genre/class/category), ``search: soft`` the ``top_k`` by inner product of the
items' own (jointly trained) field embeddings — SIM trains separate soft-search embeddings
with an auxiliary loss on lifelong sequences; RecLoRA keeps SIM's retrieval identical to its
own, which is semantic (soft).

**Defaults.** Embedding size 16 (RecLoRA tunes {32, 64}; set ``embedding_dim``), dropout 0.1
(the middle of its {0, 0.1, 0.2}); for depths and widths the smallest point of each appendix
B.1 grid: DeepFM a 3 x 128 DNN; AutoInt 3 interacting layers of attention size 64, 1 head
(plain AutoInt: no DNN unless ``mlp_hidden``); DCNv2 3 full-rank cross layers in parallel
with a 3 x 128 DNN; DIN/SIM one attention layer and one DNN layer of 64. SIM's ``top_k`` is
10, the number of behaviours RecLoRA's text side retrieves.

**Gate representation** (``user_representation(batch) -> [B, representation_dim]``, RecLoRA's
``R_c``): DeepFM/AutoInt/DCNv2 give the flattened user-side fields (ID + profile) and the
history field, ``(F_user + 1) * d``; DIN/SIM give the attention-pooled history (target-aware:
it depends on ``batch["item"]``) concatenated with the flattened user fields,
``(F_item + F_user) * d``.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from recadapt.data.features import build_field_tables, category_field
from recadapt.errors import ConfigError
from recadapt.models.base import CTRRecommender
from recadapt.models.registry import register_model
from recadapt.nn.ctr import (
    MLP,
    CrossNetwork,
    FeedbackPooling,
    FieldEmbedding,
    InteractingLayer,
    LocalActivationUnit,
    SearchUnit,
    fm_interaction,
)


class FieldCTRConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embedding_dim: int = Field(16, ge=1, description="width d of every field embedding")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout in the DNN layers")
    feature_columns: list[str] | None = Field(
        None, description="user/item feature columns to use (default: every usable column)")
    num_buckets: int = Field(10, ge=2, description="quantile buckets of numeric columns")
    max_unique_ratio: float = Field(
        0.5, gt=0, le=1, description="skip columns with more distinct values than this share "
        "of rows (IDs, titles, zip codes) unless named in feature_columns")


class DeepFMConfig(FieldCTRConfig):
    mlp_hidden: list[int] = Field(default_factory=lambda: [128, 128, 128],
                                  description="DNN layer widths")


class AutoIntConfig(FieldCTRConfig):
    attention_layers: int = Field(3, ge=1, description="interacting layers")
    attention_size: int = Field(64, ge=1, description="width of each interacting layer")
    num_heads: int = Field(1, ge=1, description="attention heads per layer")
    residual: bool = Field(True, description="projected residual connection in each layer")
    mlp_hidden: list[int] = Field(default_factory=list,
                                  description="parallel DNN widths (AutoInt+); empty: none")


class DCNv2Config(FieldCTRConfig):
    cross_layers: int = Field(3, ge=1, description="full-rank cross layers")
    mlp_hidden: list[int] = Field(default_factory=lambda: [128, 128, 128],
                                  description="DNN layer widths")
    structure: Literal["parallel", "stacked"] = Field(
        "parallel", description="cross network beside the DNN, or feeding it")


class DINConfig(FieldCTRConfig):
    attention_hidden: list[int] = Field(default_factory=lambda: [64],
                                        description="hidden widths of the activation unit")
    mlp_hidden: list[int] = Field(default_factory=lambda: [64],
                                  description="hidden widths of the output DNN")


class SIMConfig(DINConfig):
    search: Literal["soft", "hard"] = Field(
        "soft", description="hard: behaviours of the target's category; soft: top_k by "
        "embedding inner product")
    top_k: int = Field(10, ge=1, description="behaviours kept by soft search")
    category_column: str | None = Field(
        None, description="item field used as category by hard search (default: first "
        "genre/class/category-like item field)")


class FieldCTR(CTRRecommender):
    """Base of the zoo: the dataset's fields as embeddings (module docstring)."""

    #: width of :meth:`user_representation`
    representation_dim: int

    def __init__(self, config: FieldCTRConfig, dataset, run) -> None:
        super().__init__()
        self.tables = build_field_tables(dataset, columns=config.feature_columns,
                                         num_buckets=config.num_buckets,
                                         max_unique_ratio=config.max_unique_ratio)
        self.fields = FieldEmbedding(*self.tables, config.embedding_dim)
        self.field_names = ([f"user:{n}" for n in self.tables[0].names]
                            + [f"item:{n}" for n in self.tables[1].names])

    def user_representation(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, representation_dim]``: the vector RecLoRA's gate reads (``R_c``)."""
        raise NotImplementedError


class PooledHistoryCTR(FieldCTR):
    """Feature-interaction models: user fields, item fields and one pooled history field."""

    def __init__(self, config: FieldCTRConfig, dataset, run) -> None:
        super().__init__(config, dataset, run)
        d = config.embedding_dim
        self.history_pool = FeedbackPooling(d)
        self.num_fields = self.fields.num_user_fields + self.fields.num_item_fields + 1
        self.representation_dim = (self.fields.num_user_fields + 1) * d

    def history_field(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, d]``: gated mean of the behaviours, each the mean of its item's fields."""
        history = batch["history"]
        behaviours = self.fields.item(history).mean(dim=-2)
        return self.history_pool(behaviours, batch["history_label"], history > 0)

    def field_embeddings(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, F_user + F_item + 1, d]`` (history field last)."""
        return torch.cat([self.fields(batch["user"], batch["item"]),
                          self.history_field(batch).unsqueeze(1)], dim=1)

    def user_representation(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([self.fields.user(batch["user"]).flatten(1),
                          self.history_field(batch)], dim=-1)


@register_model("deepfm", DeepFMConfig)
class DeepFM(PooledHistoryCTR):
    """DeepFM (Guo et al., 2017): first-order weights + FM pairwise term + DNN, summed."""

    def __init__(self, config: DeepFMConfig, dataset, run) -> None:
        super().__init__(config, dataset, run)
        d = config.embedding_dim
        self.first_order = FieldEmbedding(*self.tables, 1)
        self.history_linear = nn.Linear(d, 1)  # first order of the dense field + global bias
        self.dnn = MLP(self.num_fields * d, config.mlp_hidden, config.dropout, output_dim=1)

    def ctr_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        fields = self.field_embeddings(batch)
        first = (self.first_order(batch["user"], batch["item"]).sum(dim=(1, 2))
                 + self.history_linear(fields[:, -1]).squeeze(-1))
        return first + fm_interaction(fields) + self.dnn(fields.flatten(1)).squeeze(-1)


@register_model("autoint", AutoIntConfig)
class AutoInt(PooledHistoryCTR):
    """AutoInt (Song et al., 2019): stacked multi-head self-attention across fields; the
    flattened output → logit (plus a DNN over the embeddings when ``mlp_hidden``: AutoInt+)."""

    def __init__(self, config: AutoIntConfig, dataset, run) -> None:
        super().__init__(config, dataset, run)
        d, size = config.embedding_dim, config.attention_size
        self.layers = nn.ModuleList(
            InteractingLayer(d if i == 0 else size, size, config.num_heads, config.residual)
            for i in range(config.attention_layers))
        self.output = nn.Linear(self.num_fields * size, 1)
        self.dnn = (MLP(self.num_fields * d, config.mlp_hidden, config.dropout, output_dim=1)
                    if config.mlp_hidden else None)

    def ctr_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        fields = self.field_embeddings(batch)
        x = fields
        for layer in self.layers:
            x = layer(x)
        logit = self.output(x.flatten(1)).squeeze(-1)
        if self.dnn is not None:
            logit = logit + self.dnn(fields.flatten(1)).squeeze(-1)
        return logit


@register_model("dcnv2", DCNv2Config)
class DCNv2(PooledHistoryCTR):
    """DCN-V2 (Wang et al., 2021): full-rank cross network and a DNN over the flattened
    fields, in parallel (outputs concatenated) or stacked (cross → DNN); one linear logit."""

    def __init__(self, config: DCNv2Config, dataset, run) -> None:
        super().__init__(config, dataset, run)
        width = self.num_fields * config.embedding_dim
        self.structure = config.structure
        self.cross = CrossNetwork(width, config.cross_layers)
        self.dnn = MLP(width, config.mlp_hidden, config.dropout)
        out = self.dnn.out_features + (width if self.structure == "parallel" else 0)
        self.output = nn.Linear(out, 1)

    def ctr_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x0 = self.field_embeddings(batch).flatten(1)
        if self.structure == "stacked":
            return self.output(self.dnn(self.cross(x0))).squeeze(-1)
        return self.output(torch.cat([self.cross(x0), self.dnn(x0)], dim=-1)).squeeze(-1)


class BehaviourCTR(FieldCTR):
    """User-behaviour models: target-aware pooling of the behaviours (``interest``), then
    ``MLP([user fields, target fields, interest])``."""

    def __init__(self, config: DINConfig, dataset, run) -> None:
        super().__init__(config, dataset, run)
        d = config.embedding_dim
        width = self.fields.num_item_fields * d
        user_width = self.fields.num_user_fields * d
        self.feedback = nn.Embedding(2, width)  # disliked / liked behaviour
        nn.init.normal_(self.feedback.weight, std=0.01)
        self.head = MLP(user_width + 2 * width, config.mlp_hidden, config.dropout, output_dim=1)
        self.representation_dim = width + user_width

    def behaviours(self, batch: dict[str, torch.Tensor]
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(items [B, L, D], keys [B, L, D], mask [B, L])``: each behaviour's concatenated
        item fields, the same plus its feedback embedding, and which positions are real."""
        history = batch["history"]
        items = self.fields.item(history).flatten(-2)
        keys = items + self.feedback((batch["history_label"] >= 0.5).long())
        return items, keys, history > 0

    def interest(self, batch: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` behaviours pooled with the target ``[B, D]`` as query."""
        raise NotImplementedError

    def _parts(self, batch: dict[str, torch.Tensor]
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        user = self.fields.user(batch["user"]).flatten(1)
        target = self.fields.item(batch["item"]).flatten(1)
        return user, target, self.interest(batch, target)

    def ctr_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(torch.cat(self._parts(batch), dim=-1)).squeeze(-1)

    def user_representation(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        user, _, interest = self._parts(batch)
        return torch.cat([interest, user], dim=-1)


@register_model("din", DINConfig)
class DIN(BehaviourCTR):
    """DIN (Zhou et al., 2018): local activation unit over every behaviour, no softmax."""

    def __init__(self, config: DINConfig, dataset, run) -> None:
        super().__init__(config, dataset, run)
        width = self.fields.num_item_fields * config.embedding_dim
        self.attention = LocalActivationUnit(width, config.attention_hidden)

    def interest(self, batch: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        _, keys, mask = self.behaviours(batch)
        return self.attention(target, keys, mask)[0]


@register_model("sim", SIMConfig)
class SIM(BehaviourCTR):
    """SIM (Pi et al., 2020): search unit (hard: target's category; soft: top-k inner
    product) over the behaviours, then DIN's attention on the retrieved ones."""

    def __init__(self, config: SIMConfig, dataset, run) -> None:
        super().__init__(config, dataset, run)
        width = self.fields.num_item_fields * config.embedding_dim
        self.search = SearchUnit(width, config.search, config.top_k, config.attention_hidden)
        self.category = category_field(self.tables[1], config.category_column)
        if config.search == "hard" and self.category is None:
            raise ConfigError(f"model.search: 'hard' needs an item category column, and "
                              f"dataset {dataset.name!r} has no categorical item column; use "
                              "search: soft")
        codes = (torch.from_numpy(self.tables[1].first_codes(self.category))
                 if self.category is not None else torch.zeros(dataset.num_items + 1,
                                                               dtype=torch.long))
        self.register_buffer("item_category", codes, persistent=False)

    def interest(self, batch: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        items, keys, mask = self.behaviours(batch)
        pooled, _, _ = self.search(target, keys, mask, search_keys=items,
                                   history_category=self.item_category[batch["history"]],
                                   target_category=self.item_category[batch["item"]])
        return pooled
