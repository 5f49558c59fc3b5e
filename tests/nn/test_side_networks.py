"""IISAN's LayerDrop rules (eq. 5 by hand) and the gated side networks (eq. 2-4)."""

from __future__ import annotations

import pytest
import torch

from recadapt.nn.side_networks import (
    InterSideNetwork,
    IntraSideNetwork,
    every_second_block,
    group_layer_drop,
    group_layer_drop_k,
)


@pytest.mark.parametrize(
    ("text_layers", "image_layers", "k"),
    # max k with L_text - k * L_image / 2 >= 1:  24-3*6=6 (k=4: 0);  30-9*3=3 (k=10: 0);
    # 80-13*6=2 (k=14: -4)
    [(24, 12, 3), (30, 6, 9), (80, 12, 13)],
)
def test_eq5_k_by_hand(text_layers: int, image_layers: int, k: int) -> None:
    assert group_layer_drop_k(text_layers, image_layers // 2) == k


def test_every_second_block_keeps_even_blocks() -> None:
    assert every_second_block(12) == [2, 4, 6, 8, 10, 12]
    assert every_second_block(6) == [2, 4, 6]
    assert every_second_block(5) == [1, 3, 5]


def test_group_layer_drop_spaces_k_apart_ending_at_top() -> None:
    assert group_layer_drop(24, 6) == [9, 12, 15, 18, 21, 24]
    assert group_layer_drop(30, 3) == [12, 21, 30]
    with pytest.raises(ValueError, match="more text blocks"):
        group_layer_drop(3, 3)


def _linearise(net: torch.nn.Module) -> None:
    """Make every SANB the identity and every LayerNorm the identity, so the gated sums of
    eq. 2-3 can be checked by hand."""
    for module in net.modules():
        if hasattr(module, "up"):
            torch.nn.init.zeros_(module.up.weight)
            torch.nn.init.zeros_(module.up.bias)
            module.norm = None
    for module in net.modules():
        if hasattr(module, "norms"):
            module.norms = torch.nn.ModuleList(torch.nn.Identity() for _ in module.norms)


def test_intra_network_follows_eq2() -> None:
    torch.manual_seed(0)
    net = IntraSideNetwork([4, 4, 4], bottleneck=2, dropout=0.0)
    _linearise(net)
    with torch.no_grad():
        net.gates.logits.copy_(torch.tensor([0.3, -1.2]))
    h0, h1, h2 = (torch.randn(5, 4) for _ in range(3))
    mu = torch.sigmoid(torch.tensor([0.3, -1.2]))
    expected = mu[1] * (mu[0] * h0 + (1 - mu[0]) * h1) + (1 - mu[1]) * h2
    torch.testing.assert_close(net([h0, h1, h2]), expected)


def test_inter_network_follows_eq3_with_dtl() -> None:
    torch.manual_seed(0)
    net = InterSideNetwork([[4, 4], [6, 6]], bottleneck=2, dropout=0.0)
    _linearise(net)
    with torch.no_grad():
        net.gates.logits.copy_(torch.tensor([[0.3, 0.0], [-1.2, 0.0]]))
    beta = torch.sigmoid(torch.tensor([0.3, -1.2]))  # two modalities: softmax = sigmoid
    a0, a1 = torch.randn(3, 4), torch.randn(3, 4)
    b0, b1 = torch.randn(3, 6), torch.randn(3, 6)
    dtl = net.inputs[1].dtl["6"]  # one DTL shared by the equal-width layers
    h0 = beta[0] * a0 + (1 - beta[0]) * dtl(b0)
    expected = beta[1] * a1 + (1 - beta[1]) * dtl(b1) + h0
    torch.testing.assert_close(net([[a0, a1], [b0, b1]]), expected)


def test_inter_network_gated_sum_of_three_modalities() -> None:
    torch.manual_seed(0)
    net = InterSideNetwork([[4], [4], [4]], bottleneck=2, dropout=0.0)
    _linearise(net)
    with torch.no_grad():
        net.gates.logits.copy_(torch.tensor([[0.5, -0.5, 1.0]]))
    weights = torch.softmax(torch.tensor([0.5, -0.5, 1.0]), dim=0)
    xs = [torch.randn(2, 4) for _ in range(3)]
    expected = sum(w * x for w, x in zip(weights, xs, strict=True))
    torch.testing.assert_close(net([[x] for x in xs]), expected)
    assert torch.allclose(net.gates.values().sum(-1), torch.ones(1))


def test_without_gates_mixes_evenly() -> None:
    net = IntraSideNetwork([4, 4], bottleneck=2, dropout=0.0, gated=False)
    _linearise(net)
    assert not list(p for n, p in net.named_parameters() if "gates" in n)
    h0, h1 = torch.randn(2, 4), torch.randn(2, 4)
    torch.testing.assert_close(net([h0, h1]), 0.5 * h0 + 0.5 * h1)


def test_cnn_like_widths_get_their_own_projection() -> None:
    net = IntraSideNetwork([3, 5, 8], bottleneck=2)
    assert sorted(net.inputs.dtl) == ["3", "5"]  # the last width (8) is the tower's
    out = net([torch.randn(2, 3), torch.randn(2, 5), torch.randn(2, 8)])
    assert out.shape == (2, 8)


def test_evenly_spaced_blocks_generalise_layer_drop() -> None:
    from recadapt.nn.side_networks import evenly_spaced_blocks

    assert evenly_spaced_blocks(12, 6) == every_second_block(12) == [2, 4, 6, 8, 10, 12]
    assert evenly_spaced_blocks(6, 3) == [2, 4, 6]
    assert evenly_spaced_blocks(8, 2) == [4, 8]
    assert evenly_spaced_blocks(8, 3) == [3, 5, 8]
    assert evenly_spaced_blocks(4, 4) == [1, 2, 3, 4]
    with pytest.raises(ValueError):
        evenly_spaced_blocks(4, 5)


def _cross(cross: bool = True, gated: bool = True):
    from recadapt.nn.side_networks import CrossModalSideNetworks

    torch.manual_seed(0)
    net = CrossModalSideNetworks([[4, 4, 4], [6, 6, 6], [4, 4, 4]], width=4, bottleneck=2,
                                 dropout=0.0, gated=gated, cross=cross)
    _linearise(net)
    return net


def test_crossan_eq5_weights_sum_to_one_and_mix_all_towers() -> None:
    net = _cross()
    with torch.no_grad():
        for t, gates in enumerate(net.gates):
            gates.logits.copy_(torch.randn(2, 4) + t)
    table = net.gate_table()
    assert table.shape == (3, 2, 4)
    torch.testing.assert_close(table.sum(-1), torch.ones(3, 2))
    states = [[torch.randn(2, d) for _ in range(3)] for d in (4, 6, 4)]
    dtl = net.inputs[1].dtl["6"]
    xs = [states[0], [dtl(s) for s in states[1]], states[2]]
    hidden = [x[0] for x in xs]  # linearised: each first adapter is the identity
    for i in (1, 2):
        hidden = [table[t, i - 1, 0] * xs[t][i]
                  + sum(table[t, i - 1, 1 + m] * hidden[m] for m in range(3))
                  for t in range(3)]
    for got, want in zip(net(states), hidden, strict=True):
        torch.testing.assert_close(got, want)


def test_independent_towers_see_only_their_own_modality() -> None:
    net = _cross(cross=False)
    assert net.gate_table()[0, :, 2].abs().sum() == 0  # no weight on tower 1's outputs
    states = [[torch.randn(2, d) for _ in range(3)] for d in (4, 6, 4)]
    changed = [list(states[0]), [s + 1.0 for s in states[1]], list(states[2])]
    before, after = net(states), net(changed)
    torch.testing.assert_close(before[0], after[0])
    torch.testing.assert_close(before[2], after[2])
    assert not torch.allclose(before[1], after[1])
    crossing = _cross(cross=True)
    assert not torch.allclose(crossing(states)[0], crossing(changed)[0])
