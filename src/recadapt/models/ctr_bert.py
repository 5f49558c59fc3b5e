"""CTR-BERT (Muhamed et al. 2021; RecLoRA's LM-based baseline, appendix B): a two-tower
text model — one BERT-style encoder reads the user (profile and rated history, as text), the
other the target item's text — fine-tuned end to end with binary cross-entropy.

Choices: the towers are two independent copies of the packaged MiniLM (mean pooling, as
sentence-transformers trained it; ``shared_towers: true`` ties them); the user text is
RecLoRA's prompt input without the question (profile + "1. Title (4 stars)" lines, the most
recent ``data.ctr.history_len`` behaviours); the item text is its title; the two pooled vectors
meet in the MLP over ``[u, v, u * v]`` that the library's ID CTR models use.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from recadapt.data.ctr import prompt_args
from recadapt.data.prompts import PromptBuilder, item_texts
from recadapt.models.base import CTRRecommender
from recadapt.models.registry import register_model

USER_TEXT = {"base": "reclora", "input": "{profile}\n{history}", "wrapper": "plain"}


class CTRBERTConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text_model: str = Field("minilm", description="encoder of both towers (packaged, hf:ID, "
                            "folder)")
    shared_towers: bool = Field(False, description="one encoder for users and items")
    user_template: str | dict[str, Any] = Field(
        default_factory=lambda: dict(USER_TEXT), description="prompt template for the user text")
    item_format: str = Field("{title}", description="item text over item columns")
    user_max_length: int = Field(256, ge=8)
    item_max_length: int = Field(32, ge=4)
    mlp_size: int = Field(64, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    eval_batch_size: int = Field(64, ge=1)


def _tower(name: str, max_length: int) -> Any:
    from recadapt.config import EncoderSpec
    from recadapt.encoders import load_encoder

    encoder = load_encoder(EncoderSpec(name="text", model=name, kind="text",
                                       max_length=max_length))
    for param in encoder.parameters():
        param.requires_grad_(True)  # fine-tuned, as BERT in CTR-BERT
    return encoder.train()


@register_model("ctr-bert", CTRBERTConfig)
class CTRBERT(CTRRecommender):
    """Two fine-tuned text towers and an interaction MLP (module docstring)."""

    def __init__(self, config: CTRBERTConfig, dataset, run) -> None:
        super().__init__()
        self.user_tower = _tower(config.text_model, config.user_max_length)
        self.item_tower = (self.user_tower if config.shared_towers
                           else _tower(config.text_model, config.item_max_length))
        self.builder = PromptBuilder(dataset, config.user_template, run.data.ctr.history_len)
        self.item_text = item_texts(dataset, config.item_format)
        width = int(self.user_tower.info.dim)
        self.head = nn.Sequential(nn.Linear(3 * width, config.mlp_size), nn.ReLU(),
                                  nn.Dropout(config.dropout), nn.Linear(config.mlp_size, 1))
        self.eval_batch_size = config.eval_batch_size

    @staticmethod
    def _encode(tower: Any, texts: list[str]) -> torch.Tensor:
        inputs = {k: v.to(tower.device) for k, v in tower.prepare(texts).items()}
        return tower.hidden_states(inputs, [tower.info.num_layers])[0].float()

    def user_texts(self, batch: dict[str, torch.Tensor]) -> list[str]:
        return [self.builder.input_text(*prompt_args(batch, row)[:4],
                                        prompt_args(batch, row)[4]).strip()
                for row in range(batch["item"].shape[0])]

    def ctr_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        u = self._encode(self.user_tower, self.user_texts(batch))
        v = self._encode(self.item_tower, [self.item_text[int(i)] for i in batch["item"]])
        return self.head(torch.cat([u, v, u * v], dim=-1)).squeeze(-1)

    def user_representation(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._encode(self.user_tower, self.user_texts(batch))
