"""Answers read off a causal LM through the prompt's key/value cache equal the same answers
scored and decoded by full forwards without any cache."""

from __future__ import annotations

import pytest
import torch

from recadapt.nn.decoding import answer_log_likelihoods, greedy_decode


@pytest.fixture(scope="module")
def lm(tiny_llm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llm).eval()
    return model, AutoTokenizer.from_pretrained(tiny_llm)


def _prompt(model, prompt: list[int]):
    out = model.model(input_ids=torch.tensor([prompt]), use_cache=True)
    first = torch.log_softmax(model.lm_head(out.last_hidden_state[:, -1]).float(), -1)[0]
    return out.past_key_values, first


def _full_log_likelihood(model, prompt: list[int], answer: list[int]) -> float:
    logits = model(input_ids=torch.tensor([prompt + answer])).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    return float(sum(logp[len(prompt) - 1 + t, token] for t, token in enumerate(answer)))


@torch.no_grad()
def test_answer_log_likelihoods_equal_full_forwards(lm) -> None:
    model, tokenizer = lm
    prompt = [5, 17, 42, 8, 99]
    answers = [[3], [7, 11, 13], [21, 4]]  # different lengths: padding must not count
    past, first = _prompt(model, prompt)
    got = answer_log_likelihoods(model.model, model.lm_head, past, first, len(prompt), answers,
                                 tokenizer.pad_token_id)
    expected = [_full_log_likelihood(model, prompt, a) for a in answers]
    assert got.tolist() == pytest.approx(expected, abs=1e-4)
    past, first = _prompt(model, prompt)
    mean = answer_log_likelihoods(model.model, model.lm_head, past, first, len(prompt),
                                  answers, tokenizer.pad_token_id, mean=True)
    assert mean.tolist() == pytest.approx([e / len(a) for e, a in
                                           zip(expected, answers, strict=True)],
                                          abs=1e-4)


@torch.no_grad()
def test_greedy_decode_equals_argmax_of_full_forwards_and_stops_when_asked(lm) -> None:
    model, tokenizer = lm
    prompt = [5, 17, 42, 8, 99]
    tokens = list(prompt)
    for _ in range(6):  # greedy without a cache (the tiny LM's EOS is unlikely this early)
        tokens.append(int(model(input_ids=torch.tensor([tokens])).logits[0, -1].argmax()))
    expected = tokens[len(prompt):]
    if tokenizer.eos_token_id in expected:
        expected = expected[:expected.index(tokenizer.eos_token_id)]
    past, first = _prompt(model, prompt)
    text = greedy_decode(model.model, model.lm_head, tokenizer, past, first, len(prompt), 6)
    assert text == tokenizer.decode(expected, skip_special_tokens=True)
    calls = []
    past, first = _prompt(model, prompt)
    short = greedy_decode(model.model, model.lm_head, tokenizer, past, first, len(prompt), 6,
                          stop_when=lambda sofar: calls.append(sofar) or len(calls) == 2)
    assert len(calls) == 2 and short == calls[-1]
