"""A-LLMRec (Kim et al., KDD 2024): a frozen collaborative model aligned into a frozen LLM.

**Stage 1** (:class:`~recadapt.models.a_llmrec_stage1.ALLMRecStage1`, section 4.1, in
``models/a_llmrec_stage1.py``) aligns a frozen collaborative model's item embeddings with
their texts; stage 2 builds on it.

**Stage 2** (:class:`ALLMRec`, section 4.2). ``F_U`` and ``F_I``, two 2-layer MLPs, project
``x_u`` and the joint embeddings ``e_i = f_I(E_i)`` into the LLM's token-embedding space. As in
the authors' code (the defaults), ``F_U`` is ``Linear, LayerNorm, LeakyReLU, Linear``, ``F_I``
the same with GELU (``f_i_activation: gelu``; ``leaky_relu``: recadapt's ``F_I`` before the
setting existed), and both ``Linear`` weights of each are drawn by ``nn.init.xavier_normal_``
(``init: xavier_normal``; ``default``: PyTorch's init, as before). The prompt (Figure 3)
starts with the user token and puts each item's projected embedding right after its title; 20
candidates (the target and 19 items the user never interacted with, shuffled) are listed; the
LLM (frozen) is trained to write the target's title (eq. 8). Only the projections train.

**Inference** gives more than Hit@1: every candidate is scored by the log-likelihood of its
answer text under the prompt (the prompt runs once; its key/value cache is shared by the
candidates), so Hit@1/3/5 and NDCG come from one pass; on the test part the title is also
*generated* greedily and mapped to a candidate (exact, then normalised match; a miss is wrong
and counted as ``generated_unmatched``).

The same class, configured, gives the baselines of the paper's harness: ``mlp-llm`` (the frozen
model's raw ``E_i`` and ``x_u`` through the MLPs, no stage 1), ``llm-only`` (the Figure 5
prompt, nothing trained) and ``tallrec-list`` (the Figure 5 prompt, the LLM tuned with LoRA);
and the ablations of Table 7 (``user_token: false``, ``item_embedding: none | random``) and
A-LLMRec (SBERT) (``item_embedding: text``: ``q_i = f_T(Q_i)`` for every item).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from recadapt.config import StageConfig
from recadapt.data.prompts import (
    CandidatePrompts,
    PromptLayout,
    item_texts,
    match_candidate,
    normalise_title,
    resolve_candidate_template,
)
from recadapt.errors import ConfigError, RecAdaptError
from recadapt.models.a_llmrec_stage1 import (
    ALLMRecStage1Config,
    CFStage,
    FrozenCFMixin,
    Init,
    cf_user_states,
    init_linears,
)
from recadapt.models.base import Recommender, given_stage
from recadapt.models.registry import register_model
from recadapt.nn.decoding import answer_log_likelihoods, greedy_decode

if TYPE_CHECKING:
    from recadapt.config import RunConfig
    from recadapt.data.ctr import CTRSplit
    from recadapt.data.dataset import Dataset
    from recadapt.data.splits import NextItemSplit

ItemEmbedding = Literal["joint", "text", "auto", "cf", "random", "none"]


# ----------------------------------------------------------------------------- stage 2


class Stage1Stage(StageConfig):
    """A-LLMRec's stage 1 (``a-llmrec-stage1``): a trained run, or one trained first."""

    model: dict[str, Any] = Field(default_factory=dict, description="stage-1 model settings")
    train: dict[str, Any] = Field(
        default_factory=lambda: {"epochs": 10, "lr": 1e-4, "batch_size": 32},
        description="stage-1 train settings (the paper: 10 epochs, batch 32)")


class CandidateLLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    llm: str = Field("smollm2-135m", description="causal LM: hf:ID, a folder or a packaged name")
    template: str | dict[str, Any] = Field(
        "movies", description="candidate prompt: movies, items, or a mapping (base + fields)")
    history_len: int = Field(10, ge=1, description="most recent history items in the prompt")
    train_negatives: int = Field(19, ge=1, description="negatives listed with each training "
                                 "target (the paper: 19)")
    user_token: bool = Field(True, description="put the projected user representation first")
    item_embedding: ItemEmbedding = Field(
        "joint", description="embedding after each title: joint (e = f_I(E)), text (q = "
        "f_T(Q), A-LLMRec (SBERT)), auto (e for items with training interactions, else q), cf "
        "(the frozen model's E: MLP-LLM), random (Table 7 row 4), none (titles only)")
    inference_embedding: Literal["same", "text"] = Field(
        "same", description="text: evaluate with q = f_T(Q) for every item although training "
        "used item_embedding (A-LLMRec (SBERT), section 5.2.2)")
    f_i_activation: Literal["gelu", "leaky_relu"] = Field(
        "gelu", description="activation of F_I, the item projection into the token space: gelu "
        "(the authors' code) or leaky_relu (F_U's; recadapt's F_I before this setting)")
    init: Init = Field("xavier_normal", description="the Linear weights of F_U and F_I: "
                       "xavier_normal (the authors' code) or default (PyTorch's)")
    lora: bool = Field(False, description="tune the LLM with LoRA (TALLRec)")
    lora_r: int = Field(8, ge=1)
    lora_alpha: float = Field(16, gt=0)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    scoring: Literal["sum", "mean"] = Field(
        "sum", description="candidate score: summed (log-likelihood) or per-token mean log-prob")
    generate: bool = Field(True, description="also generate the title on the test part")
    max_new_tokens: int = Field(64, ge=1)
    eval_batch_size: int = Field(8, ge=1)
    stage1: Stage1Stage = Field(
        default_factory=Stage1Stage, description="stage 1: stage1.run, a trained "
        "a-llmrec-stage1 run; empty: trained first into RUN/stages/stage1 (stage1.model: its "
        "settings over the a-llmrec-stage1 defaults, with cf)")
    cf: CFStage = Field(default_factory=CFStage, description="the frozen collaborative model "
                        "(cf.run, a trained next-item run); stage 1 trains on it, MLP-LLM and "
                        "the Table 7 ablations read it (without cf.run: the stage-1 run's)")

    #: what a stored run without these keys (trained before they existed) ran with
    values_of_older_runs: ClassVar[dict[str, Any]] = {"f_i_activation": "leaky_relu",
                                                      "init": "default"}


class MLPLLMConfig(CandidateLLMConfig):
    item_embedding: ItemEmbedding = "cf"


class LLMOnlyConfig(CandidateLLMConfig):
    user_token: bool = False
    item_embedding: ItemEmbedding = "none"
    generate: bool = True


class TALLRecListConfig(CandidateLLMConfig):
    user_token: bool = False
    item_embedding: ItemEmbedding = "none"
    lora: bool = True


#: the activations a projection can use (F_U: LeakyReLU; F_I: GELU in the authors' code)
ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "leaky_relu": nn.LeakyReLU}


def projection(width_in: int, width_out: int, activation: str, init: Init) -> nn.Module:
    """A 2-layer MLP into the token space, ``Linear, LayerNorm, activation, Linear`` (the
    authors' ``F_U`` with ``leaky_relu``, their ``F_I`` with ``gelu``), its ``Linear`` weights
    initialised by ``init`` (:func:`~recadapt.models.a_llmrec_stage1.init_linears`)."""
    return init_linears(nn.Sequential(nn.Linear(width_in, width_out), nn.LayerNorm(width_out),
                                      ACTIVATIONS[activation](),
                                      nn.Linear(width_out, width_out)), init)


