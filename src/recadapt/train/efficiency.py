"""Efficiency figures every run reports: time per epoch, peak memory, parameter counts."""

from __future__ import annotations

import os
import resource
import sys
import threading

import torch
from torch import nn


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
