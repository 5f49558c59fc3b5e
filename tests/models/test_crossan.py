"""CROSSAN and IISAN-E on fake encoders: layer selection over unequal depths, gradients only in
the side towers, fusion and sequence encoder, cached = live, and a short training run through
the loop that beats popularity and writes the gate heatmap and mutual information."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from recadapt.config import validate_config
from recadapt.errors import ConfigError
from recadapt.models import content
from recadapt.models.crossan import CROSSAN, CROSSANConfig
from recadapt.models.iisan_e import IISANE, IISANEConfig
from recadapt.train.loop import train_run


def _encoders(fake_encoder):
    return [fake_encoder(6, 8, "text"), fake_encoder(8, 12, "image", seed=1),
            fake_encoder(4, 8, "audio", seed=2)]



def test_towers_keep_the_same_number_of_evenly_spaced_layers(fake_encoder) -> None:
    infos = [e.info for e in _encoders(fake_encoder)]
    # LayerDrop: half of the shallowest encoder's 4 blocks → 2 side layers per tower
    assert CROSSAN.select_layers(CROSSANConfig(), infos) == [[0, 3, 6], [0, 4, 8], [0, 2, 4]]
    assert CROSSAN.select_layers(CROSSANConfig(layer_drop=False), infos)[1] == [0, 2, 4, 6, 8]
    assert CROSSAN.select_layers(CROSSANConfig(side_layers=3), infos)[0] == [0, 2, 4, 6]
    assert IISANE.select_layers(IISANEConfig(), infos) == CROSSAN.select_layers(
        CROSSANConfig(), infos)  # same caches for the comparison
    with pytest.raises(ConfigError, match="same length"):
        CROSSAN.select_layers(CROSSANConfig(blocks=[[1, 2], [3], [4]]), infos)
    with pytest.raises(ConfigError, match="at least two"):
        CROSSAN.select_layers(CROSSANConfig(), infos[:1])


@pytest.mark.parametrize("cls,config,prefixes", [
    (CROSSAN, CROSSANConfig(hidden_size=16, adapter_size=4), {"towers", "fusion"}),
    (CROSSAN, CROSSANConfig(hidden_size=16, adapter_size=4, cross=False, fusion="concat"),
     {"towers", "fusion"}),
    (IISANE, IISANEConfig(hidden_size=16, adapter_size=4), {"intra", "inter_net", "fusion"}),
])
def test_gradients_reach_only_towers_fusion_and_sequence(content_models, fake_encoder, cls,
                                                         config,
                                                         prefixes) -> None:
    torch.manual_seed(0)
    encoders = _encoders(fake_encoder)
    model = content_models.build(cls, config, encoders, cached=False)
    before = [p.clone() for e in encoders for p in e.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    model(content_models.batch()).backward()
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.grad is not None}
    assert trainable == {"encoder", *prefixes}
    optimizer.step()
    after = [p for e in encoders for p in e.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert not any("sources" in n for n in model.state_dict())


def test_crossan_cached_and_live_agree(content_models, fake_encoder) -> None:
    encoders = _encoders(fake_encoder)
    config = CROSSANConfig(hidden_size=16, adapter_size=4)
    torch.manual_seed(0)
    cached = content_models.build(CROSSAN, config, encoders, cached=True)
    live = content_models.build(CROSSAN, config, encoders, cached=False)
    live.load_state_dict(cached.state_dict())
    cached.eval()
    live.eval()
    with torch.no_grad():
        torch.testing.assert_close(cached.item_embeddings(), live.item_embeddings())


def test_crossan_is_lighter_than_iisan_e_at_equal_width(content_models, fake_encoder) -> None:
    encoders = _encoders(fake_encoder)
    count = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
    build = content_models.build
    crossan = build(CROSSAN, CROSSANConfig(hidden_size=16, adapter_size=4), encoders, True)
    iisan_e = build(IISANE, IISANEConfig(hidden_size=16, adapter_size=4), encoders, True)
    assert count(crossan) < count(iisan_e)  # one tower per modality, no inter tower


def test_balance_adds_momef_gate_term_to_the_loss_once(content_models, fake_encoder) -> None:
    encoders = _encoders(fake_encoder)
    batch = content_models.batch()
    losses = {}
    for balance in (0.0, 0.5):
        torch.manual_seed(0)
        model = content_models.build(
            CROSSAN, CROSSANConfig(hidden_size=16, adapter_size=4, balance=balance, dropout=0.0,
                                   adapter_dropout=0.0), encoders, cached=True)
        model.train()
        model.fusion.take_balance_loss()
        losses[balance] = model(batch)
        assert model.fusion.take_balance_loss() is None  # the loss took its term
    # α Σ f_m P_m: α when balanced, at most α·M/k (f_m ≤ M/k, Σ P_m = 1); α/2 a loose floor
    extra = (losses[0.5] - losses[0.0]).item()
    assert 0.5 * 0.5 < extra < 0.5 * 3 / 2 + 1e-6
    with pytest.raises(ConfigError, match="balance"):
        content_models.build(CROSSAN, CROSSANConfig(hidden_size=16, top_k=3, balance=0.1),
                             encoders, cached=True)


def test_cosine_router_replaces_the_linear_gate_and_trains(content_models, fake_encoder) -> None:
    from recadapt.nn.fusion import CosineRouter

    encoders = _encoders(fake_encoder)
    model = content_models.build(
        CROSSAN, CROSSANConfig(hidden_size=16, adapter_size=4, router="cosine",
                               router_temperature=0.25), encoders, cached=True)
    assert isinstance(model.fusion.gate, CosineRouter) and model.fusion.gate.temperature == 0.25
    model(content_models.batch()).backward()
    assert model.fusion.gate.expert_embeddings.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="router cosine"):
        content_models.build(CROSSAN, CROSSANConfig(hidden_size=16, fusion="concat",
                                                    router="cosine"), encoders, cached=True)


@pytest.fixture
def three_fake_encoders(monkeypatch, fake_encoder):
    def load(run, needed=None, model_name="", reuse=False):
        return _encoders(fake_encoder)

    monkeypatch.setattr(content, "load_encoders", load)


def test_short_crossan_run_beats_popularity_and_writes_its_analysis(
        cyclic_writer, three_fake_encoders, tmp_path: Path) -> None:
    inter = cyclic_writer(tmp_path / "cyclic.csv")
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\n" + "".join(f"i{i},title {i}\n" for i in range(1, 31)),
                     encoding="utf-8")

    def config(model: dict):
        return validate_config({
            "data": {"source": str(inter), "item_path": str(items), "max_seq_len": 10},
            "encoders": [{"name": n, "model": f"fake-{n}", "fields": ["title"]}
                         for n in ("text", "image", "audio")],
            "cache": {"dir": str(tmp_path / "cache"), "dtype": "fp32"},
            "model": model,
            "train": {"epochs": 25, "batch_size": 16, "lr": 0.005, "patience": 25,
                      "num_threads": 1},
            "eval": {"ks": [5, 10]},
        })

    run = train_run(config({"name": "crossan", "hidden_size": 32, "adapter_size": 16}),
                    tmp_path / "crossan", progress=False)
    popularity = train_run(config({"name": "popularity"}), tmp_path / "pop", progress=False)
    assert run.metrics["test"]["NDCG@10"] > popularity.metrics["test"]["NDCG@10"] + 0.2
    gates = json.loads((run.run_dir / "gates.json").read_text())
    assert gates["towers"] == ["text", "image", "audio"]
    assert torch.allclose(torch.tensor(gates["values"]).sum(-1), torch.ones(3, 2), atol=1e-5)
    assert (run.run_dir / "gates.png").stat().st_size > 1000
    mi = json.loads((run.run_dir / "mutual_information.json").read_text())
    assert set(mi["pairs"]) == {"text|image", "text|audio", "image|audio"}
    fusion = json.loads((run.run_dir / "fusion_weights.json").read_text())
    assert fusion["top_k"] == 2 and fusion["router"] == "linear"
    assert sum(fusion["chosen_share"].values()) == pytest.approx(2.0)


def test_frozen_encoders_are_loaded_once_per_process_only_when_reused(monkeypatch, fake_encoder,
                                                                     tmp_path: Path) -> None:
    import recadapt.encoders

    calls = []

    def fake_load(spec, position=None):
        calls.append(spec.name)
        return fake_encoder(2, 4, spec.name)

    monkeypatch.setattr(recadapt.encoders, "load_encoder", fake_load)
    monkeypatch.setattr(content, "_LOADED", {})
    run = validate_config({"data": {"source": "dslabs"},
                           "encoders": [{"name": "reuse-a", "model": "minilm"}],
                           "cache": {"dir": str(tmp_path)},  # the fake's info is memoised
                           "model": {"name": "crossan"}})
    first = content.load_encoders(run, reuse=True)
    assert content.load_encoders(run, reuse=True)[0] is first[0]
    assert content.load_encoders(run)[0] is not first[0]  # fine-tuning models get a fresh one
    assert calls == ["reuse-a", "reuse-a"]
