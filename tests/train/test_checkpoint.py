"""Checkpoint files: tied weights (an LLM's head and embeddings) save and load strictly; model
weights leave frozen parameters out and refuse a model whose frozen weights differ."""

from __future__ import annotations

import pytest
import torch

from recadapt.errors import RecAdaptError
from recadapt.train.checkpoint import (
    load_checkpoint,
    load_model_weights,
    load_weights,
    save_checkpoint,
    save_model_weights,
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


def _half_frozen(seed: int, frozen_seed: int = 0) -> torch.nn.Module:
    """A frozen tied embedding/head (as an LLM's) under a trainable layer, with a buffer."""
    torch.manual_seed(frozen_seed)
    model = _tied()
    for param in model.parameters():
        param.requires_grad_(False)
    torch.manual_seed(seed)
    model["adapter"] = torch.nn.Linear(3, 3)
    model["adapter"].register_buffer("steps", torch.tensor([seed]))
    return model


def test_model_weights_leave_frozen_parameters_out_and_check_them(tmp_path):
    model = _half_frozen(seed=1)
    path = tmp_path / "w.safetensors"
    save_model_weights(path, model)
    assert set(load_weights(path)) == {"adapter.weight", "adapter.bias", "adapter.steps"}
    fresh = _half_frozen(seed=2)
    load_model_weights(fresh, path)
    assert torch.equal(fresh["adapter"].weight, model["adapter"].weight)
    assert int(fresh["adapter"].steps) == 1  # buffers are saved, whether they train or not
    assert fresh["head"].weight is fresh["embedding"].weight
    with pytest.raises(RecAdaptError, match=r"frozen weights differ.*embedding\.weight"):
        load_model_weights(_half_frozen(seed=2, frozen_seed=3), path)
    unfrozen = _half_frozen(seed=2)
    unfrozen["embedding"].weight.requires_grad_(True)
    with pytest.raises(RecAdaptError, match="frozen parameters are not those"):
        load_model_weights(unfrozen, path)


def test_complete_weights_of_older_runs_still_load_strictly(tmp_path):
    model = _half_frozen(seed=1)
    save_weights(tmp_path / "w.safetensors", model.state_dict())  # no fingerprints: complete
    other = _half_frozen(seed=2, frozen_seed=3)
    load_model_weights(other, tmp_path / "w.safetensors")
    assert torch.equal(other["embedding"].weight, model["embedding"].weight)
    del other["adapter"]
    with pytest.raises(RuntimeError, match="Unexpected key"):
        load_model_weights(other, tmp_path / "w.safetensors")


def _damage(path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:  # one byte of the last tensor's data: the header still parses
        data[-2] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_a_damaged_weights_or_checkpoint_file_is_one_line(tmp_path, how):
    model = _tied()
    save_weights(tmp_path / "w.safetensors", model.state_dict())
    save_checkpoint(tmp_path / "c.safetensors", {"model": model.state_dict(), "step": 3})
    for name, load in (("w.safetensors", load_weights), ("c.safetensors", load_checkpoint)):
        _damage(tmp_path / name, how)
        with pytest.raises(RecAdaptError) as caught:
            load(tmp_path / name)
        message = str(caught.value)
        assert len(message.splitlines()) == 1 and name in message
        assert ("does not match its checksum" if how == "flip" else "damaged or truncated") \
            in message
