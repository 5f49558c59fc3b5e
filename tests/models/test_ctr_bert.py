"""CTR-BERT (two fine-tuned MiniLM towers) and the ReLLa configuration check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recadapt.config import validate_config
from recadapt.errors import ConfigError
from recadapt.pipeline import build_model, prepare_data
from recadapt.train.loop import train_run

WORDS = ["apple", "river", "garden", "candle", "forest", "violin", "harbor", "meadow"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """"sunny X" items are rated 5, "rainy X" 1: the item text decides the label."""
    folder = tmp_path_factory.mktemp("ctrbert")
    rng = np.random.default_rng(1)
    rows = ["user_id,item_id,timestamp,rating"]
    for user in range(20):
        for step, item in enumerate(rng.choice(16, size=8, replace=False)):
            rows.append(f"u{user},i{item},{step * 100 + user},{5 if item % 2 else 1}")
    (folder / "inter.csv").write_text("\n".join(rows) + "\n")
    items = ["item_id,title"] + [f"i{k},{'sunny' if k % 2 else 'rainy'} {WORDS[k % 8]}"
                                 for k in range(16)]
    (folder / "items.csv").write_text("\n".join(items) + "\n")
    return folder


def config(folder, **model):
    return validate_config({
        "data": {"source": str(folder / "inter.csv"), "item_path": str(folder / "items.csv"),
                 "title_field": "title", "task": "ctr",
                 "ctr": {"history_len": 3, "split": [0.6, 0.2, 0.2]}},
        "model": {"name": "ctr-bert", "user_max_length": 48, **model},
        "train": {"epochs": 3, "batch_size": 16, "lr": 3e-4, "num_threads": 1, "seed": 0}})


def test_ctr_bert_learns_the_planted_titles_and_fine_tunes_both_towers(planted, tmp_path):
    cfg = config(planted)
    result = train_run(cfg, tmp_path / "run", progress=False)
    assert result.metrics["test"]["AUC"] > 0.75
    model = build_model(cfg, prepare_data(cfg).dataset)
    assert model.user_tower is not model.item_tower
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == sum(p.numel() for p in model.parameters())  # full fine-tuning


def test_user_text_lists_the_history_and_shared_towers_tie(planted):
    cfg = config(planted, shared_towers=True)
    prepared = prepare_data(cfg)
    model = build_model(cfg, prepared.dataset)
    assert model.user_tower is model.item_tower
    from recadapt.data.ctr import ctr_batches

    batch = next(iter(ctr_batches(prepared.split.test, 2)))
    text = model.user_texts(batch)[0]
    assert "stars)" in text and "***" not in text  # rated history, no target question
    model.train()
    model.loss(batch).backward()
    assert all(p.grad is not None for p in model.head.parameters())
    assert any(p.grad is not None and torch.any(p.grad != 0)
               for p in model.user_tower.parameters())


def test_rella_needs_retrieval(planted):
    raw = config(planted).model_dump(mode="json")
    raw["model"] = {"name": "rella"}
    with pytest.raises(ConfigError, match=r"data\.ctr\.retrieval"):
        build_model(validate_config(raw), prepare_data(validate_config(raw)).dataset)
