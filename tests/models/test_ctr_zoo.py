"""The CTR model zoo (DeepFM, AutoInt, DCNv2, DIN, SIM) through the one loop on a planted
feature pattern, plus gradients and the gate representation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recadapt.config import validate_config
from recadapt.data.ctr import ctr_batches, ctr_split
from recadapt.data.readers import read_dataset
from recadapt.errors import ConfigError
from recadapt.models.registry import build_model
from recadapt.train.loop import train_run

GENRES = ["Action", "Horror", "Drama", "Comedy"]
LIKED = {"M": {"Action", "Horror"}, "F": {"Drama", "Comedy"}}
MODELS = [("deepfm", {}), ("autoint", {}), ("dcnv2", {}), ("din", {}),
          ("sim", {"search": "soft", "top_k": 3}), ("sim", {"search": "hard"})]
IDS = ["deepfm", "autoint", "dcnv2", "din", "sim-soft", "sim-hard"]


@pytest.fixture
def planted(tmp_path):
    """RecBole folder: 60 users (gender, age, occupation), 32 items (1-2 genres, year).
    A user likes (rating 5) exactly the items whose first genre their gender likes — men
    Action/Horror, women Drama/Comedy — and rates the rest 1: learnable from gender × genre
    (and from the genres of the liked history items)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "planted"
    folder.mkdir()
    genders = ["M" if u % 2 else "F" for u in range(60)]
    users = ["user_id:token\tgender:token\tage:float\toccupation:token"]
    users += [f"u{u}\t{genders[u]}\t{rng.integers(18, 60)}\t{rng.choice(['a', 'b', 'c'])}"
              for u in range(60)]
    first = [GENRES[i % 4] for i in range(32)]
    items = ["item_id:token\tgenre:token_seq\tyear:token"]
    for i in range(32):
        extra = f" {rng.choice(GENRES)}" if i % 3 == 0 else ""
        items.append(f"i{i}\t{first[i]}{extra}\t{rng.integers(1950, 2000)}")
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(60):
        for step, i in enumerate(rng.choice(32, size=12, replace=False)):
            rating = 5 if first[i] in LIKED[genders[u]] else 1
            inter.append(f"u{u}\ti{i}\t{rating}\t{step * 100 + u}")
    for suffix, rows in (("user", users), ("item", items), ("inter", inter)):
        (folder / f"planted.{suffix}").write_text("\n".join(rows) + "\n")
    return folder


def zoo_config(folder, name, **model):
    return validate_config({
        "data": {"source": str(folder), "task": "ctr", "ctr": {"history_len": 8}},
        "model": {"name": name, **model},
        "train": {"epochs": 15, "batch_size": 64, "lr": 0.01, "patience": 15, "seed": 0,
                  "num_threads": 1},
    })


def first_batch(folder, name, **model):
    config = zoo_config(folder, name, **model)
    dataset = read_dataset(folder)
    split = ctr_split(dataset, history_len=8)
    torch.manual_seed(0)
    return build_model(config, dataset), next(ctr_batches(split.train, 32))


@pytest.mark.parametrize(("name", "model"), MODELS, ids=IDS)
def test_zoo_model_learns_the_planted_feature_pattern(planted, tmp_path, name, model):
    result = train_run(zoo_config(planted, name, **model), tmp_path / "run", progress=False)
    assert result.metrics["test"]["AUC"] > 0.8


@pytest.mark.parametrize(("name", "model"), MODELS, ids=IDS)
def test_gradients_reach_every_field_embedding(planted, name, model):
    torch.set_num_threads(1)
    net, batch = first_batch(planted, name, **model)
    assert net.field_names == ["user:user_id", "user:gender", "user:age", "user:occupation",
                               "item:item_id", "item:genre", "item:year"]
    net.loss(batch).backward()
    for side in (net.fields.users, net.fields.items):
        for field, table in zip(side.names, side.tables, strict=True):
            assert table.weight.grad is not None and table.weight.grad.abs().sum() > 0, field
    assert not any(key.startswith("fields.") and ".codes_" in key for key in net.state_dict())


@pytest.mark.parametrize(("name", "model"), MODELS, ids=IDS)
def test_user_representation_shape(planted, name, model):
    torch.set_num_threads(1)
    net, batch = first_batch(planted, name, embedding_dim=8, **model)
    representation = net.user_representation(batch)
    behaviour_model = name in ("din", "sim")
    expected = (3 + 4) * 8 if behaviour_model else (4 + 1) * 8  # (F_item + F_user) or F_user+1
    assert net.representation_dim == expected
    assert representation.shape == (len(batch["user"]), expected)
    assert net.ctr_logits(batch).shape == (len(batch["user"]),)


def test_sim_hard_search_uses_the_first_genre_and_needs_a_category(planted, tmp_path):
    torch.set_num_threads(1)
    net, _ = first_batch(planted, "sim", search="hard")
    assert net.category == "genre"
    genre = net.tables[1].fields[net.tables[1].names.index("genre")]
    first = [genre.vocabulary[c - 1] for c in net.item_category[1:].tolist()]
    dataset = read_dataset(planted)
    assert first == [GENRES[int(raw[1:]) % 4] for raw in dataset.item_ids[1:]]
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "bare.inter").write_text((planted / "planted.inter").read_text())
    with pytest.raises(ConfigError, match="search: soft"):
        first_batch(bare, "sim", search="hard")
