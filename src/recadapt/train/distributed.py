"""Several processes under ``accelerate launch``: the few helpers that training, evaluation and
cache building share (see ``docs/scaling.md``).

Everything here is accelerate's own machinery (``PartialState``, ``split_between_processes``,
``gather_object``, ``wait_for_everyone``); in one plain process every helper is a no-op, so the
single-process code path is unchanged.
"""

from __future__ import annotations

import atexit
import functools
import os
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


@functools.cache
def _close_at_exit_once() -> None:
    """Have accelerate destroy the process group before the interpreter exits (registered once).

    Left to interpreter shutdown, gloo's worker threads are sometimes destroyed while still
    joinable and a process aborts ("terminate called without an active exception", SIGABRT)
    after all its work is done, failing the whole launch. Destroying the group is accelerate's
    and torch's documented clean exit, but it did not measurably cure the abort here (torch
    2.13, 2 CPU processes: 1 of 25 launches without the hook, 3 of 62 with it; see
    docs/scaling.md)."""
    atexit.register(PartialState().destroy_process_group)


def _close_at_exit(state: PartialState) -> PartialState:
    """``state``, with the exit hook registered when it joined several processes."""
    if state.num_processes > 1:
        _close_at_exit_once()
    return state


def process_state(cpu: bool = False) -> PartialState:
    """accelerate's process state (the process group under a launcher; one plain process
    otherwise)."""
    return _close_at_exit(PartialState(cpu=use_cpu(cpu)))


def distributed_state() -> PartialState | None:
    """The process state when several processes run, else None (without initialising
    anything in a plain process)."""
    if not launched() and not PartialState._shared_state:
        return None
    state = PartialState(cpu=use_cpu()) if not PartialState._shared_state else PartialState()
    return _close_at_exit(state) if state.num_processes > 1 else None


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
