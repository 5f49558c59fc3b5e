from __future__ import annotations

import time

import torch
from torch import nn

from recadapt.train.efficiency import PeakMemory, _current_rss_mb, parameter_counts


def test_parameter_counts_split_frozen_from_trainable():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    assert parameter_counts(model) == (4 * 2 + 2, 3 * 4 + 4 + 4 * 2 + 2)


def test_peak_memory_sees_a_temporary_allocation():
    """The sampler must see the footprint while a temporary block lives, even after the block
    is gone. (Compared with the RSS measured *during* the block, not with the RSS before it:
    late in a long test session the allocator may reuse pages it kept, so RSS need not grow.)"""
    with PeakMemory(torch.device("cpu"), interval=0.005) as memory:
        block = torch.ones(64, 2**20)  # 256 MiB, touched
        block += 1
        during = _current_rss_mb()
        time.sleep(0.05)
        del block
        after = _current_rss_mb()
    assert during is not None and after is not None
    assert memory.peak_mb >= during - 1
    assert memory.peak_mb >= after
