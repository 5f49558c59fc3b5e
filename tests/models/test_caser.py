"""Caser (Tang & Wang 2018): the encoder, the next-item model ``caser`` and ``caser-ctr``."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from test_ctr_models import ctr_config  # the planted CTR pattern of the other CTR tests

from recadapt.models.ctr import CaserCTR, CaserCTRConfig
from recadapt.models.idrec import Caser, CaserConfig
from recadapt.models.registry import get_model
from recadapt.nn.sequence import CaserEncoder
from recadapt.train.loop import train_run

NUM_ITEMS = 12


def _batch() -> dict[str, torch.Tensor]:
    """Three left-padded training windows with next-item targets (0 = no loss)."""
    history = torch.tensor([[0, 1, 2, 3, 4, 5, 6], [4, 5, 6, 7, 8, 9, 10], [0, 0, 0, 0, 0, 8, 9]])
    target = torch.tensor([[0, 2, 3, 4, 5, 6, 7], [5, 6, 7, 8, 9, 10, 11],
                           [0, 0, 0, 0, 0, 9, 10]])
    return {"history": history, "target": target, "user": torch.tensor([0, 3, 4])}


# -- the encoder ------------------------------------------------------------------------------
def test_encoder_shapes_and_padding_rows_are_zero():
    torch.manual_seed(0)
    encoder = CaserEncoder(hidden_size=8, window=3, n_v=2, n_h=4).eval()
    assert [conv.kernel_size for conv in encoder.horizontal] == [(1, 8), (2, 8), (3, 8)]
    assert encoder.vertical.kernel_size == (3, 1)
    assert encoder.fc.in_features == 2 * 8 + 4 * 3
    valid = torch.tensor([[True] * 6, [False] * 4 + [True] * 2])
    out = encoder(torch.randn(2, 6, 8), valid)
    assert out.shape == (2, 6, 8)
    assert torch.all(out[1, :4] == 0)


def _bigram_encoder() -> CaserEncoder:
    """L = 3, one horizontal filter per height; only the height-2 filter is set: it fires (1)
    on item A = [1, 0] immediately followed by B = [0, 1] and is 0 on any other pair; the FC
    layer copies its max-pooled value into output dimension 0."""
    encoder = CaserEncoder(hidden_size=2, window=3, n_v=0, n_h=1, dropout=0.0).eval()
    with torch.no_grad():
        for parameter in encoder.parameters():
            parameter.zero_()
        encoder.horizontal[1].weight[0, 0] = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        encoder.horizontal[1].bias.fill_(-1.0)
        encoder.fc.weight[0, 1] = 1.0  # features: [h=1, h=2, h=3] × n_h = 1
    return encoder


@pytest.mark.parametrize(("sequence", "fires"), [
    ("CAB", True),    # A then B, the last two rows
    ("ABC", True),    # A then B at another offset of the window (max-pooled over time)
    ("ACB", False),   # A and B in the window but not consecutive
    ("BA", False),    # wrong order
    ("ABCC", False),  # A has left the window of the last L = 3 items
    ("AB", True),     # a short sequence: the zero rows before it do not matter
])
def test_horizontal_filter_of_height_two_sees_two_consecutive_items(sequence, fires):
    vectors = {"A": [1.0, 0.0], "B": [0.0, 1.0], "C": [-1.0, -1.0]}
    items = torch.tensor([[vectors[c] for c in sequence]])
    out = _bigram_encoder()(items, torch.ones(1, len(sequence), dtype=torch.bool))
    assert out[0, -1, 0].item() == pytest.approx(1.0 if fires else 0.0)


@pytest.mark.parametrize("activation", ["relu", "identity", "tanh", "sigmoid"])
def test_fc_activation_is_applied_after_the_fully_connected_layer(activation):
    torch.manual_seed(0)
    encoder = CaserEncoder(hidden_size=4, window=2, dropout=0.0, fc_activation=activation)
    items, valid = torch.randn(1, 3, 4), torch.ones(1, 3, dtype=torch.bool)
    captured = []
    encoder.fc.register_forward_hook(lambda module, inputs, output: captured.append(output))
    out = encoder(items, valid)
    fc = captured[0].view(1, 3, 4)
    expected = {"relu": torch.relu, "identity": lambda x: x, "tanh": torch.tanh,
                "sigmoid": torch.sigmoid}[activation](fc)
    assert torch.allclose(out, expected)


def test_each_position_reads_exactly_the_last_window_items():
    torch.manual_seed(0)
    window, length = 4, 10
    encoder = CaserEncoder(hidden_size=8, window=window).eval()
    items = torch.randn(1, length, 8)
    valid = torch.ones(1, length, dtype=torch.bool)
    changed = items.clone()
    changed[0, 3] = torch.randn(8)  # item 3 is in the windows of positions 3 .. 3 + L - 1
    difference = (encoder(items, valid) - encoder(changed, valid)).abs().sum(-1)[0]
    assert torch.all(difference[:3] == 0)  # causal
    assert torch.all(difference[3:3 + window] > 0)  # inside the window: the output changes
    assert torch.all(difference[3 + window:] == 0)  # outside the last L items: unchanged


def test_left_padding_equals_the_unpadded_row_whatever_the_padded_vectors():
    torch.manual_seed(0)
    encoder = CaserEncoder(hidden_size=8, window=5).eval()
    short = torch.randn(1, 3, 8)
    padded = torch.cat([torch.randn(1, 4, 8) * 100, short], dim=1)  # garbage at padding
    valid = torch.tensor([[False] * 4 + [True] * 3])
    out_padded = encoder(padded, valid)
    out_short = encoder(short, torch.ones(1, 3, dtype=torch.bool))
    assert torch.allclose(out_padded[:, 4:], out_short, atol=1e-6)
    assert torch.all(out_padded[:, :4] == 0)


# -- caser (next item) ------------------------------------------------------------------------
def test_caser_defaults_follow_the_paper():
    entry = get_model("caser")
    config = entry.config_class()
    assert entry.model_class is Caser
    assert (config.window, config.n_v, config.n_h, config.dropout, config.fc_activation,
            config.loss) == (5, 4, 16, 0.5, "relu", "ce")
    assert entry.model_class(config, NUM_ITEMS, 10).encoder.fc.in_features == 4 * 64 + 16 * 5
    ctr = get_model("caser-ctr")
    assert ctr.model_class is CaserCTR
    ctr_config_ = ctr.config_class()
    assert (ctr_config_.window, ctr_config_.n_v, ctr_config_.n_h, ctr_config_.dropout) == (
        5, 4, 16, 0.5)
    assert ctr_config_.fc_activation == "identity"  # the scoring MLP follows (ctr.py)


@pytest.mark.parametrize("config_class", [CaserConfig, CaserCTRConfig])
@pytest.mark.parametrize("bad", [{"n_v": 0, "n_h": 0}, {"window": 0}, {"n_h": -1},
                                 {"dropout": 1.0}, {"fc_activation": "gelu"},
                                 {"user_embedding": True}])
def test_caser_configs_refuse_bad_values(config_class, bad):
    with pytest.raises(ValidationError):
        config_class(**bad)


@pytest.mark.parametrize("loss", ["ce", "bce", "debiased_ce"])
def test_caser_gradients_reach_the_item_table_and_convolutions(loss):
    torch.manual_seed(0)
    model = Caser(CaserConfig(hidden_size=8, window=3, loss=loss), NUM_ITEMS, 7)
    model.fit_statistics(torch.arange(NUM_ITEMS + 1).float())
    model.loss(_batch()).backward()
    grad = model.items.weight.grad
    assert grad is not None and grad[1:].abs().sum() > 0
    assert torch.all(grad[0] == 0)  # padding row stays zero
    assert model.encoder.vertical.weight.grad.abs().sum() > 0
    assert all(conv.weight.grad.abs().sum() > 0 for conv in model.encoder.horizontal)


def test_caser_scores_shapes_and_user_vector_from_the_last_window():
    torch.manual_seed(0)
    model = Caser(CaserConfig(hidden_size=8, window=3), NUM_ITEMS, 7).eval()
    batch = _batch()
    with torch.no_grad():
        users = model.user_embeddings(batch)
        assert users.shape == (3, 8)
        assert torch.allclose(users, model.encode(batch["history"])[:, -1], atol=1e-6)
        assert model.score(batch).shape == (3, NUM_ITEMS + 1)
        assert model.item_embeddings().shape == (NUM_ITEMS + 1, 8)


def test_caser_beats_popularity(make_config, tmp_path):
    # cyclic data (tests/conftest.py): the next item follows the last one
    popularity = train_run(make_config(model={"name": "popularity"}), tmp_path / "pop",
                           progress=False)
    result = train_run(make_config(model={"name": "caser", "hidden_size": 32},
                                   train={"epochs": 10}), tmp_path / "run", progress=False)
    pop_hr, hr = popularity.metrics["test"]["HR@10"], result.metrics["test"]["HR@10"]
    assert pop_hr < 0.6
    assert hr > 0.9 and hr > pop_hr + 0.3


# -- caser-ctr --------------------------------------------------------------------------------
def test_caser_ctr_user_vector_reads_the_last_window():
    from types import SimpleNamespace

    torch.manual_seed(0)
    model = CaserCTR(CaserCTRConfig(hidden_size=8, window=3),
                     SimpleNamespace(num_items=NUM_ITEMS), None).eval()
    batch = {"history": _batch()["history"], "item": torch.tensor([1, 2, 3]),
             "history_label": torch.tensor([[0.0, 1, 0, 1, 1, 0, 1]] * 3)}
    with torch.no_grad():
        representation = model.user_representation(batch)
        assert representation.shape == (3, 8)
        valid = batch["history"] > 0
        vectors = (model.items(batch["history"])
                   + model.feedback((batch["history_label"] >= 0.5).long())) * valid[..., None]
        assert torch.allclose(representation, model.encoder(vectors, valid)[:, -1], atol=1e-6)
        assert model.ctr_logits(batch).shape == (3,)


def test_caser_ctr_learns_a_planted_pattern(tmp_path):
    # each user likes one parity of item ids; a constant predictor has AUC 0.5
    result = train_run(ctr_config(tmp_path, name="caser-ctr"), tmp_path / "run", progress=False)
    assert result.metrics["protocol"] == "ctr"
    assert result.metrics["test"]["AUC"] > 0.8
