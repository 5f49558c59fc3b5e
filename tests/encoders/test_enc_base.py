"""FrozenEncoder.encode: batching in the encoder's preferred order, results in the caller's;
the default forward, pooling, widths and backbone that the HF encoders share."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from recadapt.encoders.base import EncoderInfo, FrozenEncoder


class Echo(FrozenEncoder):
    """States are the contents themselves (layer 0) and twice them (layer 1)."""

    def __init__(self, order: str | None) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.order = order
        self.batches: list[list[float]] = []
        self.info = EncoderInfo("test", "0", "text", 1, (1, 1), "mean")

    def batch_order(self, contents: Sequence[float]) -> list[int] | None:
        if self.order is None:
            return None
        return sorted(range(len(contents)), key=lambda i: -contents[i])

    def prepare(self, contents: Sequence[float]) -> dict[str, torch.Tensor]:
        self.batches.append(list(contents))
        return {"x": torch.tensor(contents, dtype=torch.float32).unsqueeze(1)}

    def hidden_states(self, inputs, layers=None):
        x = inputs["x"] * self.scale
        both = [x, 2 * x]
        return [both[i] for i in (layers if layers is not None else [0, 1])]


def test_encode_restores_the_caller_order() -> None:
    contents = [3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0]
    enc = Echo(order="desc")
    states = enc.encode(contents, batch_size=3)
    assert enc.batches == [[9.0, 5.0, 4.0], [3.0, 2.0, 1.5], [1.0]]  # sorted batches
    assert states[0][:, 0].tolist() == contents
    assert states[1][:, 0].tolist() == [2 * c for c in contents]
    only = enc.encode(contents, layers=[1], batch_size=2)
    assert only[0][:, 0].tolist() == [2 * c for c in contents]


def test_encode_without_order_and_empty() -> None:
    enc = Echo(order=None)
    contents = [3.0, 1.0, 4.0]
    states = enc.encode(contents, batch_size=2)
    assert enc.batches == [[3.0, 1.0], [4.0]]
    assert states[0][:, 0].tolist() == contents
    empty = enc.encode([], batch_size=2)
    assert [tuple(s.shape) for s in empty] == [(0, 1), (0, 1)]


class _Blocks(nn.Module):
    """Two linear blocks returning HF-style ``hidden_states`` (the input, then each block)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(2, 3), nn.Linear(3, 3)])

    def forward(self, x, *, output_hidden_states, return_dict):
        states = [x]
        for block in self.blocks:
            states.append(block(states[-1]))
        return SimpleNamespace(hidden_states=tuple(states))


class Stacked(FrozenEncoder):
    """Only ``prepare`` and ``forward_inputs``: the rest is the base class's."""

    forward_inputs = ("x",)

    def __init__(self) -> None:
        super().__init__()
        self.model = _Blocks()
        self.info = EncoderInfo("test", "0", "text", 2, (2, 3, 3), "mean")
        self.freeze()

    def prepare(self, contents):
        x = torch.tensor(contents, dtype=torch.float32)  # [N, T, 2]
        return {"x": x, "unused": torch.zeros(len(contents))}  # not passed to the model


def test_default_forward_pools_the_mean_of_each_requested_layer() -> None:
    enc = Stacked()
    contents = [[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [1.0, 0.0]]]
    inputs = enc.prepare(contents)
    x = inputs["x"]
    first = enc.model.blocks[0](x)
    expected = [x.mean(1), first.mean(1), enc.model.blocks[1](first).mean(1)]
    got = enc.hidden_states(inputs)
    assert all(torch.allclose(g, e) for g, e in zip(got, expected, strict=True))
    assert torch.allclose(enc.hidden_states(inputs, [2, 0])[0], expected[2])
    assert enc.probe_dims(contents[0]) == [2, 3, 3]
    assert enc.backbone() is enc.model
    assert torch.allclose(enc.encode(contents, layers=[1])[0], expected[1])


def test_backbone_needs_a_model() -> None:
    with pytest.raises(NotImplementedError):
        Echo(order=None).backbone()
