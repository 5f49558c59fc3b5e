"""Micro-batching of concurrent queries: one scoring thread, one forward and one search per batch.

Request handlers (on the event loop) :meth:`MicroBatcher.submit` a query and await its future;
one worker thread takes the first queued query, gathers more for at most ``window_ms`` after it
was queued — but only while other requests are known to be on their way (``pending``: parsed
by the HTTP layer, not yet queued), so a lone request never waits for company — and runs
``compute`` once for the batch. A batch is at most ``max_batch`` queries; ``window_ms`` 0 runs
every query alone. Under load, batches also form without any wait: queries queue up while the
worker computes the previous batch. Answers do not depend on the batching (rows of a batch are
independent), which the tests check.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

#: queries per batch at most (a forward over more histories stops paying for itself on CPU)
MAX_BATCH = 64


class MicroBatcher:
    """``compute(queries) -> answers`` (one per query, or an exception for each) on one thread."""

    def __init__(self, compute: Callable[[Sequence[Any]], Sequence[Any]],
                 window_ms: float = 1.0, max_batch: int = MAX_BATCH) -> None:
        self.compute = compute
        self.window = max(0.0, window_ms) / 1000
        self.max_batch = max_batch if window_ms > 0 else 1
        self.pending = 0  # requests between the HTTP layer and submit (event-loop thread only)
        self.batches = 0
        self.queries = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="recadapt-batcher",
                                                daemon=True)
                self._thread.start()

    async def submit(self, query: Any) -> Any:
        """The answer to ``query``, computed in some batch."""
        if self._thread is None:
            self._start()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((query, future, loop, time.perf_counter()))
        return await future

    def _gather(self) -> list[tuple]:
        batch = [self._queue.get()]
        deadline = batch[0][3] + self.window
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.perf_counter()
            if self.pending <= 0 or remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while True:
            batch = self._gather()
            try:
                answers: Sequence[Any] = self.compute([query for query, *_ in batch])
            except Exception as err:  # one failure fails the batch's callers, not the thread
                answers = [err] * len(batch)
            self.batches += 1
            self.queries += len(batch)
            for (_, future, loop, _), answer in zip(batch, answers, strict=True):
                loop.call_soon_threadsafe(_resolve, future, answer)


def _resolve(future: asyncio.Future, answer: Any) -> None:
    if future.done():  # the client went away
        return
    if isinstance(answer, BaseException):
        future.set_exception(answer)
    else:
        future.set_result(answer)


class PendingCounter:
    """ASGI middleware: counts the requests to ``path`` that are being read and validated, so
    the batcher knows whether waiting for company is worth it; the handler calls
    :func:`queued` once its query is submitted (or the request ends, whichever is first)."""

    def __init__(self, app: Any, batcher: MicroBatcher, path: str = "/recommend") -> None:
        self.app, self.batcher, self.path = app, batcher, path

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        scope["recadapt.pending"] = self.batcher
        self.batcher.pending += 1
        try:
            await self.app(scope, receive, send)
        finally:
            queued(scope)


def queued(scope: dict) -> None:
    """The request of ``scope`` is no longer on its way to the batcher."""
    batcher = scope.pop("recadapt.pending", None)
    if batcher is not None:
        batcher.pending -= 1
