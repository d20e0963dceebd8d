"""A CPU analogue of copy/compute overlap, on real timestamps: worker threads play the copy engine and the SMs.

This is an ANALOGUE, not a GPU measurement. A "queue" is a worker thread that runs
the ops it is given in order (like a CUDA stream); an "event" is a threading.Event
set when an op ends. Copy = `np.copyto` of one chunk (numpy releases the GIL for it);
compute = `np.sin` repeated over the chunk's first MiB, which stays in the core's cache,
so compute takes cores but little DRAM bandwidth (as SMs working from L2/shared
would); the repeat count is calibrated so compute takes about as long as the copy.
Every op's start and end are `time.perf_counter()` readings on the thread that ran
it, so the timeline is measured, not drawn.

What the analogue shares with CUDA: who waits for whom. What it does not: a GPU's
copy engine moves data over PCIe while the SMs read HBM, so the two do not compete;
here both read the same DRAM on two shared cores, so overlapped ops stretch.

Scenarios (mirroring streams.SCENARIOS on the GPU):
- one queue: copy i and compute i on one in-order queue; nothing can overlap.
- two queues, pinned: a copy queue and a compute queue, compute i waits for copy
  i's event; the host only enqueues.
- two queues, pageable: the submitting thread does each copy itself before it
  enqueues the compute, as the driver stages a pageable source while
  cudaMemcpyAsync has not returned: the host is blocked for the copy time, yet the
  copy of chunk i+1 still overlaps the compute of chunk i (partial overlap).
- two queues, wait per chunk: like pinned, but the host waits for compute i (what
  `.item()` does) before it enqueues copy i+1: the overlap is lost.
"""

from __future__ import annotations

import ctypes
import mmap
import queue
import resource
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from experiments.common.stats import summarize
from experiments.foundations.b4_streams_async_copy.timeline import summarize_timeline

SCENARIOS = {
    "one queue": "copy and compute on one in-order worker: no overlap possible",
    "two queues, pinned": "copy worker + compute worker, events for the dependencies; the host only enqueues",
    "two queues, pageable": "the host thread does each copy itself, then enqueues the compute "
    "(the driver staging a pageable source): host blocked for the copy time",
    "two queues, wait per chunk": "as pinned, but the host waits for each compute before the next copy "
    "(like .item() per chunk)",
}


@dataclass
class Op:
    name: str
    kind: str  # "copy" | "compute"
    fn: Callable[[], None]
    after: list[threading.Event] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


class Queue:
    """One worker thread running its ops in order: the analogue of a CUDA stream."""

    def __init__(self, lane: str, t0: float, records: list[dict]):
        self.lane, self.t0, self.records = lane, t0, records
        self.ops: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name=f"b4-{lane}", daemon=True)
        self.thread.start()

    def submit(self, op: Op) -> threading.Event:
        self.ops.put(op)
        return op.done

    def _run(self) -> None:
        while (op := self.ops.get()) is not None:
            for ev in op.after:
                ev.wait()
            start = time.perf_counter()
            op.fn()
            end = time.perf_counter()
            self.records.append(_record(self.lane, op.name, op.kind, start - self.t0, end - self.t0))
            op.done.set()

    def close(self) -> None:
        self.ops.put(None)
        self.thread.join()


def _record(lane: str, name: str, kind: str, start_s: float, end_s: float) -> dict:
    return {"stream": lane, "op": name, "kind": kind, "start_ms": start_s * 1e3, "end_ms": end_s * 1e3}


COMPUTE_BLOCK = 2**18  # float32 elements: 1 MiB, resident in a core's L2


def compute_kernel(chunk: np.ndarray, scratch: np.ndarray, reps: int) -> None:
    block = chunk[:COMPUTE_BLOCK]
    for _ in range(reps):
        np.sin(block, out=scratch[:block.size])


