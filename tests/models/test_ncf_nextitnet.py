"""NCF (NeuMF) and NextItNet, the alternative CF backbones of A-LLMRec (Table 9)."""

from __future__ import annotations

import pytest
import torch

from recadapt.errors import ConfigError
from recadapt.models.idrec import NextItNet, NextItNetConfig
from recadapt.models.ncf import NCF, NCFConfig
from recadapt.models.registry import get_model
from recadapt.train.loop import train_run

NUM_USERS, NUM_ITEMS = 5, 12


def _batch() -> dict[str, torch.Tensor]:
    """Three left-padded training windows with next-item targets (0 = no loss)."""
    history = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7], [0, 0, 8, 9]])
    target = torch.tensor([[0, 2, 3, 4], [5, 6, 7, 8], [0, 0, 9, 10]])
    return {"history": history, "target": target, "user": torch.tensor([0, 3, 4])}


def _ncf(**config) -> NCF:
    torch.manual_seed(0)
    return NCF(NCFConfig(**config), NUM_USERS, NUM_ITEMS)


# -- learning on the cyclic data (tests/conftest.py) ---------------------------------------------
@pytest.mark.parametrize(("model", "epochs"), [
    ({"name": "nextitnet", "hidden_size": 32}, 10),
    ({"name": "ncf"}, 20),
    ({"name": "ncf", "loss": "ce"}, 20),
])
def test_model_beats_popularity(make_config, tmp_path, model, epochs):
    # cyclic data: the next item follows the last one. NextItNet learns that; NCF learns each
    # user's arc of the cycle, and with history items masked the arc's two ends remain on top.
    popularity = train_run(make_config(model={"name": "popularity"}), tmp_path / "pop",
                           progress=False)
    result = train_run(make_config(model=model, train={"epochs": epochs}), tmp_path / "run",
                       progress=False)
    pop_hr, hr = popularity.metrics["test"]["HR@10"], result.metrics["test"]["HR@10"]
    assert pop_hr < 0.6
    assert hr > 0.9 and hr > pop_hr + 0.3


# -- NextItNet --------------------------------------------------------------------------------
def test_nextitnet_defaults_follow_recbole():
    entry = get_model("nextitnet")
    config = entry.config_class()
    assert entry.model_class is NextItNet
    assert (config.hidden_size, config.kernel_size, config.dilations, config.num_blocks,
            config.loss) == (64, 3, [1, 4], 5, "ce")
    model = NextItNet(config, NUM_ITEMS, 4)
    assert len(model.encoder.blocks) == 10


@pytest.mark.parametrize("bad", [{"dilations": []}, {"dilations": [0]}, {"kernel_size": 1}])
def test_nextitnet_config_refuses_bad_values(bad):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        NextItNetConfig(**bad)


@pytest.mark.parametrize("loss", ["ce", "bce", "debiased_ce"])
def test_nextitnet_gradients_reach_the_item_table_and_convolutions(loss):
    torch.manual_seed(0)
    model = NextItNet(NextItNetConfig(hidden_size=8, dilations=[1, 2], num_blocks=1, loss=loss),
                      NUM_ITEMS, 4)
    model.fit_statistics(torch.arange(NUM_ITEMS + 1).float())
    model.loss(_batch()).backward()
    grad = model.items.weight.grad
    assert grad is not None and grad[1:].abs().sum() > 0
    assert torch.all(grad[0] == 0)  # padding row stays zero
    assert model.encoder.blocks[0].conv1.weight.grad.abs().sum() > 0


def test_nextitnet_score_and_embedding_shapes():
    model = NextItNet(NextItNetConfig(hidden_size=8), NUM_ITEMS, 4).eval()
    batch = _batch()
    with torch.no_grad():
        assert model.score(batch).shape == (3, NUM_ITEMS + 1)
        assert model.user_embeddings(batch).shape == (3, 8)
        assert model.item_embeddings().shape == (NUM_ITEMS + 1, 8)


# -- NCF ----------------------------------------------------------------------------------------
def test_ncf_defaults_and_create_use_the_dataset_sizes():
    from types import SimpleNamespace

    entry = get_model("ncf")
    config = entry.config_class()
    assert entry.model_class is NCF
    assert (config.embedding_size, config.mlp_layers, config.loss) == (32, [64, 32, 16], "bce")
    dataset = SimpleNamespace(num_users=NUM_USERS, num_items=NUM_ITEMS)
    model = NCF.create(config, dataset, None)  # type: ignore[arg-type]
    assert model.user_gmf.num_embeddings == NUM_USERS
    assert model.item_mlp.num_embeddings == NUM_ITEMS + 1
    assert [m.out_features for m in model.mlp if isinstance(m, torch.nn.Linear)] == [64, 32, 16]
    assert model.predict.in_features == 32 + 16


def test_ncf_config_refuses_unknown_keys():
    from recadapt.config import validate_config
    from recadapt.models.registry import resolve_model

    with pytest.raises(ConfigError, match=r"unknown key 'model.hidden'"):
        resolve_model(validate_config({"data": {"source": "x.csv"},
                                       "model": {"name": "ncf", "hidden": 3}}))


@pytest.mark.parametrize("loss", ["bce", "ce"])
def test_ncf_gradients_reach_both_towers(loss):
    model = _ncf(loss=loss)
    model.loss(_batch()).backward()
    for table in (model.user_gmf, model.user_mlp, model.item_gmf, model.item_mlp):
        assert table.weight.grad is not None and table.weight.grad.abs().sum() > 0
    # users 1 and 2 have no window in the batch: their rows get no gradient
    assert torch.all(model.user_gmf.weight.grad[[1, 2]] == 0)
    assert model.mlp[0].weight.grad.abs().sum() > 0
    assert model.predict.weight.grad.abs().sum() > 0


def test_ncf_score_is_neumf_over_every_item_in_any_chunking():
    model = _ncf().eval()
    batch = _batch()
    with torch.no_grad():
        scores = model.score(batch)
        assert scores.shape == (3, NUM_ITEMS + 1)
        model.score_chunk_pairs = 7  # 2 items per chunk for 3 users
        assert torch.allclose(model.score(batch), scores, atol=1e-6)
        one = model.logits(batch["user"][1:2], torch.tensor([[5]]))
        assert torch.allclose(scores[1, 5], one[0, 0], atol=1e-6)
        candidates = torch.tensor([[1, 2], [3, 4], [12, 6]])
        assert torch.allclose(model.score_candidates(batch, candidates),
                              scores.gather(1, candidates), atol=1e-6)


def test_ncf_embeddings_concatenate_the_towers():
    model = _ncf(embedding_size=4)
    batch = _batch()
    items, users = model.item_embeddings(), model.user_embeddings(batch)
    assert items.shape == (NUM_ITEMS + 1, 8) and users.shape == (3, 8)
    assert torch.all(items[0] == 0)
    # the representation score = GMF's unweighted product + the MLP embeddings' dot product
    gmf = model.user_gmf(batch["user"]) @ model.item_gmf.weight.T
    mlp = model.user_mlp(batch["user"]) @ model.item_mlp.weight.T
    assert torch.allclose(users @ items.T, gmf + mlp, atol=1e-6)
