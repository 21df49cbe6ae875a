"""MicroBatcher: concurrent items share calls, a lone one is not delayed, errors stay per item."""

from __future__ import annotations

import asyncio
import threading
import time

from embedsearch.serve.batcher import MicroBatcher


def run(coroutine):
    return asyncio.run(coroutine)


def test_items_queued_while_the_worker_is_busy_share_one_call() -> None:
    calls: list[list[int]] = []
    gate = threading.Event()

    def process(items):
        calls.append(list(items))
        gate.wait(5)  # the first call holds the worker while the others queue up
        return [x * 10 for x in items]

    async def main():
        batcher = MicroBatcher(process, max_batch=64, max_wait_ms=0)
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 21)]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(first, *rest)
        await batcher.stop()
        return results

    assert run(main()) == [i * 10 for i in range(21)]
    assert [len(c) for c in calls] == [1, 20]


def test_max_batch_bounds_a_call() -> None:
    sizes: list[int] = []
    gate = threading.Event()

    def process(items):
        sizes.append(len(items))
        gate.wait(5)
        return list(items)

    async def main():
        batcher = MicroBatcher(process, max_batch=8, max_wait_ms=0)
        futures = [asyncio.ensure_future(batcher.submit(i)) for i in range(30)]
        await asyncio.sleep(0.05)
        gate.set()
        out = await asyncio.gather(*futures)
        await batcher.stop()
        return out

    assert run(main()) == list(range(30))
    assert max(sizes) == 8 and sum(sizes) == 30


def test_a_lone_item_does_not_wait_for_company() -> None:
    async def main():
        batcher = MicroBatcher(lambda items: list(items), max_batch=64, max_wait_ms=500)
        await batcher.submit(1)  # starts the worker thread
        start = time.perf_counter()
        await batcher.submit(2)
        elapsed = time.perf_counter() - start
        await batcher.stop()
        return elapsed

    assert run(main()) < 0.25  # far below the 500 ms bound: nothing else was arriving


def test_a_batch_waits_for_requests_still_arriving() -> None:
    sizes: list[int] = []

    async def main():
        batcher = MicroBatcher(
            lambda items: sizes.append(len(items)) or list(items), max_wait_ms=300
        )
        with batcher.arriving():  # a request being received: the batch waits for it
            first = asyncio.ensure_future(batcher.submit(1))
            await asyncio.sleep(0.05)
            second = asyncio.ensure_future(batcher.submit(2))
            await asyncio.gather(first, second)
        await batcher.stop()

    run(main())
    assert sizes == [2]


def test_an_error_outcome_fails_only_its_item() -> None:
    async def main():
        batcher = MicroBatcher(
            lambda items: [ValueError(f"bad {x}") if x == 2 else x for x in items]
        )
        results = await asyncio.gather(
            *(batcher.submit(i) for i in range(4)), return_exceptions=True
        )
        await batcher.stop()
        return results

    results = run(main())
    assert results[:2] == [0, 1] and results[3] == 3
    assert isinstance(results[2], ValueError) and str(results[2]) == "bad 2"


def test_a_cancelled_item_is_skipped() -> None:
    seen: list[int] = []
    gate = threading.Event()

    def process(items):
        seen.extend(items)
        gate.wait(5)
        return list(items)

    async def main():
        batcher = MicroBatcher(process, max_wait_ms=0)
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.05)
        dropped = batcher.submit_nowait(2)
        kept = asyncio.ensure_future(batcher.submit(3))
        dropped.cancel()  # e.g. its request timed out while queued
        gate.set()
        await asyncio.gather(first, kept)
        await batcher.stop()

    run(main())
    assert seen == [1, 3]


def test_under_load_a_batch_waits_for_as_many_as_the_last_one() -> None:
    sizes: list[int] = []

    async def main():
        batcher = MicroBatcher(
            lambda items: sizes.append(len(items)) or list(items), max_wait_ms=300
        )
        await asyncio.gather(*(batcher.submit_nowait(i) for i in range(3)))  # a batch of 3
        first = batcher.submit_nowait(10)
        await asyncio.sleep(0.05)  # the next ones come a little later, within the wait
        rest = [batcher.submit_nowait(i) for i in (11, 12)]
        await asyncio.gather(first, *rest)
        await batcher.stop()

    run(main())
    assert sizes == [3, 3]
