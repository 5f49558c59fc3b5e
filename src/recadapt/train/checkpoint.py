"""Checkpoints as single safetensors files, written atomically.

A training checkpoint holds model weights, optimizer and scheduler state, RNG state and the
loop's own counters. Tensors go in as tensors; everything else (param groups, scalars, counters)
goes as JSON in the safetensors metadata, so one file is one atomic unit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from recadapt.errors import RecAdaptError
from recadapt.io import atomic_write

_TENSOR = "__tensor__"
_ITEMS = "__items__"  # a dict whose keys are not all strings (e.g. optimizer state by param id)


def _own_storage(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, and no two tensors sharing memory: safetensors refuses shared storage,
    which tied weights (an LLM's ``lm_head`` and token embeddings) have; a strict load then
    fills both names from their own copies."""
    out: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for key, value in tensors.items():
        tensor = value.detach().cpu().contiguous()
        if tensor.numel() and tensor.untyped_storage().data_ptr() in storages:
            tensor = tensor.clone()
        storages.add(tensor.untyped_storage().data_ptr())
        out[key] = tensor
    return out


def _split(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace tensors in a nested structure by references, collecting them in ``tensors``."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous()
        return {_TENSOR: prefix}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _split(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
        return {_ITEMS: [[k, _split(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    return obj


def _join(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            return tensors[obj[_TENSOR]]
        if set(obj) == {_ITEMS}:
            return {k: _join(v, tensors) for k, v in obj[_ITEMS]}
        return {k: _join(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    return obj


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor]) -> None:
    tensors = _own_storage(state_dict)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise RecAdaptError(f"cannot read weights {path}: {err}") from None


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``state``: any nesting of dicts/lists/scalars/tensors (e.g. optimizer.state_dict())."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split(state, "s", tensors)
    tensors = _own_storage(tensors)
    metadata = {"recadapt_checkpoint": json.dumps(skeleton)}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as err:
        raise RecAdaptError(
            f"cannot read checkpoint {path}: {err}; delete it to start over"
        ) from None
    if "recadapt_checkpoint" not in metadata:
        raise RecAdaptError(f"{path} is not a recadapt training checkpoint")
    return _join(json.loads(metadata["recadapt_checkpoint"]), tensors)
