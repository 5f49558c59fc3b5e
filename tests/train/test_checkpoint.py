"""Checkpoint files: tied weights (an LLM's head and embeddings) save and load strictly."""

from __future__ import annotations

import torch

from recadapt.train.checkpoint import (
    load_checkpoint,
    load_weights,
    save_checkpoint,
    save_weights,
)


def _tied() -> torch.nn.Module:
    embedding = torch.nn.Embedding(5, 3)
    head = torch.nn.Linear(3, 5, bias=False)
    head.weight = embedding.weight
    return torch.nn.ModuleDict({"embedding": embedding, "head": head})


def test_tied_weights_round_trip(tmp_path):
    model = _tied()
    save_weights(tmp_path / "w.safetensors", model.state_dict())
    fresh = _tied()
    fresh.load_state_dict(load_weights(tmp_path / "w.safetensors"))  # strict
    assert torch.equal(fresh["head"].weight, model["head"].weight)
    assert fresh["head"].weight is fresh["embedding"].weight  # still tied
    save_checkpoint(tmp_path / "c.safetensors", {"model": model.state_dict(), "step": 3})
    state = load_checkpoint(tmp_path / "c.safetensors")
    assert state["step"] == 3 and torch.equal(state["model"]["head.weight"],
                                              model["embedding"].weight)
