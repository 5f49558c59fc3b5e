"""Bidirectional text encoders: any Hugging Face ``AutoModel`` (BERT, MiniLM, MPNet, RoBERTa...).

Layer ``0`` is the embedding output, layer ``i`` the output of transformer block ``i`` (HF's
``hidden_states`` tuple, ``num_hidden_layers + 1`` entries). Each layer is pooled to one vector
per text: ``mean`` over the real tokens (attention-mask weighted; the default, as the
sentence-transformers models MiniLM/MPNet were trained for it) or ``cls`` (the first token).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from recadapt.encoders.base import EncoderInfo, FrozenEncoder
from recadapt.errors import RecAdaptError


def pool_tokens(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """One vector per sequence from ``hidden [N, T, D]`` and ``mask [N, T]`` (1 = real token).

    Works for either padding side: ``cls`` takes the first real token, ``last`` the last real
    token, ``mean`` averages the real tokens.
    """
    mask = mask.to(hidden.device)
    if how == "mean":
        weights = mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    positions = torch.arange(mask.shape[1], device=hidden.device)
    real = mask.bool()
    if how == "cls":
        index = torch.where(real, positions, mask.shape[1]).amin(1).clamp(max=mask.shape[1] - 1)
    elif how == "last":
        index = torch.where(real, positions, -1).amax(1).clamp(min=0)
    else:
        raise ValueError(f"unknown pooling {how!r}")
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


def text_list(contents: Sequence[Any]) -> list[str]:
    """Contents as strings (``None`` → empty)."""
    return ["" if c is None else str(c) for c in contents]


class TextEncoder(FrozenEncoder):
    """A bidirectional HF encoder with per-layer pooling.

    Args:
        model: an HF base model (``AutoModel``), returning ``hidden_states``.
        tokenizer: its tokenizer; texts are cut at ``max_length`` tokens and padded to the
            longest text of each batch.
        info: identity and shapes (built by :func:`recadapt.encoders.load_encoder`).
        max_length: tokens per text, special tokens included.
        pooling: ``mean`` | ``cls`` | ``last``.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, info: EncoderInfo, max_length: int,
                 pooling: str) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        self.max_length = max_length
        self.pooling = pooling
        self.input_names = [n for n in getattr(tokenizer, "model_input_names", [])
                            if n in ("input_ids", "attention_mask", "token_type_ids")]
        self.freeze()

    def batch_order(self, contents: Sequence[Any]) -> list[int] | None:
        """Longest texts first, so each batch pads to similar lengths (characters are a good
        enough proxy for tokens, and free)."""
        lengths = [len(t) for t in text_list(contents)]
        return sorted(range(len(lengths)), key=lambda i: -lengths[i])

    def _texts(self, contents: Sequence[Any]) -> list[str]:
        return text_list(contents)

    def prepare(self, contents: Sequence[Any]) -> dict[str, torch.Tensor]:
        texts = self._texts(contents)
        if not texts:
            raise RecAdaptError("nothing to encode: the list of item texts is empty")
        batch = self.tokenizer(
            texts, max_length=self.max_length, truncation=True, padding="longest",
            return_tensors="pt",
        )
        names = self.input_names or ["input_ids", "attention_mask"]
        return {k: batch[k] for k in names if k in batch}

    def pool(self, state: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return pool_tokens(state, inputs["attention_mask"], self.pooling)
