"""The Batcher on its own: order, limits, per-item errors, no waiting for a lone request."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mloop.serving.batching import Batcher


def test_results_go_back_to_their_callers_and_batches_respect_the_limit() -> None:
    seen: list[list[int]] = []
    gate = threading.Event()

    def run(items: list[int]) -> list[int]:
        gate.wait(5)  # hold the first batch so the rest queue up behind it
        seen.append(list(items))
        return [i * 10 for i in items]

    async def main() -> list[int]:
        batcher = Batcher(run, max_batch_size=4, max_wait_ms=0)
        tasks = [asyncio.create_task(batcher.submit(i)) for i in range(10)]
        await asyncio.sleep(0.05)
        gate.set()
        out = await asyncio.gather(*tasks)
        await batcher.aclose()
        return out

    assert asyncio.run(main()) == [i * 10 for i in range(10)]
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # in order, at most 4 at a time


def test_an_exception_result_fails_only_its_own_caller() -> None:
    def run(items: list[int]) -> list[object]:
        return [ValueError(f"bad {i}") if i == 2 else i for i in items]

    async def main() -> list[object]:
        batcher = Batcher(run, max_batch_size=8)
        out = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)
        await batcher.aclose()
        return out

    out = asyncio.run(main())
    assert out[:2] == [0, 1] and out[3] == 3
    assert isinstance(out[2], ValueError) and str(out[2]) == "bad 2"


def test_items_larger_than_one_instance_count_by_size() -> None:
    sizes: list[int] = []
    gate = threading.Event()

    def run(items: list[list[int]]) -> list[int]:
        gate.wait(5)
        sizes.append(sum(len(i) for i in items))
        return [len(i) for i in items]

    async def main() -> None:
        batcher = Batcher(run, max_batch_size=5, max_wait_ms=0, size_of=len)
        tasks = [asyncio.create_task(batcher.submit([0] * n)) for n in (1, 3, 3, 2, 6)]
        await asyncio.sleep(0.05)
        gate.set()
        assert await asyncio.gather(*tasks) == [1, 3, 3, 2, 6]
        await batcher.aclose()

    asyncio.run(main())
    assert sizes == [4, 5, 6]  # 1+3, then 3+2 (3+3 would pass 5); 6 is over the limit and runs alone


def test_a_lone_request_does_not_wait_for_max_wait() -> None:
    async def main() -> float:
        batcher = Batcher(lambda items: items, max_batch_size=32, max_wait_ms=500)
        await batcher.submit(0)  # warm the model thread
        started = time.perf_counter()
        await batcher.submit(1)
        elapsed = time.perf_counter() - started
        await batcher.aclose()
        return elapsed

    assert asyncio.run(main()) < 0.25


def test_a_forming_batch_waits_for_requests_still_arriving() -> None:
    batches: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        batches.append(list(items))
        return items

    async def main() -> None:
        batcher = Batcher(run, max_batch_size=8, max_wait_ms=300)

        async def late(i: int) -> int:
            with batcher.arrival():
                await asyncio.sleep(0.05)  # body still being read
            return await batcher.submit(i)

        assert await asyncio.gather(batcher.submit(0), late(1)) == [0, 1]
        await batcher.aclose()

    asyncio.run(main())
    assert batches == [[0, 1]]


def test_batch_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        Batcher(lambda items: items, max_batch_size=0)
