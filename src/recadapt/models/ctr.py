"""ID-based CTR scorers over the user's behaviour sequence: SASRec, GRU4Rec and Caser as CTR
models (ATFLRec Table II, RecLoRA's ID baselines).

A sample's history items are embedded with their label (liked / disliked) — ID CTR models see
every behaviour field, as RecLoRA's appendix B keeps all fields for them; ``feedback: false``
gives the classic sequential recommenders' input, the item sequence alone — and run through
the library's causal sequence encoder (``nn/sequence.py``); the last position is the user
vector ``u``. The target's embedding ``v`` and ``u`` meet in a small MLP over
``[u, v, u * v]`` (the interaction features of DIN/NCF-style heads) giving one logit; binary
cross-entropy trains it. An empty history gives ``u = 0``: the model falls back on the target.
Caser reads only the last ``window`` behaviours of the history, by design (its ``L``).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from recadapt.models.base import CTRRecommender
from recadapt.models.idrec import CaserSettings
from recadapt.models.registry import register_model
from recadapt.nn.sequence import CaserActivation, CaserEncoder, GRU4RecEncoder, SASRecEncoder


class HistoryFeedback(BaseModel):
    """Whether the history's liked/disliked labels reach the sequence encoder."""

    feedback: bool = Field(True, description=(
        "embed each history item with its liked/disliked label; false: the item sequence "
        "alone, as classic sequential recommenders read it"))


class SequenceCTRConfig(HistoryFeedback):
    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(64, ge=1, description="item embedding and encoder width")
    mlp_size: int = Field(64, ge=1, description="hidden width of the scoring MLP")
    num_layers: int = Field(2, ge=1, description="encoder blocks (SASRec) or GRU layers")
    num_heads: int = Field(2, ge=1, description="SASRec attention heads")
    dropout: float = Field(0.1, ge=0, lt=1)


class CaserCTRConfig(CaserSettings, HistoryFeedback):
    """Caser's defaults (``nn/sequence.py`` ``CaserEncoder``; no user embedding), except
    ``fc_activation``: identity here, not the paper's ReLU, as the scoring MLP follows; with ReLU
    the planted-pattern test (hidden 16, seeds 0-2) learned on 1 of 3 seeds (test AUC 1.0; 0.53
    and 0.43 on the others), with identity on 3 of 3 (AUC 1.0)."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(64, ge=1, description="item embedding and encoder width")
    mlp_size: int = Field(64, ge=1, description="hidden width of the scoring MLP")
    fc_activation: CaserActivation = Field("identity", description=(
        "the paper's φ_a after the fully connected layer"))
    head_dropout: float = Field(0.1, ge=0, lt=1, description="dropout in the scoring MLP")


class SequenceCTR(CTRRecommender):
    """Behaviour sequence → user vector; ``MLP([u, v, u*v])`` → logit (module docstring)."""

    def __init__(self, config: SequenceCTRConfig | CaserCTRConfig, num_items: int,
                 encoder: nn.Module, head_dropout: float | None = None) -> None:
        super().__init__()
        d = config.hidden_size
        head_dropout = config.dropout if head_dropout is None else head_dropout
        self.items = nn.Embedding(num_items + 1, d, padding_idx=0)
        # disliked / liked behaviour; None: the item sequence alone (config ``feedback``)
        self.feedback = nn.Embedding(2, d) if config.feedback else None
        self.encoder = encoder
        self.head = nn.Sequential(nn.Linear(3 * d, config.mlp_size), nn.ReLU(),
                                  nn.Dropout(head_dropout), nn.Linear(config.mlp_size, 1))
        nn.init.normal_(self.items.weight, std=0.02)
        if self.feedback is not None:
            nn.init.normal_(self.feedback.weight, std=0.02)

    def user_vector(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        history = batch["history"]
        valid = history > 0
        vectors = self.items(history)
        if self.feedback is not None:
            vectors = vectors + self.feedback((batch["history_label"] >= 0.5).long())
        vectors = vectors * valid.unsqueeze(-1)
        return self.encoder(vectors, valid)[:, -1]

    def user_representation(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``u``, the encoded behaviour sequence (RecLoRA's ``R_c``)."""
        return self.user_vector(batch)

    def ctr_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        u = self.user_vector(batch)
        v = self.items(batch["item"])
        return self.head(torch.cat([u, v, u * v], dim=-1)).squeeze(-1)


@register_model("sasrec-ctr", SequenceCTRConfig)
class SASRecCTR(SequenceCTR):
    """SASRec's self-attentive encoder as a CTR scorer."""

    def __init__(self, config: SequenceCTRConfig, dataset, run) -> None:
        encoder = SASRecEncoder(config.hidden_size, config.num_layers, config.num_heads,
                                config.dropout, run.data.ctr.history_len)
        super().__init__(config, dataset.num_items, encoder)


@register_model("gru4rec-ctr", SequenceCTRConfig)
class GRU4RecCTR(SequenceCTR):
    """GRU4Rec's recurrent encoder as a CTR scorer."""

    def __init__(self, config: SequenceCTRConfig, dataset, run) -> None:
        encoder = GRU4RecEncoder(config.hidden_size, 2 * config.hidden_size, config.num_layers,
                                 config.dropout)
        super().__init__(config, dataset.num_items, encoder)


@register_model("caser-ctr", CaserCTRConfig)
class CaserCTR(SequenceCTR):
    """Caser's convolutional encoder (last ``window`` behaviours) as a CTR scorer."""

    def __init__(self, config: CaserCTRConfig, dataset, run) -> None:
        encoder = CaserEncoder(config.hidden_size, config.window, config.n_v, config.n_h,
                               config.dropout, config.fc_activation)
        super().__init__(config, dataset.num_items, encoder, config.head_dropout)
        self.window = config.window

    def user_vector(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # the last position reads the last L behaviours only: encode just those columns
        recent = {key: batch[key][:, -self.window:] for key in ("history", "history_label")}
        return super().user_vector(recent)


class HistoryLikeRateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prior_weight: float = Field(1.0, ge=0, description=(
        "pseudo-behaviours at the training samples' positive rate added to each history "
        "(an empty history scores the prior)"))


@register_model("like-rate", HistoryLikeRateConfig)
class HistoryLikeRate(CTRRecommender):
    """No learned parameters: the share of liked behaviours in the sample's history, smoothed
    toward the training positive rate, ``(liked + w·p) / (n + w)``.

    Why: when histories carry labels (ratings), a user's own like-rate is a strong CTR signal
    (per-user bias) that any sequence model picks up from a few samples; this floor tells how
    much of a few-shot table is that bias rather than item understanding."""

    trainable = False

    def __init__(self, config: HistoryLikeRateConfig, dataset, run) -> None:
        super().__init__()
        self.prior_weight = config.prior_weight
        self.register_buffer("prior", torch.tensor(0.5))

    def fit_training_samples(self, samples) -> None:
        self.prior.fill_(float(samples.labels.mean()))

    def ctr_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        valid = (batch["history"] > 0).float()
        liked = ((batch["history_label"] >= 0.5).float() * valid).sum(1)
        rate = (liked + self.prior_weight * self.prior) / (valid.sum(1) + self.prior_weight)
        return torch.logit(rate.clamp(1e-4, 1 - 1e-4))
