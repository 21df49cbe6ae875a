"""``MicroBatcher``: single requests arriving together are answered by one call on a worker thread.

faiss and the encoders cost far less per query in a batch (a tiny-clip text forward: 0.74 ms for
one text, 7.3 ms for 32), so the server queues each query, and one worker thread takes whatever
has queued up — at most ``max_batch`` — and hands it to ``process`` in one call. A lone query is
taken at once. A batch waits (at most ``max_wait_ms``) for more only when the server is busy —
the previous batch held several queries, or requests are marked as arriving — so batching adds no
latency to an idle server. The event loop never runs model or faiss
work: it only queues, waits and answers.

Example:
    >>> batcher = MicroBatcher(lambda items: [x * 2 for x in items])   # doctest: +SKIP
    >>> await batcher.submit(21)                                        # doctest: +SKIP
    42
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")


@dataclass(slots=True)
class _Job(Generic[Item]):
    item: Item
    future: asyncio.Future


@dataclass
class BatchStats:
    """Counters for ``/api/health`` and the load test: how well batching works."""

    batches: int = 0
    items: int = 0
    largest: int = 0
    busy_s: float = 0.0
    sizes: dict[int, int] = field(default_factory=dict)


class MicroBatcher(Generic[Item]):
    """Queue items from the event loop; ``process(items) -> outcomes`` runs on one worker thread.

    ``process`` returns one outcome per item: a result, or an ``Exception`` instance that is raised
    to that item's caller only (a bad image fails its own request, not the batch).
    """

    def __init__(
        self,
        process: Callable[[Sequence[Item]], list[Any]],
        max_batch: int = 64,
        max_wait_ms: float = 2.0,
    ) -> None:
        self.process = process
        self.max_batch = max(1, max_batch)
        self.max_wait = max(0.0, max_wait_ms) / 1000
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Job[Item]] | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedsearch-batch")
        self._arriving = 0
        self._last_size = 1  # the previous batch's size: how busy the server is

    def start(self) -> None:
        """Start the collector on the running loop (the app's lifespan calls this)."""
        if self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._collect())

    async def stop(self) -> None:
        """Stop collecting and fail whatever is still queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._queue is not None and not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the server is shutting down"))
        self._executor.shutdown(wait=True)

    def run_in_worker(self, work: Callable[[], Any]) -> asyncio.Future:
        """Run ``work`` on the worker thread between batches (e.g. loading a model)."""
        return asyncio.get_running_loop().run_in_executor(self._executor, work)

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Mark a request that is being received and will submit soon (lets a batch wait for it)."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    def submit_nowait(self, item: Item) -> asyncio.Future:
        """Queue ``item``; the returned future gets its outcome. Cancel it to drop the item."""
        if self._queue is None:
            self.start()
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(item, future))  # type: ignore[union-attr]
        return future

    async def submit(self, item: Item) -> Any:
        """Queue ``item`` and wait for its outcome."""
        return await self.submit_nowait(item)

    async def _collect(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            await self._fill(batch)
            batch = [
                job for job in batch if not job.future.done()
            ]  # timed out or cancelled meanwhile
            if not batch:
                continue
            start = time.perf_counter()
            try:
                outcomes = await loop.run_in_executor(
                    self._executor, self.process, [j.item for j in batch]
                )
            except Exception as e:  # noqa: BLE001 - a bug in process: fail this batch, keep serving
                outcomes = [e] * len(batch)
            self._record(len(batch), time.perf_counter() - start)
            for job, outcome in zip(batch, outcomes, strict=True):
                if job.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)

    async def _fill(self, batch: list[_Job[Item]]) -> None:
        """Add queued jobs; under load (the last batch was bigger, or requests are arriving) wait
        briefly for as many as the last batch had."""
        assert self._queue is not None
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.monotonic()
            expected = len(batch) < self._last_size or self._arriving > 0
            if not expected or remaining <= 0:
                return
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                return

    def _record(self, size: int, seconds: float) -> None:
        self._last_size = size
        stats = self.stats
        stats.batches += 1
        stats.items += size
        stats.largest = max(stats.largest, size)
        stats.busy_s += seconds
        stats.sizes[size] = stats.sizes.get(size, 0) + 1
