"""A tiny deterministic stand-in for a frozen encoder, shared by the cache tests."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch

from recadapt.encoders.base import EncoderInfo, FrozenEncoder, check_layers


class FakeEncoder(FrozenEncoder):
    """States seeded by a hash of each content, so equal contents give equal states in any
    batch; counts forward calls and items, and can fail after ``fail_after`` calls to play an
    interrupted build."""

    def __init__(self, revision: str = "r1", dims: tuple[int, ...] = (4, 4, 6),
                 fail_after: int | None = None, scale: float = 1.0,
                 source: str = "fake:hash") -> None:
        super().__init__()
        self.info = EncoderInfo(source=source, revision=revision, modality="text",
                                num_layers=len(dims) - 1, layer_dims=dims, pooling="mean",
                                settings={"max_length": 8})
        self.fail_after = fail_after
        self.scale = scale
        self.calls = 0
        self.encoded = 0

    def prepare(self, contents: Sequence[Any]) -> dict[str, torch.Tensor]:
        seeds = [int.from_bytes(hashlib.sha256(str(c).encode()).digest()[:4], "little")
                 for c in contents]
        return {"seeds": torch.tensor(seeds, dtype=torch.int64)}

    def hidden_states(self, inputs: dict[str, torch.Tensor],
                      layers: Sequence[int] | None = None) -> list[torch.Tensor]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("simulated crash")
        layers = check_layers(layers, self.info.num_layers)
        seeds = inputs["seeds"].tolist()
        self.encoded += len(seeds)
        out = []
        for layer in layers:
            dim = self.info.layer_dims[layer]
            rows = [np.random.default_rng([seed, layer]).standard_normal(dim) * self.scale
                    for seed in seeds]
            out.append(torch.tensor(np.array(rows).reshape(len(seeds), dim),
                                    dtype=torch.float32))
        return out


@pytest.fixture
def fake_encoder() -> type[FakeEncoder]:
    return FakeEncoder


@pytest.fixture
def texts() -> list[str]:
    return [f"item {i}: a short text" for i in range(23)]
