"""Reading answers off a frozen causal LM after a prompt: the log-likelihood of given answers
and greedy decoding, both continuing the prompt's key/value cache (the prompt runs once).

``decoder`` is the LM's base model (hidden states), ``head`` its output embeddings (hidden →
vocabulary logits), ``first`` the log-probabilities of the token after the prompt. A-LLMRec's
candidate scoring and generation share these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

Head = Callable[[torch.Tensor], torch.Tensor]


def answer_log_likelihoods(decoder: nn.Module, head: Head, past: Any, first: torch.Tensor,
                           prompt_len: int, answers: Sequence[Sequence[int]], pad_id: int,
                           mean: bool = False) -> torch.Tensor:
    """``[len(answers)]`` log-likelihood of each answer's tokens after the prompt (``mean``:
    per token). The cache is repeated once per answer (in place: ``past`` is used up); the
    first token's probability comes from ``first``, the rest from one batched pass."""
    n, width = len(answers), max(len(a) for a in answers)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    valid = torch.zeros((n, width), dtype=torch.bool)
    for i, answer in enumerate(answers):
        ids[i, :len(answer)] = torch.tensor(list(answer))
        valid[i, :len(answer)] = True
    device = first.device
    ids, valid = ids.to(device), valid.to(device)
    logp = torch.zeros((n, width), device=device)
    logp[:, 0] = first[ids[:, 0]]
    if width > 1:
        past.batch_repeat_interleave(n)
        mask = torch.cat([torch.ones((n, prompt_len), dtype=torch.long, device=device),
                          valid[:, :-1].long()], dim=1)
        out = decoder(input_ids=ids[:, :-1], attention_mask=mask, past_key_values=past,
                      use_cache=True)
        rest = torch.log_softmax(head(out.last_hidden_state).float(), dim=-1)
        logp[:, 1:] = rest.gather(2, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    total = (logp * valid).sum(1)
    if mean:
        total = total / valid.sum(1)
    return total.cpu()


def greedy_decode(decoder: nn.Module, head: Head, tokenizer: Any, past: Any,
                  first: torch.Tensor, prompt_len: int, max_new_tokens: int,
                  stop_when: Callable[[str], bool] | None = None) -> str:
    """Greedy decoding until EOS, ``max_new_tokens``, or ``stop_when(text so far)`` is true
    (e.g. the text can no longer become a wanted answer: the rest could not change it)."""
    tokens: list[int] = []
    logp = first
    eos = tokenizer.eos_token_id
    for _ in range(max_new_tokens):
        token = int(logp.argmax())
        if token == eos:
            break
        tokens.append(token)
        if stop_when is not None and stop_when(tokenizer.decode(tokens,
                                                                skip_special_tokens=True)):
            break
        mask = torch.ones((1, prompt_len + len(tokens)), dtype=torch.long, device=first.device)
        out = decoder(input_ids=torch.tensor([[token]], device=first.device),
                      attention_mask=mask, past_key_values=past, use_cache=True)
        past = out.past_key_values
        logp = torch.log_softmax(head(out.last_hidden_state[:, -1]).float(), -1)[0]
    return tokenizer.decode(tokens, skip_special_tokens=True)
