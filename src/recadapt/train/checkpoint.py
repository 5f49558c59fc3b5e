"""Checkpoints as single safetensors files, written atomically.

A training checkpoint holds model weights, optimizer and scheduler state, RNG state and the
loop's own counters. Tensors go in as tensors; everything else (param groups, scalars, counters)
goes as JSON in the safetensors metadata, so one file is one atomic unit.

Model weights (:func:`save_model_weights`, :func:`trainable_state`) hold the trainable
parameters and every buffer, not the frozen parameters: those are rebuilt from their source
(a packaged model, an HF id, a prerequisite run) when the model is built from its config, as
peft saves adapters only. A LoRA run over a 7B LLM thus checkpoints megabytes, not 14 GB. To
keep that safe, the file records a fingerprint of every frozen tensor (float64 sum and norm and
a few sampled values), and :func:`load_model_weights` refuses a model whose frozen weights
differ: another model, revision or prerequisite run.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open, save_file

from recadapt.errors import RecAdaptError
from recadapt.io import atomic_write

_TENSOR = "__tensor__"
_ITEMS = "__items__"  # a dict whose keys are not all strings (e.g. optimizer state by param id)
FROZEN = "recadapt_frozen"  # metadata key: fingerprints of the frozen parameters left out
_SAMPLES = 8  # sampled values per frozen tensor in its fingerprint


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


CHECKSUM_KEY = "recadapt_sha256"


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes (safetensors itself checks
    only the header, so flipped bytes in the data would load as other weights)."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        tensor = tensors[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _write(path: str | Path, tensors: dict[str, torch.Tensor],
           metadata: dict[str, str] | None = None) -> None:
    tensors = _own_storage(tensors)
    metadata = {**(metadata or {}), CHECKSUM_KEY: tensors_sha256(tensors)}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def _read(path: str | Path, what: str, hint: str = ""
          ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file; ``what`` and ``hint`` word the error."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RecAdaptError(f"cannot read {what} {path} (damaged or truncated: {reason})"
                            f"{hint}") from None
    recorded = metadata.get(CHECKSUM_KEY)
    if recorded is not None and recorded != tensors_sha256(tensors):
        raise RecAdaptError(f"{what} {path} does not match its checksum (bytes changed on disk)"
                            f"{hint}")
    return tensors, metadata


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor]) -> None:
    _write(path, state_dict)


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    return _read(path, "weights")[0]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``state``: any nesting of dicts/lists/scalars/tensors (e.g. optimizer.state_dict())."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _split(state, "s", tensors)
    _write(path, tensors, {"recadapt_checkpoint": json.dumps(skeleton)})


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    tensors, metadata = _read(path, "checkpoint", "; delete it to start over")
    if "recadapt_checkpoint" not in metadata:
        raise RecAdaptError(f"{path} is not a recadapt training checkpoint")
    return _join(json.loads(metadata["recadapt_checkpoint"]), tensors)


# -- model weights without the frozen parameters ------------------------------------------------
def _fingerprint(tensor: torch.Tensor) -> list[float]:
    """Cheap on any device (no copy to the CPU of a whole tensor) and position-sensitive
    enough to tell two checkpoints or revisions of a model apart."""
    flat = tensor.detach().reshape(-1)
    if flat.numel() == 0:
        return [0.0, 0.0]
    count = min(_SAMPLES, flat.numel())  # evenly spaced, first and last included
    picks = flat[torch.arange(count, device=flat.device) * (flat.numel() - 1) // max(1, count - 1)]
    return [float(flat.sum(dtype=torch.float64)),
            float(torch.linalg.vector_norm(flat, dtype=torch.float64)),
            *picks.double().tolist()]


def frozen_fingerprints(model: torch.nn.Module) -> dict[str, list[float]]:
    """By state-dict name, the parameters that do not train (every name of a tied one)."""
    return {name: _fingerprint(param)
            for name, param in model.named_parameters(remove_duplicate=False)
            if not param.requires_grad}


def trainable_state(model: torch.nn.Module, state_dict: dict[str, torch.Tensor] | None = None,
                    ) -> tuple[dict[str, torch.Tensor], dict[str, list[float]]]:
    """``(state, fingerprints)``: the state dict (``state_dict``, e.g. gathered by accelerate,
    else the model's) without its frozen parameters, and their fingerprints."""
    state = model.state_dict() if state_dict is None else state_dict
    fingerprints = frozen_fingerprints(model)
    return {k: v for k, v in state.items() if k not in fingerprints}, fingerprints


def save_model_weights(path: str | Path, model: torch.nn.Module,
                       state_dict: dict[str, torch.Tensor] | None = None) -> None:
    state, fingerprints = trainable_state(model, state_dict)
    _write(path, state, {FROZEN: json.dumps(fingerprints)})


def _same(saved: list[float], now: list[float]) -> bool:
    return len(saved) == len(now) and all(
        math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6) for a, b in zip(saved, now, strict=True))


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor],
                         fingerprints: dict[str, list[float]] | None, source: str) -> None:
    """Load ``state`` into ``model``: strictly when it is complete (``fingerprints`` None: a
    file of an older version), else checking that the model's frozen parameters are those the
    state was trained over. ``source`` names the file in errors."""
    if fingerprints is None:
        model.load_state_dict(state)
        return
    now = frozen_fingerprints(model)
    if set(now) != set(fingerprints):
        differ = sorted(set(now) ^ set(fingerprints))
        raise RecAdaptError(
            f"{source}: the model's frozen parameters are not those it was trained with "
            f"({len(differ)} differ, e.g. {differ[0]}): build it from the run's own config.yaml")
    changed = [name for name, values in fingerprints.items() if not _same(values, now[name])]
    if changed:
        raise RecAdaptError(
            f"{source}: the frozen weights differ from those the run trained over ({len(changed)} "
            f"tensors, e.g. {changed[0]}): the model source (revision, local copy or "
            "prerequisite run) changed since; restore it or retrain")
    result = model.load_state_dict(state, strict=False)
    missing = sorted(set(result.missing_keys) - set(fingerprints))
    if missing or result.unexpected_keys:
        raise RecAdaptError(
            f"{source}: does not fit the model (missing {missing[:3]}, unexpected "
            f"{list(result.unexpected_keys)[:3]}): build it from the run's own config.yaml")


def read_model_weights(path: str | Path
                       ) -> tuple[dict[str, torch.Tensor], dict[str, list[float]] | None]:
    """``(state, fingerprints)`` of a weights file; fingerprints None for a complete state dict
    (:func:`save_weights`, or a run of an older version)."""
    state, metadata = _read(path, "weights")
    return state, json.loads(metadata[FROZEN]) if FROZEN in metadata else None


def load_model_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load weights written by :func:`save_model_weights` (or a complete state dict written by
    :func:`save_weights`) into a model built from the same config."""
    load_trainable_state(model, *read_model_weights(path), str(path))
