"""Graph CTR baselines (LightGCN, GraphSAGE) through the one training loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from recadapt.config import validate_config
from recadapt.data.ctr import CTRDataset, collate_ctr
from recadapt.models.graph_ctr import training_edges
from recadapt.models.registry import build_model
from recadapt.train.loop import train_run
from recadapt.train.runs import prepare_data


def community_csv(path, users=60, items=40, per_user=16, seed=0):
    """Two user communities: community c rates the items of half c with 5 and the other half
    with 1. No single item or user is informative on its own; who liked what with whom is."""
    rng = np.random.default_rng(seed)
    rows = ["user_id,item_id,timestamp,rating"]
    for user in range(users):
        community = user % 2
        for step, item in enumerate(rng.choice(items, size=per_user, replace=False)):
            rating = 5 if item * 2 // items == community else 1
            rows.append(f"u{user},i{item},{step * 1000 + user},{rating}")
    path.write_text("\n".join(rows) + "\n")
    return path


def graph_config(tmp_path, **model):
    return validate_config({
        "data": {"source": str(community_csv(tmp_path / "ctr.csv")), "task": "ctr",
                 "ctr": {"history_len": 8}},
        "model": {"embedding_size": 16, **model},
        "train": {"epochs": 30, "batch_size": 64, "lr": 0.01, "patience": 30, "seed": 0,
                  "num_threads": 1},
    })


@pytest.mark.parametrize("name", ["lightgcn", "graphsage"])
def test_graph_ctr_learns_community_structure(tmp_path, name):
    config = graph_config(tmp_path, name=name)
    result = train_run(config, tmp_path / name, progress=False)
    assert result.metrics["test"]["AUC"] > 0.75
    # the weights file holds the learnt parameters only: no adjacency
    saved = load_file(str(tmp_path / name / "model.safetensors"))
    model = build_model(config, prepare_data(config).dataset)
    assert set(saved) == {key for key, _ in model.named_parameters()}


@pytest.mark.parametrize("name", ["lightgcn", "graphsage"])
def test_graph_is_built_from_training_samples_and_rebuilt_on_reload(tmp_path, name):
    config = graph_config(tmp_path, name=name)
    prepared = prepare_data(config)
    train = prepared.split.train
    torch.manual_seed(0)
    model = build_model(config, prepared.dataset)
    model.fit_training_samples(train)
    assert not any("graph" in key or "adj" in key for key in model.state_dict())

    expected = set()  # positive samples and the liked behaviours of their histories
    for row in range(len(train)):
        user = int(train.users[row])
        if train.labels[row] >= 0.5:
            expected.add((user, int(train.items[row])))
        for item, label in zip(train.history[row], train.history_labels[row], strict=True):
            if item > 0 and label >= 0.5:
                expected.add((user, int(item)))
    users, items = training_edges(train)
    assert set(zip(users.tolist(), items.tolist(), strict=True)) == expected
    assert model.num_edges == len(expected)

    batch = collate_ctr([CTRDataset(train)[i] for i in range(16)])
    model.train()
    model.loss(batch).backward()
    user_grad = model.users.weight.grad.abs().sum(1)
    item_grad = model.items.weight.grad.abs().sum(1)
    assert user_grad[batch["user"]].gt(0).all()
    assert item_grad[batch["item"]].gt(0).all()
    # propagation carries gradient to graph neighbours that are not in the batch
    outside = torch.ones(len(item_grad), dtype=torch.bool)
    outside[batch["item"]] = False
    assert item_grad[outside].gt(0).any()

    model.eval()
    reloaded = build_model(config, prepared.dataset)
    reloaded.fit_training_samples(train)
    reloaded.load_state_dict(model.state_dict())
    reloaded.eval()
    with torch.no_grad():
        assert torch.allclose(model.ctr_logits(batch), reloaded.ctr_logits(batch), atol=1e-6)


def test_scoring_before_the_graph_is_built_fails_clearly(tmp_path):
    config = graph_config(tmp_path, name="lightgcn")
    prepared = prepare_data(config)
    model = build_model(config, prepared.dataset)
    batch = collate_ctr([CTRDataset(prepared.split.train)[0]])
    with pytest.raises(Exception, match="fit_training_samples"):
        model.ctr_logits(batch)


@pytest.mark.parametrize("name", ["lightgcn", "graphsage"])
def test_history_fold_in_replaces_only_cold_users(tmp_path, name):
    config = graph_config(tmp_path, name=name)
    prepared = prepare_data(config)
    train = prepared.split.train
    cold_user = 3
    torch.manual_seed(0)
    plain = build_model(config, prepared.dataset)
    plain.fit_training_samples(train.subset(train.users != cold_user))
    folding = build_model(graph_config(tmp_path, name=name, cold_users="history"),
                          prepared.dataset)
    folding.fit_training_samples(train.subset(train.users != cold_user))
    folding.load_state_dict(plain.state_dict())
    plain.eval(), folding.eval()

    rows = [*np.flatnonzero(train.users == cold_user)[-3:], *np.flatnonzero(train.users == 4)[-3:]]
    batch = collate_ctr([CTRDataset(train)[i] for i in rows])
    with torch.no_grad():
        same = plain.ctr_logits(batch), folding.ctr_logits(batch)
        z = plain.node_embeddings()
    warm = batch["user"] == 4
    assert torch.allclose(same[0][warm], same[1][warm])
    row = int((~warm).nonzero()[-1])
    liked = (batch["history_label"][row] >= 0.5) & (batch["history"][row] > 0)
    assert liked.any()
    folded = z[plain.num_users + batch["history"][row][liked]].mean(0)
    if name == "graphsage":
        folded = torch.nn.functional.normalize(folded, dim=0)
    z_item = z[plain.num_users + batch["item"][row]]
    expected = plain.similarity_scale() * folded @ z_item + plain.bias
    assert torch.allclose(same[1][row], expected.squeeze(), atol=1e-5)
    assert not torch.allclose(same[0][row], same[1][row])
