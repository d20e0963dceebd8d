"""The same bounded, streaming request queue written three times.

Shape shared by all three:
  producer (arrivals on a seeded schedule) -> bounded request queue -> N workers
  -> token events (one per generated token) -> collector (the client-facing side).
Admission: wait up to `admission_timeout_s` for queue space, else reject
(backpressure). Shutdown: stop admitting, let workers drain the queue until the
drain deadline, reject what is still queued, let in-flight requests finish, then
stop workers with sentinels. Every submitted request ends completed or rejected.
"""
from __future__ import annotations

import asyncio
import multiprocessing as mp
import queue
import threading
import time

from experiments.foundations.a2_producer_consumer_queues.scenario import (
    DRAIN_DEADLINE, QUEUE_FULL, SHUTTING_DOWN, Ledger, Scenario, busy_wait, step,
)

_STOP = None  # worker sentinel


def _sleep_until(t: float) -> None:
    delay = t - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


def _generate_sync(sc: Scenario, rid: int, emit) -> None:
    """A worker serving one request: prefill, then one event per token, then done."""
    step(sc.work_kind, sc.prefill_ms / 1e3)
    for _ in range(sc.tokens):
        step(sc.work_kind, sc.token_ms / 1e3)
        emit(("tok", rid, time.perf_counter()))
    emit(("done", rid, time.perf_counter()))


def _thread_worker(sc: Scenario, requests, events) -> None:
    while (rid := requests.get()) is not _STOP:
        _generate_sync(sc, rid, events.put)


def _process_worker(sc: Scenario, requests, events) -> None:
    while (rid := requests.get()) is not _STOP:
        _generate_sync(sc, rid, events.put)


def _drain_queue(requests, ledger: Ledger, get_timeout: float) -> None:
    """Reject whatever is still queued at the drain deadline (exactly once per request)."""
    while True:
        try:
            rid = requests.get(timeout=get_timeout) if get_timeout else requests.get_nowait()
        except queue.Empty:
            return
        if rid is not _STOP:
            ledger.rejected[rid] = DRAIN_DEADLINE


def _run_sync(sc: Scenario, requests, events, workers: list, drain_get_timeout: float,
              workers_started: bool = False) -> Ledger:
    """Producer, collector and shutdown for the threading and multiprocessing models."""
    offsets = sc.arrival_offsets()
    t0 = time.perf_counter() + 0.05
    ledger = Ledger(t0, offsets)
    lock = threading.Lock()  # ledger is written by the producer (admissions) and the collector (events)

    def collect() -> None:
        while (ev := events.get()) is not _STOP:
            with lock:
                ledger.on_event(ev, time.perf_counter())

    collector = threading.Thread(target=collect, name="collector")
    collector.start()
    if not workers_started:
        for w in workers:
            w.start()
    shutdown_at = t0 + sc.shutdown_offset()
    for rid, off in enumerate(offsets):
        if t0 + off >= shutdown_at:
            # Shutdown has begun: the server stops accepting; later arrivals are refused.
            with lock:
                ledger.rejected.update({r: SHUTTING_DOWN for r in range(rid, len(offsets))})
            break
        _sleep_until(t0 + off)
        try:
            requests.put(rid, timeout=sc.admission_timeout_s)
            with lock:
                ledger.admitted.add(rid)
        except queue.Full:
            with lock:
                ledger.rejected[rid] = QUEUE_FULL
    # Graceful shutdown: wait for the queue to drain, up to the deadline.
    _sleep_until(shutdown_at)
    deadline = shutdown_at + sc.drain_deadline_s
    while time.perf_counter() < deadline:
        with lock:
            if ledger.finished() >= len(ledger.admitted):
                break
        time.sleep(0.005)
    with lock:
        _drain_queue(requests, ledger, drain_get_timeout)
    for _ in workers:
        requests.put(_STOP)
    for w in workers:
        w.join()
    events.put(_STOP)
    collector.join()
    return ledger


def run_threading(sc: Scenario) -> Ledger:
    requests: queue.Queue = queue.Queue(maxsize=sc.queue_size)
    events: queue.SimpleQueue = queue.SimpleQueue()
    workers = [threading.Thread(target=_thread_worker, args=(sc, requests, events), name=f"worker-{i}")
               for i in range(sc.workers)]
    return _run_sync(sc, requests, events, workers, drain_get_timeout=0.0)


def run_multiprocessing(sc: Scenario) -> Ledger:
    ctx = mp.get_context("spawn")
    requests = ctx.Queue(maxsize=sc.queue_size)
    events = ctx.Queue()
    workers = [ctx.Process(target=_process_worker, args=(sc, requests, events), name=f"worker-{i}")
               for i in range(sc.workers)]
    # Spawned workers need a few tenths of a second to import before they serve:
    # start them before the clock, as a server starts its workers before it listens.
    for w in workers:
        w.start()
    time.sleep(0.5)
    # mp.Queue.get can miss an item still in a feeder thread; a short timeout closes that gap.
    return _run_sync(sc, requests, events, workers, drain_get_timeout=0.05, workers_started=True)


async def _generate_async(sc: Scenario, rid: int, events: asyncio.Queue) -> None:
    async def astep(seconds: float) -> None:
        if sc.work_kind == "gpu_wait":
            await asyncio.sleep(seconds)
        else:
            busy_wait(seconds)        # blocks the event loop: nothing else runs meanwhile
            await asyncio.sleep(0)    # yield between steps, as a cooperative server would
    await astep(sc.prefill_ms / 1e3)
    for _ in range(sc.tokens):
        await astep(sc.token_ms / 1e3)
        events.put_nowait(("tok", rid, time.perf_counter()))
    events.put_nowait(("done", rid, time.perf_counter()))


async def _run_asyncio(sc: Scenario) -> Ledger:
    requests: asyncio.Queue = asyncio.Queue(maxsize=sc.queue_size)
    events: asyncio.Queue = asyncio.Queue()
    offsets = sc.arrival_offsets()
    t0 = time.perf_counter() + 0.05
    ledger = Ledger(t0, offsets)

    async def worker() -> None:
        while (rid := await requests.get()) is not _STOP:
            await _generate_async(sc, rid, events)

    async def collect() -> None:
        while (ev := await events.get()) is not _STOP:
            ledger.on_event(ev, time.perf_counter())

    collector = asyncio.create_task(collect())
    workers = [asyncio.create_task(worker()) for _ in range(sc.workers)]
    shutdown_at = t0 + sc.shutdown_offset()
    for rid, off in enumerate(offsets):
        if t0 + off >= shutdown_at:
            ledger.rejected.update({r: SHUTTING_DOWN for r in range(rid, len(offsets))})
            break
        delay = t0 + off - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            await asyncio.wait_for(requests.put(rid), timeout=sc.admission_timeout_s)
            ledger.admitted.add(rid)
        except asyncio.TimeoutError:
            ledger.rejected[rid] = QUEUE_FULL
    delay = shutdown_at - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
    deadline = shutdown_at + sc.drain_deadline_s
    while time.perf_counter() < deadline and ledger.finished() < len(ledger.admitted):
        await asyncio.sleep(0.005)
    while not requests.empty():
        ledger.rejected[requests.get_nowait()] = DRAIN_DEADLINE
    for _ in workers:
        await requests.put(_STOP)
    await asyncio.gather(*workers)
    events.put_nowait(_STOP)
    await collector
    return ledger


def run_asyncio(sc: Scenario) -> Ledger:
    return asyncio.run(_run_asyncio(sc))


MODELS = {"threading": run_threading, "multiprocessing": run_multiprocessing, "asyncio": run_asyncio}
