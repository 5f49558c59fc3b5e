"""Encoder info memos: a run whose caches are complete never loads the encoder's weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import recadapt.encoders
from recadapt.cache import build_cache
from recadapt.config import EncoderSpec, validate_config
from recadapt.encoders.lazy import LazyEncoder, load_encoder_memoized, memo_path
from recadapt.errors import RecAdaptError
from recadapt.models import content

TEXTS = ["red shoes", "blue shirt", "green hat", "shoes for running"]


@pytest.fixture
def counted_loads(monkeypatch) -> list[str]:
    """Every real ``load_encoder`` call, by model."""
    calls: list[str] = []
    real = recadapt.encoders.load_encoder

    def load(spec, device=None, *, position=None):
        calls.append(spec.model)
        return real(spec, device, position=position)

    monkeypatch.setattr(recadapt.encoders, "load_encoder", load)
    return calls


@pytest.fixture
def bert_copy(tiny_bert: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bert, tmp_path / "bert"))


def test_second_load_is_lazy_and_a_complete_cache_never_loads(bert_copy, tmp_path,
                                                              counted_loads) -> None:
    spec = EncoderSpec(name="title", model=str(bert_copy), max_length=16)
    root = tmp_path / "cache"
    first = load_encoder_memoized(spec, root)
    assert not isinstance(first, LazyEncoder) and counted_loads == [str(bert_copy)]
    assert memo_path(root, spec).is_file()
    cache = build_cache(first, TEXTS, [0, 2], root, progress=False)

    lazy = load_encoder_memoized(spec.model_copy(update={"name": "other", "batch_size": 4,
                                                         "fields": ["title"]}), root)
    assert isinstance(lazy, LazyEncoder) and lazy.info == first.info
    again = build_cache(lazy, TEXTS, [0, 2], root, progress=False)  # complete: opened as is
    assert again.path == cache.path and not lazy.loaded
    assert len(counted_loads) == 1

    # anything that must run the model loads it, once, and gets the same states
    states = lazy.encode(TEXTS[:2], [2])
    assert lazy.loaded and len(counted_loads) == 2
    torch.testing.assert_close(states[0], first.encode(TEXTS[:2], [2])[0])
    lazy.encode(TEXTS[2:], [2])
    assert len(counted_loads) == 2


def test_memo_follows_the_model_and_the_spec(bert_copy, tmp_path, counted_loads) -> None:
    spec = EncoderSpec(name="title", model=str(bert_copy), max_length=16)
    root = tmp_path / "cache"
    load_encoder_memoized(spec, root)
    assert memo_path(root, spec.model_copy(update={"max_length": 8})) != memo_path(root, spec)
    assert memo_path(root, spec.model_copy(update={"pooling": "cls"})) != memo_path(root, spec)
    before = memo_path(root, spec)
    (bert_copy / "vocab.txt").write_text((bert_copy / "vocab.txt").read_text() + "extra\n")
    assert memo_path(root, spec) != before  # another folder fingerprint: loaded again
    assert not isinstance(load_encoder_memoized(spec, root), LazyEncoder)
    assert len(counted_loads) == 2


def test_a_corrupt_memo_is_rewritten_and_a_stale_one_refused(bert_copy, tmp_path,
                                                             counted_loads) -> None:
    spec = EncoderSpec(name="title", model=str(bert_copy), max_length=16)
    root = tmp_path / "cache"
    first = load_encoder_memoized(spec, root)
    path = memo_path(root, spec)
    path.write_text("{not json", encoding="utf-8")
    assert not isinstance(load_encoder_memoized(spec, root), LazyEncoder)
    assert json.loads(path.read_text())["info"] == json.loads(json.dumps(first.info.as_dict()))

    memo = json.loads(path.read_text())
    memo["info"]["layer_dims"] = [7, 7, 7]
    path.write_text(json.dumps(memo), encoding="utf-8")
    lazy = load_encoder_memoized(spec, root)
    assert isinstance(lazy, LazyEncoder) and lazy.info.layer_dims == (7, 7, 7)
    with pytest.raises(RecAdaptError, match=r"\.encoder-info.*no longer matches.*delete"):
        lazy.encode(TEXTS, [2])


def test_content_models_reuse_memoised_encoders(bert_copy, tmp_path, monkeypatch,
                                                counted_loads) -> None:
    monkeypatch.setattr(content, "_LOADED", {})
    run = validate_config({"data": {"source": "dslabs"},
                           "encoders": [{"name": "title", "model": str(bert_copy)}],
                           "cache": {"dir": str(tmp_path / "cache")},
                           "model": {"name": "iisan"}})
    content.load_encoders(run, reuse=True)
    monkeypatch.setattr(content, "_LOADED", {})  # a new process
    [lazy] = content.load_encoders(run, reuse=True)
    assert isinstance(lazy, LazyEncoder) and len(counted_loads) == 1
    assert not isinstance(content.load_encoders(run)[0], LazyEncoder)  # fine-tuning: fresh
    lazy.to(torch.float64)  # replayed on the model once it loads
    assert lazy.backbone().embeddings.word_embeddings.weight.dtype == torch.float64
