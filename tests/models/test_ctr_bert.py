"""CTR-BERT (two fine-tuned MiniLM towers) and the ReLLa configuration check."""

from __future__ import annotations

import pytest
import torch

from recadapt.config import validate_config
from recadapt.errors import ConfigError
from recadapt.models.registry import build_model
from recadapt.train.loop import train_run
from recadapt.train.runs import prepare_data


@pytest.fixture(scope="module")
def planted(tmp_path_factory, planted_titles_writer):
    """"sunny X" items are rated 5, "rainy X" 1: the item text decides the label."""
    return planted_titles_writer(tmp_path_factory.mktemp("ctrbert"), seed=1)


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
