from __future__ import annotations

import pytest
import torch

from recadapt.nn.sequence import GRU4RecEncoder, NextItNetEncoder, SASRecEncoder


@pytest.fixture(params=["sasrec", "gru4rec", "nextitnet"])
def encoder(request):
    torch.manual_seed(0)
    if request.param == "sasrec":
        return SASRecEncoder(hidden_size=8, num_layers=2, num_heads=2, dropout=0.0, max_len=6)
    if request.param == "nextitnet":
        return NextItNetEncoder(hidden_size=8, kernel_size=3, dilations=[1, 2], num_blocks=2)
    return GRU4RecEncoder(hidden_size=8, gru_size=12, dropout=0.0)


def test_output_shape(encoder):
    out = encoder(torch.randn(3, 6, 8), torch.ones(3, 6, dtype=torch.bool))
    assert out.shape == (3, 6, 8)


def test_outputs_are_causal(encoder):
    encoder.eval()
    x = torch.randn(1, 6, 8)
    valid = torch.ones(1, 6, dtype=torch.bool)
    changed = x.clone()
    changed[0, 4] += 3.0 * torch.randn(8)
    before, after = encoder(x, valid), encoder(changed, valid)
    assert torch.allclose(before[0, :4], after[0, :4], atol=1e-6)
    assert not torch.allclose(before[0, 4], after[0, 4])


def test_padding_content_is_ignored_and_zeroed(encoder):
    encoder.eval()
    x = torch.randn(1, 6, 8)
    valid = torch.tensor([[False, False, True, True, True, True]])
    noisy = x.clone()
    noisy[0, :2] = torch.randn(2, 8) * 100
    out = encoder(x, valid)
    assert torch.allclose(out, encoder(noisy, valid), atol=1e-5)
    assert torch.all(out[0, :2] == 0)
    assert not torch.isnan(out).any()


def test_gru_left_padded_rows_match_unpadded_run():
    torch.manual_seed(0)
    gru = GRU4RecEncoder(hidden_size=8, gru_size=12, dropout=0.0).eval()
    x = torch.randn(2, 5, 8)
    valid = torch.tensor([[False, False, True, True, True], [True] * 5])
    out = gru(x, valid)
    alone = gru(x[:1, 2:], torch.ones(1, 3, dtype=torch.bool))
    assert torch.allclose(out[0, 2:], alone[0], atol=1e-6)


def test_nextitnet_left_padded_rows_match_unpadded_run():
    # the receptive field (1 + 2 · (1 + 2 + 2 + 4) · 2 = 37) spans every padded column, so
    # padding that leaked through any convolution would change the real positions
    torch.manual_seed(0)
    net = NextItNetEncoder(hidden_size=8, dilations=[1, 2], num_blocks=2).eval()
    x = torch.randn(2, 7, 8)
    x[0, :3] = torch.randn(3, 8) * 100  # garbage in the padded slots
    valid = torch.tensor([[False, False, False, True, True, True, True], [True] * 7])
    out = net(x, valid)
    alone = net(x[:1, 3:], torch.ones(1, 4, dtype=torch.bool))
    assert torch.allclose(out[0, 3:], alone[0], atol=1e-5)
    assert torch.all(out[0, :3] == 0)


def test_nextitnet_gradients_reach_every_block():
    net = NextItNetEncoder(hidden_size=8, dilations=[1, 4], num_blocks=2)
    x = torch.randn(2, 5, 8, requires_grad=True)
    net(x, torch.ones(2, 5, dtype=torch.bool)).sum().backward()
    assert len(net.blocks) == 4
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_trimming_all_padding_columns_changes_nothing(encoder):
    from recadapt.data.batching import trim_left_padding

    encoder.eval()
    history = torch.tensor([[0, 0, 0, 4, 5, 6], [0, 0, 1, 2, 3, 4]])
    vectors = torch.randn(10, 8)
    trimmed = trim_left_padding({"history": history, "target": history})
    assert trimmed["history"].shape == (2, 4) and trimmed["target"].shape == (2, 4)
    full = encoder(vectors[history], history > 0)
    short = encoder(vectors[trimmed["history"]], trimmed["history"] > 0)
    assert torch.allclose(full[:, 2:], short, atol=1e-6)
