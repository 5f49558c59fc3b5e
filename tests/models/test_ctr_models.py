"""ID CTR scorers (SASRec / GRU4Rec over the behaviour sequence) through the one loop."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recadapt.config import validate_config
from recadapt.errors import ConfigError
from recadapt.models.registry import resolve_model
from recadapt.train.loop import train_run


def planted_ctr_csv(path, users=120, items=40, seed=0):
    """Each user likes the even or the odd items (rating 5) and dislikes the other half
    (rating 1): the history's liked items reveal the user's parity, which decides the label."""
    rng = np.random.default_rng(seed)
    rows = ["user_id,item_id,timestamp,rating"]
    for user in range(users):
        parity = user % 2
        for step, item in enumerate(rng.choice(items, size=12, replace=False)):
            rating = 5 if item % 2 == parity else 1
            rows.append(f"u{user},i{item},{step * 1000 + user},{rating}")
    path.write_text("\n".join(rows) + "\n")
    return path


def ctr_config(tmp_path, **model):
    return validate_config({
        "data": {"source": str(planted_ctr_csv(tmp_path / "ctr.csv")), "task": "ctr",
                 "ctr": {"history_len": 8}},
        "model": {"hidden_size": 16, **model},
        "train": {"epochs": 40, "batch_size": 64, "lr": 0.01, "patience": 40, "seed": 0},
    })


@pytest.mark.parametrize("name", ["sasrec-ctr", "gru4rec-ctr"])
def test_sequence_ctr_learns_a_planted_pattern(tmp_path, name):
    result = train_run(ctr_config(tmp_path, name=name), tmp_path / name, progress=False)
    assert result.metrics["test"]["AUC"] > 0.8
    assert result.metrics["protocol"] == "ctr"
    predictions = json.loads((tmp_path / name / "predictions.json").read_text())
    assert len(predictions["probs"]) == len(predictions["labels"]) > 0
    assert all(0 <= p <= 1 for p in predictions["probs"])


@pytest.mark.parametrize("name", ["sasrec-ctr", "gru4rec-ctr", "caser-ctr"])
def test_feedback_switch_decides_whether_history_labels_matter(tmp_path, name):
    from types import SimpleNamespace

    import torch

    from recadapt.models.registry import get_model, model_config

    flipped = {}
    for feedback in (True, False):
        run = ctr_config(tmp_path, name=name, feedback=feedback)
        entry = get_model(name)
        torch.manual_seed(0)
        model = entry.model_class(model_config(run), SimpleNamespace(num_items=10),
                                   run).eval()
        history = torch.tensor([[0, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6]])
        labels = torch.tensor([[0.0, 1, 0, 1, 1, 0], [1.0, 1, 1, 0, 0, 0]])
        batch = {"history": history, "history_label": labels, "item": torch.tensor([8, 9])}
        with torch.no_grad():
            before = model.ctr_logits(batch)
            after = model.ctr_logits({**batch, "history_label": 1 - labels})
        flipped[feedback] = (before - after).abs().max().item()
        assert (model.feedback is None) == (not feedback)
    assert flipped[True] > 1e-6  # labels change the user vector
    assert flipped[False] == 0.0  # the item sequence alone


def test_like_rate_is_the_smoothed_share_of_liked_behaviours(tmp_path):
    import torch

    from recadapt.data.ctr import CTRSamples
    from recadapt.models.ctr import HistoryLikeRate, HistoryLikeRateConfig

    model = HistoryLikeRate(HistoryLikeRateConfig(prior_weight=2.0), None, None)
    labels = np.array([1, 1, 1, 0], dtype=np.float32)  # training positive rate 0.75
    empty = np.zeros((4, 3), dtype=np.int64)
    model.fit_training_samples(CTRSamples(np.zeros(4), np.zeros(4), labels, np.zeros(4),
                                          empty, empty.astype(np.float32), empty))
    batch = {"history": torch.tensor([[0, 5, 6], [0, 0, 0], [7, 8, 9]]),
             "history_label": torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])}
    probs = torch.sigmoid(model.ctr_logits(batch))
    # (1 + 2*0.75) / (2 + 2), the prior alone, (3 + 1.5) / (3 + 2); padding (item 0) not counted
    assert torch.allclose(probs, torch.tensor([0.625, 0.75, 0.9]), atol=1e-5)
    config = validate_config({
        "data": {"source": str(planted_ctr_csv(tmp_path / "ctr.csv")), "task": "ctr",
                 "ctr": {"history_len": 8}}, "model": {"name": "like-rate"}})
    result = train_run(config, tmp_path / "rate", progress=False)
    # the planted labels depend on the target's parity, not on the user's like-rate
    assert result.metrics["test"]["AUC"] < 0.7
    assert result.efficiency["trainable_params"] == 0


def test_task_and_model_must_match(tmp_path):
    with pytest.raises(ConfigError, match=r"does not do data\.task='ctr'"):
        resolve_model(ctr_config(tmp_path, name="sasrec"))
    with pytest.raises(ConfigError, match=r"data\.task='next_item'"):
        resolve_model(validate_config({"model": {"name": "sasrec-ctr"}}))


def test_ctr_monitor_defaults_to_auc_and_rejects_ranking_metrics(tmp_path):
    assert ctr_config(tmp_path, name="sasrec-ctr").train.monitor == "AUC"
    with pytest.raises(ConfigError, match=r"train\.monitor"):
        validate_config({"data": {"task": "ctr"}, "model": {"name": "sasrec-ctr"},
                         "train": {"monitor": "NDCG@10"}})
