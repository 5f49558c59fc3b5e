"""Several processes under ``accelerate launch``: the few helpers that training, evaluation and
cache building share (see ``docs/scaling.md``).

Everything here is accelerate's own machinery (``PartialState``, ``split_between_processes``,
``gather_object``, ``wait_for_everyone``); in one plain process every helper is a no-op, so the
single-process code path is unchanged.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import gather_object

T = TypeVar("T")


def launched() -> bool:
    """True when a launcher (``accelerate launch``, torchrun) started several processes; reads
    the environment only, so nothing is initialised in a plain process."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def use_cpu(cpu: bool = False) -> bool:
    """``cpu``, or a launch without a GPU: accelerate then needs ``cpu=True`` to join the
    processes over gloo (otherwise each would train alone on all the data)."""
    return cpu or (launched() and not torch.cuda.is_available())


def exit_launched_process(code: int | str | None = 0) -> None:
    """End a process of a multi-process launch as ``sys.exit(code)`` would (an int is the exit
    status, None is 0, anything else is printed to stderr and gives 1), skipping C++ teardown;
    return (doing nothing) in a plain process.

    Why: with torch 2.13 and gloo, a launched process aborts *after* Python has finalised
    ("terminate called without an active exception", SIGABRT, no Python frame), which makes the
    launcher report the whole finished launch as failed. It is torch's, not recadapt's: a
    20-step accelerate DDP script with no recadapt in it aborted in 5 of 40 launches, 6 of 40
    with an explicit ``destroy_process_group()``, and 0 of 40 when it ended with ``os._exit``
    (docs/scaling.md). So, once the work is done: Python's exit handlers run (``atexit``,
    ``weakref.finalize``), logs and standard streams are flushed, and ``os._exit`` skips only
    interpreter teardown and C++ static destructors. The ``recadapt`` command calls this after
    every command; a script of your own that trains under ``accelerate launch`` can end with
    it."""
    if not launched() or not PartialState._shared_state or PartialState().num_processes < 2:
        return
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code or 0)


def compute_device(choice: str = "auto") -> torch.device:
    """The device for ``choice`` (``auto`` | ``cpu`` | ``cuda``): ``auto`` is this process's
    GPU when there is one (under a launcher, the GPU of its ``LOCAL_RANK``), else the CPU;
    ``cuda`` without a GPU is refused in one line."""
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        from recadapt.errors import ConfigError

        raise ConfigError(f"device {choice!r}: torch sees no CUDA GPU here; use auto or cpu")
    try:
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        local = 0
    return torch.device("cuda", local % torch.cuda.device_count())


def process_state(cpu: bool = False) -> PartialState:
    """accelerate's process state (the process group under a launcher; one plain process
    otherwise)."""
    return PartialState(cpu=use_cpu(cpu))


def distributed_state() -> PartialState | None:
    """The process state when several processes run, else None (without initialising
    anything in a plain process)."""
    if not launched() and not PartialState._shared_state:
        return None
    state = PartialState(cpu=use_cpu()) if not PartialState._shared_state else PartialState()
    return state if state.num_processes > 1 else None


def is_main_process() -> bool:
    """Whether this process writes shared files and prints (always true in one process)."""
    state = distributed_state()
    return state is None or state.is_main_process


def shard_rows(count: int, state: Any | None) -> np.ndarray:
    """The contiguous slice of ``range(count)`` this process handles (accelerate's
    ``split_between_processes``, no padding: nothing is evaluated twice); all rows when
    ``state`` is None or a single process."""
    if state is None or state.num_processes == 1:
        return np.arange(count)
    with state.split_between_processes(list(range(count))) as rows:
        return np.asarray(rows, dtype=np.int64)


def gather_parts(part: T, state: Any | None) -> list[T]:
    """Every process's ``part`` in process order (``gather_object``): concatenated, the
    contiguous shards of :func:`shard_rows` give back the original order exactly."""
    if state is None or state.num_processes == 1:
        return [part]
    return list(gather_object([part]))


def sync_persistent_buffers(module: torch.nn.Module, state: Any | None) -> None:
    """Copy process 0's persistent buffers (batch-norm statistics, ...) to every process.

    DDP runs with ``broadcast_buffers=False`` so cached state tables (non-persistent buffers,
    possibly gigabytes) are not sent at every step; the few persistent buffers that training
    may change are synchronised here, before evaluation shards users across processes."""
    if state is None or state.num_processes == 1:
        return
    for owner in module.modules():
        skip = getattr(owner, "_non_persistent_buffers_set", set())
        for name, buffer in owner.named_buffers(recurse=False):
            if buffer is not None and name not in skip:
                torch.distributed.broadcast(buffer.data, src=0)


def max_over_processes(values: Sequence[float], state: Any | None) -> list[float]:
    """Element-wise maximum of ``values`` over processes (peak memory)."""
    parts = gather_parts([float(v) for v in values], state)
    return [max(column) for column in zip(*parts, strict=True)]
