from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from recadapt.errors import RecAdaptError
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


def _cyclic_raw(source, **train) -> dict:
    return {"data": {"source": str(source), "max_seq_len": 10},
            "model": {"name": "sasrec", "hidden_size": 32},
            "train": {"batch_size": 8, "lr": 0.01, "num_threads": 1, **train},
            "eval": {"ks": [5, 10]}}


def test_measure_steps_times_real_training_steps(cyclic_csv):
    """The steps train (the loss falls with more of them), the counts are the loop's, and the
    epoch figure is the measured step time times the loader's batches."""
    from recadapt.config import validate_config
    from recadapt.data.batching import train_windows
    from recadapt.models.registry import build_model
    from recadapt.train.efficiency import measure_steps
    from recadapt.train.runs import prepare_data

    raw = _cyclic_raw(cyclic_csv)
    few, many = measure_steps(raw, steps=1, warmup=0), measure_steps(raw, steps=12, warmup=3)
    assert few["measured_steps"] == 1 and many["measured_steps"] == 12
    assert many["final_loss"] < few["final_loss"] - 0.2
    config = validate_config(raw)
    prepared = prepare_data(config)
    windows = train_windows(prepared.split.train, config.data.max_seq_len)
    assert many["steps_per_epoch"] == -(-len(windows) // 8)
    assert many["seconds_per_step"] > 0
    assert many["seconds_per_epoch"] == pytest.approx(many["seconds_per_step"]
                                                      * many["steps_per_epoch"])
    model = build_model(config, prepared.dataset)
    assert (many["trainable_params"], many["total_params"]) == parameter_counts(model)
    assert many["peak_memory_mb"] >= many["baseline_memory_mb"] > 0
    assert many["net_peak_memory_mb"] == pytest.approx(many["peak_memory_mb"]
                                                       - many["baseline_memory_mb"])
    assert many["cache_bytes"] == 0  # SASRec reads no state cache


def test_measure_steps_in_worker_runs_in_its_own_process(cyclic_csv):
    from recadapt.train.efficiency import measure_steps_in_worker

    result = measure_steps_in_worker(_cyclic_raw(cyclic_csv), steps=2, warmup=1)
    assert result["measured_steps"] == 2 and result["trainable_params"] > 0
    with pytest.raises(RecAdaptError, match="step-timing worker failed"):
        measure_steps_in_worker(_cyclic_raw(cyclic_csv, batch_size=0), steps=1, warmup=0)
