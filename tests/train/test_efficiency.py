from __future__ import annotations

import torch
from torch import nn

from recadapt.train.efficiency import PeakMemory, _current_rss_mb, parameter_counts


def test_parameter_counts_split_frozen_from_trainable():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    assert parameter_counts(model) == (4 * 2 + 2, 3 * 4 + 4 + 4 * 2 + 2)


def test_peak_memory_sees_a_temporary_allocation():
    baseline = _current_rss_mb()
    with PeakMemory(torch.device("cpu"), interval=0.005) as memory:
        block = torch.ones(64, 2**20)  # 256 MiB, touched
        block += 1
        del block
    assert baseline is not None
    assert memory.peak_mb > baseline + 200
