"""Dynamic batching: concurrent requests share one forward pass.

A :class:`Batcher` owns the model thread (one worker thread: user code and the model never run
concurrently, and torch's intra-op threads are the only parallelism inside a forward pass).
Requests ``await batcher.submit(item)``; a collector task takes the first waiting item, every
item already queued behind it, and waits up to ``max_wait_ms`` for more, until the batch holds
``max_batch_size`` instances; then it runs ``run_batch(items)`` on the model thread and hands each
caller its own result (``run_batch`` returns one result per item, in order).

The wait is only spent on requests the server has already started receiving (``arriving``:
requests whose body is being read or decoded). A lone request is never held back, so batching
costs nothing at concurrency 1; under load the queue fills while the previous batch runs, so
batches form without waiting at all.

With batching off (:meth:`Batcher.run_one`) each request is its own forward pass, on the same
model thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

logger = logging.getLogger("mloop.serving.batching")


@dataclass
class _Pending:
    item: Any
    size: int
    future: asyncio.Future[Any]
    queued_at: float = field(default_factory=time.perf_counter)


class Batcher:
    """Gathers items into batches for ``run_batch`` on one model thread.

    Args:
        run_batch: called on the model thread with a list of items; returns one result per item
            (an exception instance in place of a result fails that item alone; raising fails
            the whole batch).
        max_batch_size: most instances in one batch (an item larger than this runs alone).
        max_wait_ms: longest time the first item of a batch waits for others to arrive.
        size_of: instances in one item (default 1).
        on_batch: called after each batch with (instances, items, seconds) — for metrics.
    """

    def __init__(self, run_batch: Callable[[list[Any]], Sequence[Any]], *, max_batch_size: int = 32,
                 max_wait_ms: float = 5.0, size_of: Callable[[Any], int] = lambda item: 1,
                 on_batch: Callable[[int, int, float], None] | None = None) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.size_of = size_of
        self.on_batch = on_batch
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mloop-model")
        self.arriving = 0
        #: When the call now running on the model thread started (``time.monotonic()``), None when idle:
        #: what tells a slow call from a stuck one (see :meth:`busy_for`).
        self.busy_since: float | None = None
        self._queue: asyncio.Queue[_Pending] | None = None
        self._collector: asyncio.Task[None] | None = None
        self._closed = False

    # -- request side --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def arrival(self) -> Iterator[None]:
        """Mark a request as on its way (body being read) so a forming batch waits for it."""
        self.arriving += 1
        try:
            yield
        finally:
            self.arriving -= 1

    async def submit(self, item: Any) -> Any:
        """Queue ``item`` for the next batch and return its result."""
        if self._closed:
            raise RuntimeError("the batcher is closed")
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._collector is None or self._collector.done():
            self._collector = loop.create_task(self._collect(), name="mloop-batcher")
        pending = _Pending(item, self.size_of(item), loop.create_future())
        self._queue.put_nowait(pending)
        return await pending.future

    async def run_one(self, item: Any) -> Any:
        """Run ``item`` as a batch of its own (batching off)."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        results = await loop.run_in_executor(self.executor, self._timed, self.run_batch, [item])
        if self.on_batch is not None:
            self.on_batch(self.size_of(item), 1, time.perf_counter() - started)
        result = results[0]
        if isinstance(result, BaseException):
            raise result
        return result

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the model thread (pre- and post-processing of custom services)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._timed, fn, *args)

    def _timed(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the model thread, with :attr:`busy_since` set while it runs."""
        self.busy_since = time.monotonic()
        try:
            return fn(*args)
        finally:
            self.busy_since = None

    def busy_for(self) -> float:
        """Seconds the model thread has spent in the call it runs now (0 when idle)."""
        since = self.busy_since
        return 0.0 if since is None else max(0.0, time.monotonic() - since)

    # -- collector -----------------------------------------------------------------------------------
    async def _collect(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        carry: _Pending | None = None  # an item that did not fit the last batch starts the next
        while True:
            first = carry if carry is not None else await queue.get()
            carry = None
            batch = [first]
            size = first.size
            while size < self.max_batch_size and not queue.empty():
                nxt = queue.get_nowait()
                if size + nxt.size > self.max_batch_size:
                    carry = nxt
                    break
                batch.append(nxt)
                size += nxt.size
            if carry is None and size < self.max_batch_size and self.max_wait > 0 and self.arriving > 0:
                deadline = loop.time() + self.max_wait
                while size < self.max_batch_size and self.arriving > 0:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        nxt = await asyncio.wait_for(queue.get(), remaining)
                    except asyncio.TimeoutError:
                        break
                    if size + nxt.size > self.max_batch_size:
                        carry = nxt
                        break
                    batch.append(nxt)
                    size += nxt.size
            live = [p for p in batch if not p.future.done()]  # a caller that went away is skipped
            if not live:
                continue
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self.executor, self._timed, self.run_batch,
                                                     [p.item for p in live])
                if len(results) != len(live):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(live)} items")
            except BaseException as exc:  # noqa: BLE001 - handed to every caller of the batch
                for p in live:
                    if not p.future.done():
                        p.future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            if self.on_batch is not None:
                self.on_batch(size, len(live), time.perf_counter() - started)
            for p, result in zip(live, results):
                if p.future.done():
                    continue
                if isinstance(result, BaseException):
                    p.future.set_exception(result)
                else:
                    p.future.set_result(result)

    async def aclose(self, stuck_after: float | None = None) -> None:
        """Stop collecting (after the queue drained) and release the model thread.

        ``stuck_after``: a model thread busy in one call for longer than this many seconds is
        not waited for (it may never return; the process exits without it)."""
        self._closed = True
        stuck = stuck_after is not None and self.busy_for() > stuck_after
        if self._queue is not None and not stuck:
            while not self._queue.empty():
                await asyncio.sleep(0.005)
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._collector
        self.executor.shutdown(wait=not stuck, cancel_futures=stuck)