def run_scenario(name: str, src: list[np.ndarray], dst: list[np.ndarray], scratch: np.ndarray,
                 compute_reps: int) -> dict:
    """Run one scenario over all chunks; the records carry every op's measured start and end."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose from {list(SCENARIOS)}")
    records: list[dict] = []
    t0 = time.perf_counter()
    if name == "one queue":
        copy_q = compute_q = Queue("queue", t0, records)
        lanes = [copy_q]
    else:
        copy_q, compute_q = Queue("copy", t0, records), Queue("compute", t0, records)
        lanes = [copy_q, compute_q]
    last = None
    for i, (s, d) in enumerate(zip(src, dst)):
        if name == "two queues, pageable":
            start = time.perf_counter()
            np.copyto(d, s)  # on the host thread: it cannot enqueue anything meanwhile
            records.append(_record("host", f"copy[{i}]", "copy", start - t0, time.perf_counter() - t0))
            copied = []
        else:
            copied = [copy_q.submit(Op(f"copy[{i}]", "copy", lambda s=s, d=d: np.copyto(d, s)))]
        last = compute_q.submit(Op(f"compute[{i}]", "compute",
                                   lambda d=d: compute_kernel(d, scratch, compute_reps), after=copied))
        if name == "two queues, wait per chunk":
            start = time.perf_counter()
            last.wait()
            records.append(_record("host", f"wait[{i}]", "sync", start - t0, time.perf_counter() - t0))
    host_enqueue_ms = (time.perf_counter() - t0) * 1e3
    last.wait()
    wall_ms = (time.perf_counter() - t0) * 1e3
    for lane in lanes:
        lane.close()
    host = [r for r in records if r["stream"] == "host"]
    return {
        "records": sorted(records, key=lambda r: r["start_ms"]),
        "host_enqueue_ms": host_enqueue_ms,
        "host_blocked_ms": sum(r["end_ms"] - r["start_ms"] for r in host),
        "wall_ms": wall_ms,
        **summarize_timeline(records),
    }


def calibrate(src: np.ndarray, dst: np.ndarray, scratch: np.ndarray, repeats: int) -> dict:
    """How many repeats of the compute block take about as long as copying one chunk (medians of `repeats`)."""
    def median_ms(fn) -> float:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
        return float(np.median(times))

    copy_ms = median_ms(lambda: np.copyto(dst, src))
    block_ms = median_ms(lambda: compute_kernel(dst, scratch, 1))
    return {"copy_ms": copy_ms, "copy_GBps": src.nbytes / (copy_ms * 1e-3) / 1e9,
            "compute_block_ms": block_ms, "compute_block_bytes": COMPUTE_BLOCK * 4,
            "compute_reps": max(1, round(copy_ms / block_ms))}


# ---------------------------------------------------------------- the cost of pinning
_libc = ctypes.CDLL(None, use_errno=True)


def _address(buf: mmap.mmap) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt


def _timed_faults(fn) -> tuple[float, int]:
    f0, t = _minor_faults(), time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3, _minor_faults() - f0


def measure_pinning(nbytes: int) -> dict:
    """Fresh anonymous mappings: first touch (page faults), second touch, mlock of fresh and of touched pages.

    mlock is what page-locking ("pinning") host memory is on Linux; cudaHostAlloc /
    pin_memory() do it (and register the pages with the driver) once per buffer.
    """
    page = mmap.PAGESIZE
    out: dict = {"bytes": nbytes, "page_bytes": page, "pages": nbytes // page}

    def fresh() -> tuple[mmap.mmap, np.ndarray]:
        buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        return buf, np.frombuffer(buf, dtype=np.uint8)

    buf, arr = fresh()
    out["first_touch_ms"], out["first_touch_faults"] = _timed_faults(lambda: arr.fill(1))
    out["second_touch_ms"], out["second_touch_faults"] = _timed_faults(lambda: arr.fill(2))
    del arr
    buf.close()

    def lock(b: mmap.mmap) -> None:
        if _libc.mlock(ctypes.c_void_p(_address(b)), ctypes.c_size_t(nbytes)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mlock({nbytes} bytes) failed (RLIMIT_MEMLOCK {resource.getrlimit(resource.RLIMIT_MEMLOCK)})")

    buf, arr = fresh()
    try:
        out["mlock_fresh_ms"], out["mlock_fresh_faults"] = _timed_faults(lambda: lock(buf))
        out["touch_after_mlock_ms"], out["touch_after_mlock_faults"] = _timed_faults(lambda: arr.fill(3))
        _libc.munlock(ctypes.c_void_p(_address(buf)), ctypes.c_size_t(nbytes))
    except OSError as err:
        out["mlock_error"] = str(err)
    del arr
    buf.close()
    buf, arr = fresh()
    arr.fill(4)
    try:
        out["mlock_touched_ms"], out["mlock_touched_faults"] = _timed_faults(lambda: lock(buf))
        _libc.munlock(ctypes.c_void_p(_address(buf)), ctypes.c_size_t(nbytes))
    except OSError as err:
        out["mlock_error"] = str(err)
    del arr
    buf.close()
    return out


# ---------------------------------------------------------------- the whole CPU half
def measure(n_chunks: int, chunk_bytes: int, repeats: int, pin_bytes: int, log=print) -> dict:
    elems = chunk_bytes // 4
    rng = np.random.default_rng(0)
    src = [rng.random(elems, dtype=np.float32) for _ in range(n_chunks)]
    dst = [np.zeros(elems, dtype=np.float32) for _ in range(n_chunks)]
    for d in dst:
        d.fill(1)  # fault the destination in up front, as device memory would be
    scratch = np.zeros(elems, dtype=np.float32)
    cal = calibrate(src[0], dst[0], scratch, repeats=max(5, repeats))
    log(f"calibration: copy {cal['copy_ms']:.2f} ms per {chunk_bytes >> 20} MiB chunk "
        f"({cal['copy_GBps']:.1f} GB/s); compute = {cal['compute_reps']} x np.sin over 1 MiB")
    # Scenarios take turns within each repeat, so a change in machine load hits all of them alike.
    all_runs: dict[str, list[dict]] = {name: [] for name in SCENARIOS}
    for _ in range(repeats):
        for name in SCENARIOS:
            all_runs[name].append(run_scenario(name, src, dst, scratch, cal["compute_reps"]))
    scenarios = {}
    for name, runs in all_runs.items():
        scenarios[name] = {
            "what": SCENARIOS[name],
            **{key: summarize([r[key] for r in runs])
               for key in ("makespan_ms", "overlap_fraction", "host_enqueue_ms", "host_blocked_ms",
                           "copy_busy_ms", "compute_busy_ms")},
            "last_run": runs[-1],
        }
        s = scenarios[name]
        log(f"  {name:<28} makespan {s['makespan_ms']['median']:7.2f} ms, overlap "
            f"{s['overlap_fraction']['median']:.2f}, host blocked {s['host_blocked_ms']['median']:7.2f} ms")
    pinning = measure_pinning(pin_bytes)
    log(f"pinning {pin_bytes >> 20} MiB: first touch {pinning['first_touch_ms']:.1f} ms "
        f"({pinning['first_touch_faults']} faults), mlock fresh {pinning.get('mlock_fresh_ms', float('nan')):.1f} ms")
    return {"calibration": cal, "scenarios": scenarios, "pinning": pinning}
