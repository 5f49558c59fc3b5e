"""RecLoRA (Zhu et al. 2024): personalized meta-LoRA for an LLM CTR scorer, gated by a
conventional CTR model, trained with the Few2Many strategy.

* **Few2Many** (3.3): stage 1 trains the conventional model (CRM; ``model.crm.model``: SIM by
  default, as in the paper, or any CTR model with ``user_representation``) on the **full**
  training split — a prerequisite run trained first into ``RUN/stages/crm`` with
  ``data.ctr.k_shot`` removed (``model.crm.data``) —; stage 2 freezes it and the LLM and trains
  only the meta-LoRA bank and the gate on the run's own (K-shot) samples.
* **Personalized LoRA** (3.2, ``nn/lora.py``): ``N_m`` meta-LoRAs (rank 8, alpha 16, dropout 0 as
  in appendix C) on the q/v projections; the gate reads the CRM's user representation ``R_c``
  (eq. 12; ``user_representation`` of the CTR model) through ``LN → Linear → ReLU → Linear``
  (eq. 13) and a softmax with temperature (eq. 14), one mix per sample.
* Prompts, the causal-LM loss and the Yes/No scoring (eq. 16) are TALLRec's
  (``models/tallrec.py``) with RecLoRA's template (Figure 2). The paper says nothing of the
  prompt wrapper or of the loss mask, so RecLoRA keeps recadapt's earlier TALLRec behaviour by
  default (``prompt_format: chat``, ``train_on_inputs: false``: the answer tokens only); the
  same settings as TALLRec's switch them. ``init_adapter`` is refused (a meta-LoRA bank is not
  one adapter), and so are Alpaca-record datasets (no user or item ids for the CRM). The CRM
  sees the run's history (``data.ctr.history_len``, the long one, e.g. 60); the prompt shows
  only the most recent ``prompt_history_len`` behaviours (the short one, e.g. 10).

Ablations (Table 3) are settings: ``num_meta: 1`` is one LoRA without CRM instruction;
``num_meta: 1, lora_r: 8 * N_m`` the same-parameter single LoRA.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import Field

from recadapt.config import StageConfig
from recadapt.data.prompts import PromptBuilder
from recadapt.data.readers import detect_format
from recadapt.errors import ConfigError
from recadapt.models.base import Recommender, given_stage
from recadapt.models.registry import register_model
from recadapt.models.tallrec import LLMPrompts, TALLRec, TALLRecConfig
from recadapt.nn.lora import LoRAGate, add_personalized_lora, gating

if TYPE_CHECKING:
    from recadapt.config import RunConfig
    from recadapt.data.ctr import CTRSplit
    from recadapt.data.dataset import Dataset

ALPACA_REFUSAL = ("model.name: reclora gates its LoRA with a conventional CTR model over user "
                  "and item ids, which Alpaca records (data.format: alpaca) do not have; use "
                  "tallrec, atflrec (lora_mode: text) or like-rate")


class CRMStage(StageConfig):
    """RecLoRA's conventional CTR model (Few2Many stage 1)."""

    model: dict[str, Any] = Field(default_factory=lambda: {"name": "sim"},
                                  description="the conventional CTR model's model section")
    data: dict[str, Any] = Field(
        default_factory=lambda: {"ctr": {"k_shot": None}},
        description="Few2Many: the CRM trains on every training sample (no K-shot subset)")


class RecLoRAConfig(TALLRecConfig):
    template: str | dict[str, Any] = "reclora"
    # RecLoRA's paper says neither; kept at recadapt's behaviour before TALLRec's switches
    # (docs/decisions.md), so the tracked RecLoRA rows stay reproducible by default
    prompt_format: Literal["alpaca", "chat"] = Field(
        "chat", description="chat: the tokenizer's chat template; alpaca: the template's text "
        "wrapper (the Stanford Alpaca prompt)")
    train_on_inputs: bool = Field(False, description="loss on the answer tokens only (false) "
                                  "or on every prompt and answer token (true)")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="appendix C: 0")
    num_meta: int = Field(4, ge=1, description="N_m, meta-LoRAs in the bank (Figure 4: 1-16)")
    temperature: float = Field(1.0, gt=0, description="tau of the gate's softmax (eq. 14)")
    gate_hidden: int | None = Field(None, ge=1, description="gate FFN width (default: R_c's)")
    prompt_history_len: int = Field(10, ge=1, description="behaviours shown in the prompt (the "
                                    "short history); the CRM reads data.ctr.history_len")
    crm: CRMStage = Field(default_factory=CRMStage, description="the conventional "
                          "CTR model (frozen): crm.run, a trained CTR run; empty: crm.model "
                          "trained first on the full training split into RUN/stages/crm")


