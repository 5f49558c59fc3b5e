"""Causal language models as item-text encoders (Llama/SmolLM2, OPT, GPT-2, Qwen, ...).

Hidden states come from the *base* decoder (``model.model`` of a ``...ForCausalLM``), so no
vocabulary-sized logits are computed while encoding; the full model with its LM head stays
available through :meth:`CausalLMEncoder.backbone` / :attr:`CausalLMEncoder.causal_lm` for
methods that score tokens (A-LLMRec, RecLoRA).

Layer ``0`` is the token-embedding output, layer ``i`` the output of decoder block ``i``
(``num_layers = config.num_hidden_layers``). As in HF's ``hidden_states``, the last layer of
Llama-style models already has the final RMSNorm applied.

Pooling: ``last`` (default) takes the state of the last real token — the only position that
has seen the whole text under causal attention; ``mean`` averages the real tokens. Texts are
right-padded by default; left padding works too, because the pooling finds real tokens from the
attention mask and position ids are derived from it.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from recadapt.encoders.base import EncoderInfo
from recadapt.encoders.text import TextEncoder, text_list
from recadapt.errors import RecAdaptError


def base_decoder(model: nn.Module) -> nn.Module:
    """The transformer under an LM head (``LlamaForCausalLM.model``, ``OPTForCausalLM.model``,
    ``GPT2LMHeadModel.transformer``); a base model is returned as is."""
    prefix = getattr(model, "base_model_prefix", "")
    inner = getattr(model, prefix, None) if prefix else None
    return inner if isinstance(inner, nn.Module) else model


def ensure_pad_token(tokenizer: Any) -> None:
    """Causal LM tokenizers often have no pad token; the EOS token is used (it is masked out,
    so its id does not change any state)."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise RecAdaptError(
                "the LLM's tokenizer has neither a pad nor an eos token; set one in its "
                "tokenizer_config.json"
            )
        tokenizer.pad_token = tokenizer.eos_token


class CausalLMEncoder(TextEncoder):
    """A decoder-only LM with per-layer ``last``/``mean`` pooling.

    Args:
        model: the full causal LM (with head) or a base decoder.
        tokenizer: its tokenizer (a pad token is added from EOS when missing).
        info, max_length, pooling: as for :class:`TextEncoder`.
        padding_side: ``right`` (default) or ``left``; both give the same states.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, info: EncoderInfo, max_length: int,
                 pooling: str, padding_side: str = "right") -> None:
        ensure_pad_token(tokenizer)
        tokenizer.padding_side = padding_side
        super().__init__(model, tokenizer, info, max_length, pooling)
        decoder = base_decoder(model)
        self._takes_positions = "position_ids" in inspect.signature(decoder.forward).parameters

    @property
    def decoder(self) -> nn.Module:
        """The base transformer that produces the hidden states."""
        return base_decoder(self.model)

    @property
    def causal_lm(self) -> nn.Module | None:
        """The model with its LM head, or ``None`` when a bare decoder was loaded."""
        return self.model if self.decoder is not self.model else None

    def _texts(self, contents: Sequence[Any]) -> list[str]:
        # An empty text would have no token to pool; the EOS token stands in for "nothing".
        return [t if t else str(self.tokenizer.eos_token) for t in text_list(contents)]

    def _forward(self, inputs: dict[str, torch.Tensor]) -> Sequence[torch.Tensor]:
        device = self.device
        inputs = {k: v.to(device) for k, v in inputs.items() if k != "token_type_ids"}
        mask = inputs.get("attention_mask")
        if mask is not None and self._takes_positions and "position_ids" not in inputs:
            inputs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.decoder(**inputs, output_hidden_states=True, use_cache=False,
                           return_dict=True)
        return out.hidden_states


def load_causal_lm(source: str) -> tuple[nn.Module, Any]:
    """A causal LM with its head and tokenizer (fresh, never shared: LoRA changes it)."""
    from recadapt.config import EncoderSpec
    from recadapt.encoders import load_encoder

    encoder = load_encoder(EncoderSpec(name="llm", model=source, kind="llm"))
    lm = getattr(encoder, "causal_lm", None)
    if lm is None:
        raise RecAdaptError(f"model.llm: {source!r} has no language-model head (it loads as a "
                            "bare decoder); give a ...ForCausalLM checkpoint")
    return lm, encoder.tokenizer
