"""IISAN-Versa on fake encoders: layer selection, gradients only in the side networks, cached
and live states agreeing, the backbone untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from recadapt.models.content import CachedStates, LiveStates
from recadapt.models.iisan import IISAN, IISANConfig

NUM_ITEMS = 12
CONTENTS = [f"item number {i}" for i in range(1, NUM_ITEMS + 1)]


def _batch() -> dict[str, torch.Tensor]:
    history = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7], [0, 0, 8, 9]])
    target = torch.tensor([[0, 2, 3, 4], [5, 6, 7, 8], [0, 0, 9, 10]])
    return {"history": history, "target": target, "user": torch.arange(3)}


def _model(encoders, config: IISANConfig, cached: bool) -> IISAN:
    infos = [e.info for e in encoders]
    layers = IISAN.select_layers(config, infos)
    if cached:
        sources = [CachedStates(e.encode(CONTENTS, chosen), chosen)
                   for e, chosen in zip(encoders, layers, strict=True)]
    else:
        sources = [LiveStates(e, CONTENTS, chosen, batch_size=5)
                   for e, chosen in zip(encoders, layers, strict=True)]
    model = IISAN(config, NUM_ITEMS, 4, nn.ModuleList(sources), infos)
    model.fit_statistics(torch.arange(NUM_ITEMS + 1).float())
    return model


def test_layer_selection_vs_and_va(fake_encoder) -> None:
    config = IISANConfig()
    same = [fake_encoder(4, 8).info, fake_encoder(4, 8).info]
    assert IISAN.select_layers(config, same) == [[0, 2, 4], [0, 2, 4]]
    llm, small = fake_encoder(12, 10).info, fake_encoder(4, 8).info
    # small keeps blocks 2, 4 (n=2); eq. 5: k = (12-1)//2 = 5 → blocks 7, 12
    assert IISAN.select_layers(config, [llm, small]) == [[0, 7, 12], [0, 2, 4]]
    no_drop = IISANConfig(layer_drop=False)
    assert IISAN.select_layers(no_drop, [llm, small])[1] == [0, 1, 2, 3, 4]
    explicit = IISANConfig(blocks=[[3], [1, 4]])
    assert IISAN.select_layers(explicit, [llm, small]) == [[0, 3], [0, 1, 4]]


def test_gradients_reach_only_side_networks_fusion_and_sequence(fake_encoder) -> None:
    torch.manual_seed(0)
    encoders = [fake_encoder(12, 10, "llm"), fake_encoder(4, 8, "small", seed=1)]
    model = _model(encoders, IISANConfig(hidden_size=16, adapter_size=4), cached=False)
    before = [p.clone() for e in encoders for p in e.parameters()]
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(_batch()).backward()
    trainable = {n for n, p in model.named_parameters() if p.grad is not None}
    prefixes = {n.split(".")[0] for n in trainable}
    assert prefixes == {"encoder", "intra_a", "intra_b", "inter_net", "fusion"}
    assert any(n.startswith("inter_net.inputs.1.dtl") for n in trainable)  # VA: 10 → 8
    optimizer.step()
    after = [p for e in encoders for p in e.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(not p.requires_grad for e in encoders for p in e.parameters())
    assert not any("sources" in n for n in model.state_dict())  # backbone not checkpointed


def test_cached_and_live_states_give_the_same_model(fake_encoder) -> None:
    encoders = [fake_encoder(4, 8, "a"), fake_encoder(4, 8, "b", seed=1)]
    config = IISANConfig(hidden_size=16, adapter_size=4)
    torch.manual_seed(0)
    cached = _model(encoders, config, cached=True)
    torch.manual_seed(0)
    live = _model(encoders, config, cached=False)
    live.load_state_dict(cached.state_dict())
    cached.eval()
    live.eval()
    with torch.no_grad():
        torch.testing.assert_close(cached.item_embeddings(), live.item_embeddings())
        torch.testing.assert_close(cached.score(_batch()), live.score(_batch()))


@pytest.mark.parametrize(
    "switches",
    [{"intra": False}, {"inter": False}, {"gates": False}, {"layer_drop": False}],
)
def test_ablations_train(fake_encoder, switches: dict) -> None:
    encoders = [fake_encoder(4, 8, "a"), fake_encoder(4, 8, "b", seed=1)]
    model = _model(encoders, IISANConfig(hidden_size=16, adapter_size=4, **switches), True)
    loss = model(_batch())
    loss.backward()
    assert torch.isfinite(loss)
    if not switches.get("gates", True):
        assert not any("gates" in n for n, _ in model.named_parameters())


def test_item_table_recomputed_after_weights_change(fake_encoder) -> None:
    encoders = [fake_encoder(4, 8, "a"), fake_encoder(4, 8, "b", seed=1)]
    model = _model(encoders, IISANConfig(hidden_size=16, adapter_size=4), True)
    model.eval()
    with torch.no_grad():
        first = model.item_embeddings().clone()
        state = {k: v + 0.1 for k, v in model.state_dict().items()}
        model.load_state_dict(state)
        assert not torch.allclose(first, model.item_embeddings())


def test_needs_both_towers_or_one() -> None:
    with pytest.raises(ValueError, match="intra and inter"):
        IISANConfig(intra=False, inter=False)
