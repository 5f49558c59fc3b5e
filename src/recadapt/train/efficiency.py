"""Efficiency figures every run reports (time per epoch, peak memory, parameter counts), and
the timing of single training steps that the efficiency benchmarks compare
(:func:`measure_steps`)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from recadapt.config import validate_config
from recadapt.data.batching import EpochPermutation, WindowDataset, collate_windows, train_windows
from recadapt.errors import RecAdaptError
from recadapt.train.runs import item_counts_tensor, prepare_data
from recadapt.train.stages import build_with_stages


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters; buffers are not parameters and are not counted. A model
    that holds a frozen backbone outside its module tree (kept out of checkpoints) reports it
    through ``frozen_parameter_count()`` so the total stays honest."""
    extra = getattr(model, "frozen_parameter_count", None)
    total = sum(p.numel() for p in model.parameters()) + (int(extra()) if extra else 0)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def cache_bytes(model: nn.Module) -> int | None:
    """Bytes on disk of the state caches the model reads (IISAN-Versa's storage cost of
    caching), or None for a model that reads none: the modules holding cached states say
    how large their cache folder is (``CachedStates.cache_bytes``)."""
    sizes = [size for module in model.modules()
             if isinstance(size := getattr(module, "cache_bytes", None), int)]
    return sum(sizes) if sizes else None


def _current_rss_mb() -> float | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakMemory:
    """Peak memory while the ``with`` block runs, in MiB.

    On CUDA: torch's peak allocated memory (reset on entry). On CPU: the peak resident set size
    of the process, sampled every ``interval`` seconds from /proc (so several runs in one
    process are measured separately); where /proc is missing, the process-lifetime peak
    (``ru_maxrss``). CPU figures include the interpreter, torch and the data, so compare runs
    measured the same way, side by side.
    """

    def __init__(self, device: torch.device, interval: float = 0.02) -> None:
        self.device, self.interval = device, interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif _current_rss_mb() is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while True:
            self.peak_mb = max(self.peak_mb, _current_rss_mb() or 0.0)
            if self._stop.wait(self.interval):
                return

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak_mb = max(self.peak_mb, torch.cuda.max_memory_allocated(self.device) / 2**20)
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak_mb = max(self.peak_mb, _current_rss_mb() or 0.0)
        else:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.peak_mb = rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def memory_kind(device: torch.device) -> str:
    """What :class:`PeakMemory` measures on ``device``: ``cuda_max_memory_allocated`` (torch's
    peak of allocated GPU memory) or ``process_peak_rss`` (the process's resident memory)."""
    return "cuda_max_memory_allocated" if device.type == "cuda" else "process_peak_rss"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_steps(raw: dict[str, Any], steps: int, warmup: int,
                  device: str | torch.device = "cpu") -> dict[str, Any]:
    """Build the model of the run config ``raw`` on ``device`` and time ``steps`` training
    steps (forward, backward, optimizer; after ``warmup`` untimed ones) on the loop's first
    batches, under ``train.mixed_precision`` (bf16/fp16 autocast; ``no``: float32). On CUDA
    every step is timed between two ``torch.cuda.synchronize`` calls.

    Returns seconds per step, steps per epoch and their product (an extrapolated epoch), the
    peak memory during the steps (:class:`PeakMemory`; ``memory_kind`` says which), the memory
    before the model was built and the difference, trainable and total parameters, the state
    caches' bytes on disk (0 for a model that reads none) and the last step's loss. Measure
    each config in a fresh process (:func:`measure_steps_in_worker`) when the memory figures
    are compared."""
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps must be >= 1 and warmup >= 0 (got {steps}, {warmup})")
    target = torch.device(device)
    config = validate_config(raw)
    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    prepared = prepare_data(config)
    windows = train_windows(prepared.split.train, config.data.max_seq_len)
    lengths = (windows.history > 0).sum(axis=1)
    sampler = EpochPermutation(len(windows), config.train.seed, lengths, config.train.batch_size)
    loader = torch.utils.data.DataLoader(WindowDataset(windows), config.train.batch_size,
                                         sampler=sampler, collate_fn=collate_windows)
    baseline_mb = (torch.cuda.memory_allocated(target) / 2**20 if target.type == "cuda"
                   else _current_rss_mb() or 0.0)
    torch.manual_seed(config.train.seed)
    model = build_with_stages(config, prepared.dataset)
    model.fit_statistics(item_counts_tensor(prepared.split))
    model.to(target)
    model.train()
    optimizer = torch.optim.Adam(model.parameter_groups(config.train.lr), lr=config.train.lr)
    precision = config.train.mixed_precision
    autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    batches = _endless(loader, sampler)
    seconds = []
    with PeakMemory(target) as memory:
        for step in range(warmup + steps):
            batch = {k: v.to(target) if isinstance(v, torch.Tensor) else v
                     for k, v in next(batches).items()}
            _synchronize(target)
            started = time.perf_counter()
            with torch.autocast(target.type, dtype=autocast or torch.float32,
                                enabled=autocast is not None):
                loss = model(batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            _synchronize(target)
            if step >= warmup:
                seconds.append(time.perf_counter() - started)
    trainable, total = parameter_counts(model)
    per_step = sum(seconds) / len(seconds)
    return {
        "seconds_per_step": per_step,
        "steps_per_epoch": len(loader),
        "seconds_per_epoch": per_step * len(loader),
        "measured_steps": len(seconds),
        "warmup_steps": warmup,
        "device": device_name(target),
        "precision": precision,
        "memory_kind": memory_kind(target),
        "peak_memory_mb": memory.peak_mb,
        "baseline_memory_mb": baseline_mb,
        "net_peak_memory_mb": memory.peak_mb - baseline_mb,
        "trainable_params": trainable,
        "total_params": total,
        "cache_bytes": cache_bytes(model) or 0,
        "final_loss": float(loss.item()),
    }


def device_name(device: torch.device) -> str:
    """``torch.cuda.get_device_name`` of a CUDA device, else ``"cpu"``."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _endless(loader: torch.utils.data.DataLoader, sampler: EpochPermutation
             ) -> Iterator[dict[str, torch.Tensor]]:
    """The loader's batches, epoch after epoch (each epoch shuffled as the loop's)."""
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def measure_steps_in_worker(raw: dict[str, Any], steps: int, warmup: int,
                            device: str = "cpu") -> dict[str, Any]:
    """:func:`measure_steps` in a fresh Python process, so its memory is its own."""
    proc = subprocess.run(
        [sys.executable, "-m", "recadapt.train.efficiency", "--config", json.dumps(raw),
         "--steps", str(steps), "--warmup", str(warmup), "--device", str(device)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise RecAdaptError(f"step-timing worker failed for model {raw.get('model')}: "
                            f"{proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":  # the worker of measure_steps_in_worker
    import argparse

    parser = argparse.ArgumentParser(description="time training steps of one run config")
    parser.add_argument("--config", required=True, help="the run config as JSON")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    cli = parser.parse_args()
    print(json.dumps(measure_steps(json.loads(cli.config), cli.steps, cli.warmup, cli.device)))
