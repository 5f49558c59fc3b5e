"""Efficiency figures every run reports: time per epoch, peak memory, parameter counts."""

from __future__ import annotations

import resource
import sys

import torch
from torch import nn


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters; buffers are not parameters and are not counted."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def peak_memory_mb(device: torch.device) -> float:
    """Peak accelerator memory allocated by torch on CUDA; on CPU the process's peak resident
    set size (it includes the Python interpreter and data, so compare runs measured alike)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10
