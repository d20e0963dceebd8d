"""A dynamic batcher: collect requests until `max_batch_size` or `max_wait_s` after the first, then run them together.

The batch step models a GPU forward pass: a fixed cost plus a small cost per
item (the fixed part, weights read once per step, is what batching amortises).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from experiments.common.stats import latency_summary
from experiments.foundations.a_common.arrivals import poisson_offsets


@dataclass
class StepCost:
    fixed_ms: float = 5.0
    per_item_ms: float = 0.5

    def seconds(self, batch: int) -> float:
        return (self.fixed_ms + self.per_item_ms * batch) / 1e3


class DynamicBatcher:
    def __init__(self, run_batch: Callable[[list], Awaitable[list]], max_batch_size: int, max_wait_s: float):
        if max_batch_size < 1 or max_wait_s < 0:
            raise ValueError("max_batch_size >= 1 and max_wait_s >= 0")
        self.run_batch, self.max_batch_size, self.max_wait_s = run_batch, max_batch_size, max_wait_s
        self.queue: asyncio.Queue = asyncio.Queue()
        self.batch_sizes: list[int] = []
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "DynamicBatcher":
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    async def submit(self, item):
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((item, fut))
        return await fut

    async def _loop(self) -> None:
        while True:
            batch = [await self.queue.get()]  # block until there is work
            deadline = time.perf_counter() + self.max_wait_s
            while len(batch) < self.max_batch_size:
                timeout = deadline - time.perf_counter()
                if timeout <= 0:
                    # Take whatever is already waiting without blocking.
                    while len(batch) < self.max_batch_size and not self.queue.empty():
                        batch.append(self.queue.get_nowait())
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            self.batch_sizes.append(len(batch))
            try:
                results = await self.run_batch([item for item, _ in batch])
            except Exception as exc:  # one failed step fails its whole batch, nothing else
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), res in zip(batch, results):
                if not fut.done():
                    fut.set_result(res)


async def _open_loop(rate_rps: float, duration_s: float, max_batch_size: int, max_wait_s: float,
                     cost: StepCost, seed: int) -> dict:
    async def run_batch(items: list) -> list:
        await asyncio.sleep(cost.seconds(len(items)))  # the "GPU" step: wall time, no CPU
        return items

    offsets = poisson_offsets(rate_rps, duration_s, seed)
    latencies: list[float] = []
    done_at: list[float] = []
    async with DynamicBatcher(run_batch, max_batch_size, max_wait_s) as batcher:
        t0 = time.perf_counter() + 0.02

        async def one(off: float) -> None:
            await asyncio.sleep(max(0.0, t0 + off - time.perf_counter()))
            await batcher.submit(off)
            now = time.perf_counter()
            latencies.append(now - (t0 + off))  # from the scheduled arrival
            done_at.append(now)

        await asyncio.gather(*(one(o) for o in offsets))
        sizes = batcher.batch_sizes
    span = max(done_at) - t0
    return {"offered_rps": rate_rps, "max_batch_size": max_batch_size, "max_wait_ms": max_wait_s * 1e3,
            "requests": len(offsets), "throughput_rps": len(latencies) / span,
            "mean_batch": sum(sizes) / len(sizes), "max_batch_seen": max(sizes), "batches": len(sizes),
            "latency": latency_summary(latencies)}


def run_open_loop(rate_rps: float, duration_s: float, max_batch_size: int, max_wait_s: float,
                  cost: StepCost | None = None, seed: int = 0) -> dict:
    return asyncio.run(_open_loop(rate_rps, duration_s, max_batch_size, max_wait_s, cost or StepCost(), seed))
