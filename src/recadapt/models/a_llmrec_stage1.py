"""A-LLMRec (Kim et al., KDD 2024), stage 1: a frozen collaborative model's items aligned with
their texts (the candidate-list LLM of stage 2 is ``models/a_llmrec.py``).

**Stage 1** (:class:`ALLMRecStage1`, section 4.1). A trained next-item model of the library
(SASRec by default; GRU4Rec, NextItNet, NCF — any model with ``item_embeddings`` and
``user_embeddings``) is frozen. Its item embeddings ``E_i`` and a sentence encoder's embedding
``Q_i`` of the item text (``"Title: …, Description: …"``; the packaged MiniLM, **fine-tuned**)
meet in a ``d' = 128`` latent space through an item encoder ``f_I`` and a text encoder ``f_T``
with decoders. Loss (eq. 6) = matching (eq. 2) + α item reconstruction (eq. 3) + β text
reconstruction (eq. 4) + the recommendation loss (eq. 5: the user representation ``x_u`` of the
frozen model against the *decoded* embeddings of the next item and of a sampled negative).
Choices (the paper says "1-layer MLP"): each encoder is ``Linear → sigmoid`` and each decoder
one ``Linear``; by default only each user's last training item trains (``all_items``: every
position, section 5.4.2). Four settings follow the authors' code by default; the other value
of each is how recadapt trained before they existed (the tracked benchmark rows):

* ``init: xavier_normal`` — every encoder/decoder ``Linear`` weight drawn by
  ``nn.init.xavier_normal_`` (biases keep PyTorch's default); ``default``: PyTorch's init.
* ``rec_score: mean`` — eq. 5's score ``s(x_u, item)`` is the *mean* over dimensions of the
  element-wise product; ``sum``: the dot product the paper writes.
* ``mse_weighting: sum`` — each MSE term (eq. 2-4) is the positives' MSE *plus* the negatives'
  MSE; ``average``: one MSE over positives and negatives together (each weighted 1/2).
* ``detach_text_target: true`` — the text reconstruction's target ``Q`` (eq. 4) gets no
  gradient, so the fine-tuned sentence encoder learns through ``f_T(Q)`` only; ``false``: also
  through the target.

The recommendation loss sums the positives' and the negatives' BCE (as the authors' code).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from recadapt.config import StageConfig
from recadapt.data.prompts import item_texts
from recadapt.errors import ConfigError
from recadapt.models.base import Recommender, given_stage
from recadapt.models.registry import register_model

if TYPE_CHECKING:
    from recadapt.config import RunConfig
    from recadapt.data.dataset import Dataset


# ----------------------------------------------------------------------------- frozen runs


def cf_user_states(cf: Recommender, batch: dict[str, torch.Tensor],
                   all_positions: bool) -> torch.Tensor:
    """The frozen model's user representation ``x_u``: ``[B, d]`` after the last history item,
    or ``[B, L, d]`` after every position (sequential models; a non-sequential model's user
    vector is repeated)."""
    if not all_positions:
        return cf.user_embeddings(batch)
    encode = getattr(cf, "encode", None)
    if encode is not None:
        return encode(batch["history"])
    user = cf.user_embeddings(batch)
    return user.unsqueeze(1).expand(-1, batch["history"].shape[1], -1)


class FrozenCFMixin:
    """Keeps the frozen collaborative model in eval mode (no dropout) whatever the loop does."""

    cf: Recommender

    def train(self, mode: bool = True):  # type: ignore[override]
        super().train(mode)  # type: ignore[misc]
        if hasattr(self, "cf"):
            self.cf.eval()
        return self


# ----------------------------------------------------------------------------- shared pieces

#: initialisation of A-LLMRec's trainable ``Linear`` layers (stage 1's autoencoders, stage 2's
#: projections): the authors' ``xavier_normal``, or PyTorch's ``default``
Init = Literal["xavier_normal", "default"]


def init_linears(module: nn.Module, how: Init) -> nn.Module:
    """``module`` with every ``nn.Linear`` weight drawn by ``nn.init.xavier_normal_``
    (``how="xavier_normal"``, the authors' code; biases keep PyTorch's default), or untouched
    (``"default"``: PyTorch's own initialisation)."""
    if how == "xavier_normal":
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                nn.init.xavier_normal_(layer.weight)
    return module


def rec_score(users: torch.Tensor, items: torch.Tensor, how: Literal["mean", "sum"]
              ) -> torch.Tensor:
    """Eq. 5's ``s(x_u, item)`` row by row: the element-wise product averaged over the
    dimensions (``mean``, the authors' code) or summed (``sum``, the paper's dot product)."""
    products = users * items
    return products.mean(-1) if how == "mean" else products.sum(-1)


def paired_mse(output: torch.Tensor, target: torch.Tensor, n: int,
               weighting: Literal["sum", "average"]) -> torch.Tensor:
    """An MSE term of eq. 2-4 over rows whose first ``n`` are the positives and the others the
    negatives: ``sum``: MSE over the positives plus MSE over the negatives (the authors' code);
    ``average``: one MSE over every row (with as many negatives as positives, half the sum)."""
    mse = nn.functional.mse_loss
    if weighting == "average":
        return mse(output, target)
    return mse(output[:n], target[:n]) + mse(output[n:], target[n:])


# ----------------------------------------------------------------------------- stage 1


class CFStage(StageConfig):
    """The frozen collaborative model: a trained next-item run, or one trained first."""

    model: dict[str, Any] = Field(default_factory=lambda: {"name": "sasrec"},
                                  description="the collaborative model's model section")


class ALLMRecStage1Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cf: CFStage = Field(default_factory=CFStage, description="the frozen collaborative model: "
                        "cf.run, a trained next-item run; empty: cf.model trained first into "
                        "RUN/stages/cf (with cf.train)")
    text_model: str = Field("minilm", description="sentence encoder (SBERT role): packaged "
                            "name, hf:ID or a folder")
    text_format: str | None = Field(
        None, description="item text over item columns; default 'Title: {title}, "
        "Description: <the other text fields>'")
    text_max_length: int = Field(128, ge=8)
    finetune_text: bool = Field(True, description="fine-tune the sentence encoder (Table 6 "
                                "'Freeze SBERT': false)")
    latent_dim: int = Field(128, ge=1, description="d' of the joint embedding")
    alpha: float = Field(0.5, ge=0, description="weight of the item reconstruction (eq. 3)")
    beta: float = Field(0.2, ge=0, description="weight of the text reconstruction (eq. 4)")
    matching: bool = Field(True, description="use the matching loss (eq. 2)")
    reconstruction: bool = Field(True, description="use both reconstruction losses")
    rec_loss: bool = Field(True, description="use the recommendation loss (eq. 5)")
    all_items: bool = Field(False, description="train on every item of each sequence (5.4.2), "
                            "not only the last")
    init: Init = Field("xavier_normal", description="the encoders' and decoders' Linear "
                       "weights: xavier_normal (the authors' code) or default (PyTorch's)")
    rec_score: Literal["mean", "sum"] = Field(
        "mean", description="s(x_u, item) of the recommendation loss (eq. 5): mean over the "
        "dimensions (the authors' code) or sum (the paper's dot product)")
    mse_weighting: Literal["sum", "average"] = Field(
        "sum", description="each MSE term (eq. 2-4): the positives' MSE plus the negatives' "
        "(the authors' code), or average: one MSE over both (half the weight)")
    detach_text_target: bool = Field(
        True, description="the text reconstruction's target Q gets no gradient (the authors' "
        "code); false: the fine-tuned sentence encoder also learns through the target")

    #: what a stored run without these keys (trained before they existed) ran with
    values_of_older_runs: ClassVar[dict[str, Any]] = {
        "init": "default", "rec_score": "sum", "mse_weighting": "average",
        "detach_text_target": False}


def default_item_text(dataset: Dataset) -> list[str]:
    """``"Title: …, Description: …"`` per item (index 0 = ``""``): the title column, then the
    other text fields joined as the description (ML-100K: year and genres)."""
    title_field = dataset.title_field or (dataset.text_fields[0] if dataset.text_fields else None)
    if title_field is None:
        raise ConfigError(f"dataset {dataset.name!r} has no item text; A-LLMRec needs titles "
                          "(set data.title_field / data.text_fields)")
    titles = item_texts(dataset, "{" + title_field + "}")
    others = [f for f in dataset.text_fields if f != title_field]
    if not others:
        return ["" if i == 0 else f"Title: {t}" for i, t in enumerate(titles)]
    described = item_texts(dataset, ". ".join("{" + f + "}" for f in others))
    return ["" if i == 0 else f"Title: {t}, Description: {d}"
            for i, (t, d) in enumerate(zip(titles, described, strict=True))]


@dataclass
class Stage1Losses:
    matching: torch.Tensor
    item_recon: torch.Tensor
    text_recon: torch.Tensor
    rec: torch.Tensor


@register_model("a-llmrec-stage1", ALLMRecStage1Config)
class ALLMRecStage1(FrozenCFMixin, Recommender):
    """Stage 1: the autoencoders that align the frozen model's items with their texts."""

    @classmethod
    def prerequisites(cls, config: ALLMRecStage1Config, run: RunConfig
                      ) -> dict[str, StageConfig]:
        return {"cf": config.cf}

    @classmethod
    def create(cls, config: ALLMRecStage1Config, dataset: Dataset, run: RunConfig,
               **stages: Recommender) -> ALLMRecStage1:
        return cls(config, dataset, given_stage(stages, "cf", cls.name))

    def __init__(self, config: ALLMRecStage1Config, dataset: Dataset, cf: Recommender) -> None:
        super().__init__()
        from recadapt.config import EncoderSpec
        from recadapt.encoders import load_encoder

        self.config = config
        self.cf = cf
        with torch.no_grad():
            table = cf.item_embeddings().detach().float()
        self.cf_dim = int(table.shape[1])
        self.texts = (item_texts(dataset, config.text_format) if config.text_format
                      else default_item_text(dataset))
        self.text_encoder = load_encoder(EncoderSpec(
            name="text", model=config.text_model, kind="text",
            max_length=config.text_max_length))
        for param in self.text_encoder.parameters():
            param.requires_grad_(config.finetune_text)
        text_dim = int(self.text_encoder.info.dim)
        latent = config.latent_dim
        self.item_encoder = nn.Sequential(nn.Linear(self.cf_dim, latent), nn.Sigmoid())
        self.item_decoder = nn.Linear(latent, self.cf_dim)
        self.text_encoder_mlp = nn.Sequential(nn.Linear(text_dim, latent), nn.Sigmoid())
        self.text_decoder = nn.Linear(latent, text_dim)
        for part in (self.item_encoder, self.item_decoder, self.text_encoder_mlp,
                     self.text_decoder):
            init_linears(part, config.init)
        self.num_items = dataset.num_items

    def train(self, mode: bool = True):  # type: ignore[override]
        super().train(mode)
        if not self.config.finetune_text:
            self.text_encoder.eval()
        return self

    def windows_per_user(self) -> int | None:
        return None if self.config.all_items else 1

    # -- pieces ---------------------------------------------------------------------------
    def cf_items(self, items: torch.Tensor) -> torch.Tensor:
        """``E_i`` of the frozen model (no gradient)."""
        with torch.no_grad():
            return self.cf.item_embeddings()[items].float()

    def text_embeddings(self, items: torch.Tensor) -> torch.Tensor:
        """``Q_i``: the sentence encoder's (mean-pooled, last layer) embedding of each text."""
        texts = [self.texts[i] for i in items.tolist()]
        encoder = self.text_encoder
        inputs = {k: v.to(encoder.device) for k, v in encoder.prepare(texts).items()}
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.config.finetune_text):
            return encoder.hidden_states(inputs, [encoder.info.num_layers])[0].float()

    @torch.no_grad()
    def text_table(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """``q = f_T(Q)`` of arbitrary item texts (``texts[0]`` is the padding row): the joint
        embeddings of items the collaborative model never saw (cross-domain, 5.2.5)."""
        was_training = self.training
        self.eval()
        saved, self.texts = self.texts, list(texts)
        try:
            items = torch.arange(len(texts))
            q = torch.cat([self.text_encoder_mlp(self.text_embeddings(items[i:i + batch_size]))
                           for i in range(0, len(items), batch_size)])
        finally:
            self.texts = saved
            self.train(was_training)
        return q

    def losses(self, batch: dict[str, torch.Tensor]) -> Stage1Losses:
        """The four terms of eq. 6 on the batch's positives (each user's last training item,
        or every position with ``all_items``) and one uniform negative per positive."""
        target = batch["target"]
        if self.config.all_items:
            states = cf_user_states(self.cf, batch, all_positions=True)
            rows = target > 0
            users, positives = states[rows], target[rows]
        else:
            users, positives = cf_user_states(self.cf, batch, all_positions=False), target[:, -1]
        offsets = torch.randint(1, self.num_items, positives.shape, device=positives.device)
        negatives = (positives - 1 + offsets) % self.num_items + 1  # uniform, never the positive
        items = torch.cat([positives, negatives])
        unique, inverse = torch.unique(items, return_inverse=True)
        # each distinct text is encoded once, but every occurrence counts in the losses
        # (eq. 2-4 average over the users' items, repeats included)
        cf_vectors = self.cf_items(unique)[inverse]
        text_vectors = self.text_embeddings(unique)[inverse]
        return self.loss_terms(users.float(), cf_vectors, text_vectors, len(positives))

    def loss_terms(self, users: torch.Tensor, cf_vectors: torch.Tensor,
                   text_vectors: torch.Tensor, n: int) -> Stage1Losses:
        """Eq. 2-5 from the frozen model's user representations ``users [n, d]``, the items'
        ``E [2n, d]`` and ``Q [2n, d_text]`` (the first ``n`` rows the positives, the others
        their negatives), under the config's ``rec_score``, ``mse_weighting`` and
        ``detach_text_target``."""
        c = self.config
        e = self.item_encoder(cf_vectors)
        q = self.text_encoder_mlp(text_vectors)
        decoded = self.item_decoder(e)
        text_target = text_vectors.detach() if c.detach_text_target else text_vectors
        matching = paired_mse(e, q, n, c.mse_weighting)
        item_recon = paired_mse(decoded, cf_vectors, n, c.mse_weighting)
        text_recon = paired_mse(self.text_decoder(q), text_target, n, c.mse_weighting)
        pos, neg = decoded[:n], decoded[n:]
        pos_logits = rec_score(users, pos, c.rec_score)
        neg_logits = rec_score(users, neg, c.rec_score)
        bce = nn.functional.binary_cross_entropy_with_logits
        rec = (bce(pos_logits, torch.ones_like(pos_logits))
               + bce(neg_logits, torch.zeros_like(neg_logits)))
        return Stage1Losses(matching, item_recon, text_recon, rec)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        c = self.config
        parts = self.losses(batch)
        total = parts.rec if c.rec_loss else parts.rec * 0
        if c.matching:
            total = total + parts.matching
        if c.reconstruction:
            total = total + c.alpha * parts.item_recon + c.beta * parts.text_recon
        return total

    # -- what stage 2 reads, and a ranking to validate stage 1 on ---------------------------
    @torch.no_grad()
    def joint_tables(self, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """``e = f_I(E)`` and ``q = f_T(Q)`` for every item, ``[num_items + 1, d']`` each."""
        was_training = self.training
        self.eval()
        device = next(self.item_encoder.parameters()).device
        items = torch.arange(self.num_items + 1, device=device)
        e = self.item_encoder(self.cf_items(items))
        q = torch.cat([self.text_encoder_mlp(self.text_embeddings(items[i:i + batch_size]))
                       for i in range(0, len(items), batch_size)])
        self.train(was_training)
        return e, q

    def item_embeddings(self) -> torch.Tensor:
        """``f_I^dec(f_I^enc(E))``: the items as the recommendation loss scores them."""
        return self.item_decoder(self.item_encoder(self.cf.item_embeddings().float()))

    def user_embeddings(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return cf_user_states(self.cf, batch, all_positions=False).float()
