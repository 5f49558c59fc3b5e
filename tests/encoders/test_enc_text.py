"""Bidirectional text encoders on a tiny random BERT loaded from a folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recadapt.config import EncoderSpec
from recadapt.encoders import load_encoder, resolve_kind
from recadapt.encoders.text import TextEncoder, pool_tokens

TEXTS = ["the cat sits on the mat", "a movie", "love and war in the city at night", "dog"]


def _spec(folder: Path, **kw) -> EncoderSpec:
    return EncoderSpec(name="text", model=str(folder), **kw)


def test_layers_shapes_and_info(tiny_bert: Path) -> None:
    enc = load_encoder(_spec(tiny_bert, max_length=16))
    assert isinstance(enc, TextEncoder)
    info = enc.info
    assert info.source == f"path:{tiny_bert.resolve()}"
    assert info.revision.startswith("sha256:")
    assert (info.modality, info.num_layers, info.layer_dims, info.pooling) == (
        "text", 2, (32, 32, 32), "mean")
    assert info.settings["max_length"] == 16
    states = enc.encode(TEXTS)
    assert [tuple(s.shape) for s in states] == [(4, 32)] * 3
    only = enc.encode(TEXTS, layers=[2, 0])
    assert torch.allclose(only[0], states[2], atol=1e-6)
    assert torch.allclose(only[1], states[0], atol=1e-6)
    assert not any(p.requires_grad for p in enc.parameters())


def test_mean_pooling_matches_manual_computation(tiny_bert: Path) -> None:
    enc = load_encoder(_spec(tiny_bert))
    inputs = enc.prepare(TEXTS)  # padded to the longest text
    mask = inputs["attention_mask"]
    assert int(mask[3].sum()) < mask.shape[1]  # "dog" is padded
    pooled = enc.hidden_states(inputs)
    with torch.no_grad():
        out = enc.model(**inputs, output_hidden_states=True)
    n = int(mask[3].sum())
    for layer in range(3):
        manual = out.hidden_states[layer][3, :n].mean(0)
        assert torch.allclose(pooled[layer][3], manual, atol=1e-5)
    # layer 0 is the embedding output
    with torch.no_grad():
        emb = enc.model.embeddings(input_ids=inputs["input_ids"],
                                   token_type_ids=inputs["token_type_ids"])
    assert torch.allclose(pooled[0][3], emb[3, :n].mean(0), atol=1e-5)


def test_cls_pooling_is_position_zero(tiny_bert: Path) -> None:
    enc = load_encoder(_spec(tiny_bert, pooling="cls"))
    assert enc.info.pooling == "cls"
    inputs = enc.prepare(TEXTS)
    pooled = enc.hidden_states(inputs, layers=[1, 2])
    with torch.no_grad():
        out = enc.model(**inputs, output_hidden_states=True)
    assert torch.equal(pooled[0], out.hidden_states[1][:, 0])
    assert torch.equal(pooled[1], out.hidden_states[2][:, 0])


def test_pool_tokens_either_padding_side() -> None:
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    assert pool_tokens(hidden, right, "last")[:, 0].tolist() == [2.0, 7.0]
    assert pool_tokens(hidden, left, "last")[:, 0].tolist() == [3.0, 7.0]
    assert pool_tokens(hidden, left, "cls")[:, 0].tolist() == [1.0, 4.0]
    assert pool_tokens(hidden, right, "mean")[:, 0].tolist() == [1.0, 5.5]


def test_truncation_and_padding_to_longest(tiny_bert: Path) -> None:
    enc = load_encoder(_spec(tiny_bert, max_length=5))
    inputs = enc.prepare(["the cat sits on the mat and the dog", "dog"])
    assert inputs["input_ids"].shape == (2, 5)
    inputs = enc.prepare(["dog", "cat"])
    assert inputs["input_ids"].shape == (2, 3)  # [CLS] word [SEP]: padded only to the longest


def test_encode_sorted_batches_keep_caller_order(tiny_bert: Path) -> None:
    enc = load_encoder(_spec(tiny_bert))
    texts = TEXTS * 3 + ["", "the the the the the the the the the the the"]
    batched = enc.encode(texts, batch_size=3)
    singles = [enc.encode([t]) for t in texts]
    for layer in range(3):
        expected = torch.cat([s[layer] for s in singles])
        assert torch.allclose(batched[layer], expected, atol=1e-5)
    assert enc.batch_order(texts)[0] == len(texts) - 1  # longest first


def test_kind_auto_reads_the_config(tiny_bert: Path, tiny_llama: Path, tiny_vit: Path) -> None:
    assert resolve_kind(_spec(tiny_bert)) == "text"
    assert resolve_kind(_spec(tiny_llama)) == "llm"
    assert resolve_kind(_spec(tiny_vit)) == "image"
    assert resolve_kind(_spec(tiny_bert, kind="llm")) == "llm"  # explicit kind wins


def test_folder_missing_weights_is_refused(tiny_bert: Path, tmp_path: Path) -> None:
    from recadapt.errors import RecAdaptError

    broken = tmp_path / "no-weights"
    broken.mkdir()
    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
        (broken / name).write_bytes((tiny_bert / name).read_bytes())
    with pytest.raises(RecAdaptError, match=r"encoders\.2\.model"):
        load_encoder(_spec(broken), position=2)
