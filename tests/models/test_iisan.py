"""IISAN-Versa on fake encoders: layer selection, gradients only in the side networks, cached
and live states agreeing, the backbone untouched."""

from __future__ import annotations

import pytest
import torch

from recadapt.models.iisan import IISAN, IISANConfig


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


def test_gradients_reach_only_side_networks_fusion_and_sequence(content_models,
                                                              fake_encoder) -> None:
    torch.manual_seed(0)
    encoders = [fake_encoder(12, 10, "llm"), fake_encoder(4, 8, "small", seed=1)]
    model = content_models.build(IISAN, IISANConfig(hidden_size=16, adapter_size=4), encoders,
                                 cached=False)
    before = [p.clone() for e in encoders for p in e.parameters()]
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(content_models.batch()).backward()
    trainable = {n for n, p in model.named_parameters() if p.grad is not None}
    prefixes = {n.split(".")[0] for n in trainable}
    assert prefixes == {"encoder", "intra_a", "intra_b", "inter_net", "fusion"}
    assert any(n.startswith("inter_net.inputs.1.dtl") for n in trainable)  # VA: 10 → 8
    optimizer.step()
    after = [p for e in encoders for p in e.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(not p.requires_grad for e in encoders for p in e.parameters())
    assert not any("sources" in n for n in model.state_dict())  # backbone not checkpointed


def test_cached_and_live_states_give_the_same_model(content_models, fake_encoder) -> None:
    encoders = [fake_encoder(4, 8, "a"), fake_encoder(4, 8, "b", seed=1)]
    config = IISANConfig(hidden_size=16, adapter_size=4)
    torch.manual_seed(0)
    cached = content_models.build(IISAN, config, encoders, cached=True)
    torch.manual_seed(0)
    live = content_models.build(IISAN, config, encoders, cached=False)
    live.load_state_dict(cached.state_dict())
    cached.eval()
    live.eval()
    with torch.no_grad():
        torch.testing.assert_close(cached.item_embeddings(), live.item_embeddings())
        batch = content_models.batch()
        torch.testing.assert_close(cached.score(batch), live.score(batch))


@pytest.mark.parametrize(
    "switches",
    [{"intra": False}, {"inter": False}, {"gates": False}, {"layer_drop": False}],
)
def test_ablations_train(content_models, fake_encoder, switches: dict) -> None:
    encoders = [fake_encoder(4, 8, "a"), fake_encoder(4, 8, "b", seed=1)]
    model = content_models.build(
        IISAN, IISANConfig(hidden_size=16, adapter_size=4, **switches), encoders, True)
    loss = model(content_models.batch())
    loss.backward()
    assert torch.isfinite(loss)
    if not switches.get("gates", True):
        assert not any("gates" in n for n, _ in model.named_parameters())


def test_item_table_recomputed_after_weights_change(content_models, fake_encoder) -> None:
    encoders = [fake_encoder(4, 8, "a"), fake_encoder(4, 8, "b", seed=1)]
    model = content_models.build(IISAN, IISANConfig(hidden_size=16, adapter_size=4), encoders,
                                 True)
    model.eval()
    with torch.no_grad():
        first = model.item_embeddings().clone()
        state = {k: v + 0.1 for k, v in model.state_dict().items()}
        model.load_state_dict(state)
        assert not torch.allclose(first, model.item_embeddings())


def test_needs_both_towers_or_one() -> None:
    with pytest.raises(ValueError, match="intra and inter"):
        IISANConfig(intra=False, inter=False)