@register_model("reclora", RecLoRAConfig)
class RecLoRA(TALLRec):
    """TALLRec whose LoRA is a per-user mix of meta-LoRAs gated by a frozen CTR model."""

    @classmethod
    def prerequisites(cls, config: RecLoRAConfig, run: RunConfig) -> dict[str, StageConfig]:
        # refused before the CRM stage trains: Alpaca records have no user or item ids
        if detect_format(run.data.source, run.data.format) == "alpaca":
            raise ConfigError(ALPACA_REFUSAL)
        return {"crm": config.crm}

    @classmethod
    def create(cls, config: RecLoRAConfig, dataset: Dataset, run: RunConfig,
               **stages: Recommender) -> RecLoRA:
        if dataset.records:
            raise ConfigError(ALPACA_REFUSAL)
        if config.init_adapter:
            raise ConfigError("model.init_adapter: RecLoRA trains a bank of meta-LoRAs, which "
                              "one peft adapter cannot initialise; use it with tallrec or rella")
        crm = given_stage(stages, "crm", cls.name)
        if not hasattr(crm, "user_representation"):
            raise ConfigError(f"model.crm.model: {crm.name!r} exposes no user representation "
                              "for the gate; use sasrec-ctr, gru4rec-ctr, caser-ctr or a model "
                              "of the CTR zoo")
        return cls(config, dataset, run, crm)

    def __init__(self, config: RecLoRAConfig, dataset: Dataset, run: RunConfig,
                 crm: torch.nn.Module) -> None:
        super().__init__(config, dataset, run)
        self.crm = crm
        builder = PromptBuilder(dataset, config.template, config.prompt_history_len)
        self.prompts = LLMPrompts(builder, self.prompts.tokenizer, config.prompt_format,
                                  config.max_length)
        with torch.no_grad():
            probe = self._representation(_probe_batch(run.data.ctr.history_len))
        self.gate = LoRAGate(int(probe.shape[-1]), config.num_meta, config.gate_hidden,
                             config.temperature)

    def adapt(self, config: RecLoRAConfig) -> None:  # type: ignore[override]
        add_personalized_lora(self.lm, config.num_meta, config.lora_r, config.lora_alpha,
                              config.lora_dropout, config.lora_targets)

    def train(self, mode: bool = True):  # type: ignore[override]
        super().train(mode)
        if hasattr(self, "crm"):
            self.crm.eval()  # frozen: no dropout
        return self

    def _representation(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return self.crm.user_representation(batch).float()  # type: ignore[operator]

    def gates(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``alpha [B, N_m]``: each sample's mix of the meta-LoRAs (eq. 12-14)."""
        device = next(self.gate.parameters()).device
        crm_batch = {k: v.to(device) for k, v in batch.items()}
        return self.gate(self._representation(crm_batch))

    def personalize(self, batch: dict[str, torch.Tensor]):  # type: ignore[override]
        return gating(self.lm, self.gates(batch))

    @torch.no_grad()
    def write_analysis(self, run_dir: Path, split: CTRSplit) -> None:  # type: ignore[override]
        """``gates.json``: each test user's mean mix of the meta-LoRAs (eq. 14), so reports can
        show whether the gate personalizes (spread mixes) or collapses onto one LoRA.

        The gate reads only the frozen CRM (no LLM pass), so all test samples are cheap."""
        from recadapt.data.ctr import ctr_batches
        from recadapt.io import write_json

        was_training = self.training
        self.eval()
        test = split.test
        mixes = torch.cat([self.gates(batch).float().cpu()
                           for batch in ctr_batches(test, self.eval_batch_size)]).numpy()
        self.train(was_training)
        users, inverse, counts = np.unique(test.users, return_inverse=True, return_counts=True)
        per_user = np.zeros((len(users), mixes.shape[1]))
        np.add.at(per_user, inverse, mixes)
        per_user /= counts[:, None]
        raw_ids = split.dataset.user_ids[users]
        write_json(run_dir / "gates.json", {
            "kind": "reclora_meta_lora_gates", "part": "test", "num_meta": int(mixes.shape[1]),
            "note": "per test user: the mean over their test samples of the gate's softmax "
                    "weights over the meta-LoRAs (rows sum to 1)",
            "users": [str(u) for u in raw_ids], "samples": counts.tolist(),
            "gates": per_user.round(6).tolist(),
            "mean": mixes.mean(0).round(6).tolist(),
            "argmax_share": (np.bincount(mixes.argmax(1), minlength=mixes.shape[1])
                             / len(mixes)).round(6).tolist()})


def _probe_batch(history_len: int) -> dict[str, torch.Tensor]:
    """A one-sample CTR batch (empty history) to read the width of the CRM's representation."""
    zeros = torch.zeros((1, history_len))
    return {"user": torch.zeros(1, dtype=torch.long), "item": torch.ones(1, dtype=torch.long),
            "label": torch.zeros(1), "history": zeros.long(), "history_label": zeros,
            "history_rating": zeros}