class CandidateLLM(FrozenCFMixin, Recommender):
    """An LLM that picks the next item from a listed candidate set (module docstring)."""

    needs_stage1: ClassVar[frozenset[str]] = frozenset({"joint", "text", "auto"})

    @classmethod
    def _check(cls, config: CandidateLLMConfig, run: RunConfig) -> None:
        if run.eval.protocol != "sampled":
            raise ConfigError(f"eval.protocol: {cls.name} ranks the candidates it lists; set "
                              "eval.protocol: sampled (eval.num_negatives: 19 as in A-LLMRec)")
        nothing = (not config.lora and not config.user_token and config.item_embedding == "none")
        if nothing and cls.trainable:
            raise ConfigError(f"model: {cls.name} with user_token false, item_embedding none "
                              "and lora false has nothing to train; use llm-only")

    @classmethod
    def _needs_cf(cls, config: CandidateLLMConfig) -> bool:
        return config.user_token or config.item_embedding == "cf"

    @classmethod
    def prerequisites(cls, config: CandidateLLMConfig, run: RunConfig
                      ) -> dict[str, StageConfig]:
        cls._check(config, run)  # before any prerequisite is trained
        if config.item_embedding in cls.needs_stage1:  # stage 1 holds the frozen CF model
            model = {"name": "a-llmrec-stage1", "cf": config.cf.model_dump(),
                     **config.stage1.model}
            return {"stage1": config.stage1.model_copy(update={"model": model})}
        if not cls._needs_cf(config):
            return {}
        if config.cf.run is None and config.stage1.run is not None:
            # the ablations of Table 7: a given stage-1 run provides its frozen CF model
            return {"cf": config.cf.model_copy(update={"run": config.stage1.run})}
        return {"cf": config.cf}

    @classmethod
    def create(cls, config: CandidateLLMConfig, dataset: Dataset, run: RunConfig,
               **stages: Recommender) -> CandidateLLM:
        cls._check(config, run)
        cf, e, q = None, None, None
        if config.item_embedding in cls.needs_stage1:
            stage1 = given_stage(stages, "stage1", cls.name)
            e, q = stage1.joint_tables()  # type: ignore[operator]
            cf = stage1.cf  # type: ignore[assignment]
        elif cls._needs_cf(config):
            cf = given_stage(stages, "cf", cls.name)
        return cls(config, dataset, run, cf, e, q)

    def __init__(self, config: CandidateLLMConfig, dataset: Dataset, run: RunConfig,
                 cf: Recommender | None, joint: torch.Tensor | None,
                 text: torch.Tensor | None) -> None:
        super().__init__()
        from recadapt.encoders.llm import ensure_pad_token, load_causal_lm
        from recadapt.nn.peft_methods import add_lora

        self.config = config
        self.num_items = dataset.num_items
        self.eval_seed = run.eval.seed
        self.eval_batch_size = config.eval_batch_size
        lm, self.tokenizer = load_causal_lm(config.llm)
        ensure_pad_token(self.tokenizer)
        for param in lm.parameters():
            param.requires_grad_(False)
        if config.lora:
            add_lora(lm, config.lora_r, config.lora_alpha, config.lora_dropout)
            self.lm = lm
        else:  # frozen and outside the module tree: not in checkpoints, always eval
            self._held_lm = (lm.eval(),)
        token_dim = int(lm.get_input_embeddings().weight.shape[1])
        if cf is not None:
            self.cf = cf
        self.user_proj = (projection(self._cf_dim(cf), token_dim, "leaky_relu", config.init)
                          if config.user_token else None)
        self.item_proj: nn.Module | None = None
        table = self._item_table(config.item_embedding, cf, joint, text)
        if table is not None:
            self.register_buffer("item_table", table, persistent=False)
            self.register_buffer("text_table", text if text is not None else table,
                                 persistent=False)
            self.item_proj = projection(int(table.shape[1]), token_dim, config.f_i_activation,
                                        config.init)
        titles = item_texts(dataset, "{title}") if dataset.title_field else (
            item_texts(dataset, "{" + dataset.text_fields[0] + "}"))
        self.prompts = CandidatePrompts(resolve_candidate_template(config.template), titles,
                                        self.tokenizer, config.user_token, table is not None)
        self._sequences = dataset.sequences()

    # -- construction helpers -------------------------------------------------------------
    @staticmethod
    def _cf_dim(cf: Recommender | None) -> int:
        if cf is None:
            raise ConfigError("model.user_token needs a collaborative model (model.cf)")
        with torch.no_grad():
            return int(cf.item_embeddings().shape[1])

    def _item_table(self, how: str, cf: Recommender | None, joint: torch.Tensor | None,
                    text: torch.Tensor | None) -> torch.Tensor | None:
        if how == "none":
            return None
        if how == "joint":
            return joint
        if how in ("text", "auto"):
            return text if how == "text" else joint  # auto: mixed in fit_statistics
        if how == "cf":
            with torch.no_grad():
                return cf.item_embeddings().detach().float().clone()  # type: ignore[union-attr]
        # random (Table 7 row 4): fixed uniform vectors in the joint space's range (0, 1),
        # as wide as the joint space (stage 1's latent_dim d')
        latent = ALLMRecStage1Config.model_fields["latent_dim"].default
        width = int(joint.shape[1]) if joint is not None else int(
            self.config.stage1.model.get("latent_dim", latent))
        generator = torch.Generator().manual_seed(0)
        return torch.rand(self.num_items + 1, width, generator=generator)

    def fit_statistics(self, item_counts: torch.Tensor) -> None:
        """``auto``: e for items the training split has interactions of, q for the others."""
        if self.config.item_embedding == "auto":
            seen = (item_counts > 0).to(self.item_table.device).unsqueeze(1)
            self.item_table = torch.where(seen, self.item_table, self.text_table)

    def items_in_use(self) -> torch.Tensor:
        """The table whose rows go after the titles: ``item_table``, or in evaluation with
        ``inference_embedding: text`` the text encoder's ``q`` table."""
        if not self.training and self.config.inference_embedding == "text":
            return self.text_table
        return self.item_table

    @property
    def llm(self) -> nn.Module:
        return self.lm if self.config.lora else self._held_lm[0]

    def _apply(self, fn, *args, **kwargs):  # type: ignore[override]
        if not self.config.lora:
            self._held_lm[0]._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def frozen_parameter_count(self) -> int:
        """Parameters of the frozen LLM held outside the module tree (efficiency reports)."""
        return 0 if self.config.lora else sum(p.numel() for p in self.llm.parameters())

    def train(self, mode: bool = True):  # type: ignore[override]
        super().train(mode)
        if not self.config.lora:
            self._held_lm[0].eval()
        return self

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise RecAdaptError(f"{self.name} ranks listed candidates only: evaluate it with "
                            "--protocol sampled (eval.protocol: sampled)")

    def windows_per_user(self) -> int | None:
        return 1  # eq. 8: each user's last item (section 4.2.2)

    # -- prompts --------------------------------------------------------------------------
    def _history(self, batch: dict[str, torch.Tensor], row: int) -> list[int]:
        items = [int(i) for i in batch["history"][row].tolist() if i]
        return items[-self.config.history_len:]

    def _users(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if self.user_proj is None:
            return None
        if getattr(self, "transferred", False):  # cross-domain: no CF representation exists
            x = torch.zeros(batch["history"].shape[0], self.user_proj[0].in_features,
                            device=self.device)
        else:
            x = cf_user_states(self.cf, batch, all_positions=False).float()
        return self.user_proj(x.detach())

    def retarget(self, dataset: Dataset, text_table: torch.Tensor | None) -> None:
        """Point the trained model at another catalogue (cross-domain, 5.2.5): the prompts list
        the new titles, the item embeddings are ``q = f_T(Q)`` of the new texts
        (``text_table``, A-LLMRec (SBERT)), and the user token — which needs the source
        collaborative model's representation of a history it cannot read — is ``F_U(0)``."""
        how = self.config.item_embedding
        if how in ("cf", "random"):
            raise ConfigError(f"model.item_embedding: {how} embeddings belong to the source "
                              "catalogue and cannot move to another dataset")
        if self.item_proj is not None:
            if text_table is None or len(text_table) != dataset.num_items + 1:
                raise ValueError("retarget needs q for every item of the new dataset")
            table = text_table.to(self.item_table.device)
            self.item_table, self.text_table = table, table
        titles = item_texts(dataset, "{title}") if dataset.title_field else (
            item_texts(dataset, "{" + dataset.text_fields[0] + "}"))
        self.prompts = CandidatePrompts(self.prompts.template, titles, self.tokenizer,
                                        self.config.user_token, self.item_proj is not None)
        self.num_items = dataset.num_items
        self._sequences = dataset.sequences()
        self.transferred = True

    def embed(self, layouts: Sequence[PromptLayout], users: torch.Tensor | None,
              extra: Sequence[Sequence[int]] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """``inputs_embeds [B, T, D]`` (right-padded) and ``attention_mask``: token embeddings
        with the projected user / item vectors written at the layouts' slots; ``extra`` token
        ids are appended to each row (the answer, in training)."""
        rows = [list(lay.ids) + list(extra[i] if extra else []) for i, lay in enumerate(layouts)]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.prompts.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
            mask[i, :len(r)] = 1
        device = self.device
        embeds = self.llm.get_input_embeddings()(ids.to(device))
        slot_rows, slot_cols, values = [], [], []
        if users is not None:
            for i, lay in enumerate(layouts):
                slot_rows.append(i)
                slot_cols.append(lay.user_slot)
            values.append(users.to(embeds.dtype))
        if self.item_proj is not None:
            items = [(i, pos, item) for i, lay in enumerate(layouts) for pos, item in
                     lay.item_slots]
            if items:
                item_ids = torch.tensor([it for _, _, it in items], device=device)
                values.append(self.item_proj(self.items_in_use()[item_ids]).to(embeds.dtype))
                slot_rows += [i for i, _, _ in items]
                slot_cols += [pos for _, pos, _ in items]
        if values:
            embeds = embeds.index_put((torch.tensor(slot_rows, device=device),
                                       torch.tensor(slot_cols, device=device)),
                                      torch.cat(values))
        return embeds, mask.to(device)

    def _decoder(self) -> nn.Module:
        from recadapt.encoders.llm import base_decoder

        return base_decoder(self.llm)

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.llm.get_output_embeddings()(hidden)

    # -- training (eq. 8) -----------------------------------------------------------------
    def _training_candidates(self, history: list[int], full_history: list[int],
                             target: int) -> list[int]:
        banned = set(full_history) | {target}
        if self.num_items - len(banned) < self.config.train_negatives:
            raise RecAdaptError(f"a user interacted with all but {self.num_items - len(banned)}"
                                f" items: too few for {self.config.train_negatives} negatives")
        negatives: list[int] = []
        while len(negatives) < self.config.train_negatives:
            for i in torch.randint(1, self.num_items + 1, (2 * self.config.train_negatives,)
                                   ).tolist():
                if i not in banned and i not in negatives:
                    negatives.append(i)
                    if len(negatives) == self.config.train_negatives:
                        break
        candidates = [target, *negatives]
        order = torch.randperm(len(candidates)).tolist()
        return [candidates[i] for i in order]

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        targets = batch["target"][:, -1].tolist()
        layouts, answers = [], []
        for row, target in enumerate(targets):
            full = [int(i) for i in batch["history"][row].tolist() if i]
            # negatives avoid the user's whole training sequence (older than the window too)
            trained = self._sequences[int(batch["user"][row])][:-2].tolist()
            candidates = self._training_candidates(full[-self.config.history_len:],
                                                   full + trained, target)
            layouts.append(self.prompts.layout(full[-self.config.history_len:], candidates))
            answers.append(self.prompts.answer(target))
        embeds, mask = self.embed(layouts, self._users(batch), answers)
        hidden = self._decoder()(inputs_embeds=embeds, attention_mask=mask,
                                 use_cache=False).last_hidden_state
        rows, cols, labels = [], [], []
        for i, (lay, answer) in enumerate(zip(layouts, answers, strict=True)):
            start = len(lay.ids) - 1  # the last prompt position predicts the first answer token
            rows += [i] * len(answer)
            cols += list(range(start, start + len(answer)))
            labels += answer
        logits = self._head(hidden[torch.tensor(rows), torch.tensor(cols)]).float()
        return nn.functional.cross_entropy(logits, torch.tensor(labels, device=logits.device))

    # -- inference ------------------------------------------------------------------------
    def _shown(self, user: int, candidates: list[int]) -> list[int]:
        """The candidates in prompt order: a permutation seeded by (eval.seed, user), so the
        target's position is random but the same for every model and call."""
        order = np.random.default_rng([self.eval_seed, user]).permutation(len(candidates))
        return [candidates[i] for i in order]

    def _prompt_pass(self, batch: dict[str, torch.Tensor], row: int, candidates: list[int],
                     users: torch.Tensor | None) -> tuple[Any, torch.Tensor, PromptLayout]:
        """Run one prompt; its key/value cache and the next-token log-probabilities."""
        shown = self._shown(int(batch["user"][row]), candidates)
        layout = self.prompts.layout(self._history(batch, row), shown)
        embeds, mask = self.embed([layout], None if users is None else users[row:row + 1])
        out = self._decoder()(inputs_embeds=embeds, attention_mask=mask, use_cache=True)
        logp = torch.log_softmax(self._head(out.last_hidden_state[:, -1]).float(), dim=-1)
        return out.past_key_values, logp[0], layout

    @torch.no_grad()
    def score_candidates(self, batch: dict[str, torch.Tensor],
                         candidates: torch.Tensor) -> torch.Tensor:
        users = self._users(batch)
        scores = torch.empty(candidates.shape, dtype=torch.float32)
        for row in range(candidates.shape[0]):
            items = [int(i) for i in candidates[row].tolist()]
            past, first, layout = self._prompt_pass(batch, row, items, users)
            scores[row] = self._answer_scores(past, first, len(layout.ids), items)
        return scores.to(candidates.device)

    def _answer_scores(self, past: Any, first: torch.Tensor, prompt_len: int,
                       items: list[int]) -> torch.Tensor:
        """Log-likelihood of each item's answer tokens after the prompt."""
        return answer_log_likelihoods(self._decoder(), self._head, past, first, prompt_len,
                                      [self.prompts.answer(i) for i in items],
                                      self.prompts.pad_id, self.config.scoring == "mean")

    @torch.no_grad()
    def generate_choices(self, batch: dict[str, torch.Tensor],
                         candidates: torch.Tensor) -> torch.Tensor:
        """Greedy generation mapped to a candidate (``match_candidate``); 0 = no match."""
        if not self.config.generate:
            return torch.zeros(candidates.shape[0], dtype=torch.long)
        users = self._users(batch)
        chosen = torch.zeros(candidates.shape[0], dtype=torch.long)
        for row in range(candidates.shape[0]):
            items = [int(i) for i in candidates[row].tolist()]
            past, first, layout = self._prompt_pass(batch, row, items, users)
            answers = {i: self.prompts.template.answer.format(title=self.prompts.titles[i])
                       for i in layout.shown}
            limit = max(len(self.prompts.answer(i)) for i in items) + 4
            text = self._greedy(past, first, len(layout.ids), list(answers.values()), limit)
            chosen[row] = match_candidate(text, answers)
        return chosen

    def _greedy(self, past: Any, first: torch.Tensor, prompt_len: int,
                answers: list[str] | None = None, limit: int | None = None) -> str:
        """Greedy decoding until EOS or ``max_new_tokens`` (or ``limit``). With ``answers`` it
        also stops once the text *is* one of them, or once it can no longer become one even
        after normalisation (its normalised form is no prefix of any normalised answer): the
        rest could not change which candidate, if any, it matches."""
        stop = None
        if answers:
            exact = {a.strip() for a in answers}
            normalised = [normalise_title(a) for a in answers]

            def stop(text: str) -> bool:
                return text.strip() in exact or not any(
                    n.startswith(normalise_title(text)) for n in normalised)

        return greedy_decode(self._decoder(), self._head, self.tokenizer, past, first,
                             prompt_len, min(self.config.max_new_tokens,
                                             limit or self.config.max_new_tokens), stop)

    @torch.no_grad()
    def describe_user(self, user: int, history: Sequence[int], question: str) -> str:
        """Free text about a user (5.4.4 favourite genres): the user token and the history
        with its embeddings as in the recommendation prompt, then ``question``."""
        was_training = self.training
        self.eval()
        hist = [int(i) for i in history if i][-self.config.history_len:]
        layout = PromptLayout(ids=list(self.prompts.prefix))
        p = self.prompts
        if p.user_token:
            layout.user_slot = len(layout.ids)
            layout.ids += [p.pad_id, *p.tokens(p.template.user)]
        layout.ids += p.tokens(p.head)
        p._items(layout, hist)
        layout.ids += p.tokens(question)
        batch = {"history": torch.tensor([hist or [0]], device=self.device),
                 "user": torch.tensor([user], device=self.device)}
        embeds, mask = self.embed([layout], self._users(batch))
        out = self._decoder()(inputs_embeds=embeds, attention_mask=mask, use_cache=True)
        first = torch.log_softmax(self._head(out.last_hidden_state[:, -1]).float(), -1)[0]
        text = self._greedy(out.past_key_values, first, len(layout.ids))
        self.train(was_training)
        return text.strip()

    def write_analysis(self, run_dir: Path, split: NextItemSplit | CTRSplit) -> None:
        """``generations.json``: favourite-genre answers (5.4.4) for a few users; the question
        is the template's (genres for movies, product categories for a shop's items)."""
        from recadapt.io import write_json

        question = self.prompts.template.profile_question
        rows = []
        for user in range(min(5, len(self._sequences))):
            seq = self._sequences[user]
            if len(seq) < 2:
                continue
            rows.append({"user": user, "history": [self.prompts.titles[i] for i in
                                                   seq[-self.config.history_len:]],
                         "question": question.strip(),
                         "favourite_genres": self.describe_user(user, seq, question)})
        write_json(run_dir / "generations.json", rows)


@register_model("a-llmrec", CandidateLLMConfig)
class ALLMRec(CandidateLLM):
    """A-LLMRec stage 2 (joint embeddings from stage 1, user token)."""


@register_model("mlp-llm", MLPLLMConfig)
class MLPLLM(CandidateLLM):
    """MLP-LLM: the frozen model's raw item embeddings and user vector straight into the LLM."""


@register_model("tallrec-list", TALLRecListConfig)
class TALLRecList(CandidateLLM):
    """TALLRec on A-LLMRec's task: the Figure 5 prompt, the LLM tuned with LoRA."""


@register_model("llm-only", LLMOnlyConfig)
class LLMOnly(CandidateLLM):
    """LLM-Only: the Figure 5 prompt to the untouched LLM; nothing trains."""

    trainable = False
