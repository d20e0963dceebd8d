"""What every concurrency model runs: the arrival schedule, the fake model step, the accounting.

Keeping this in one place is what makes the three models comparable: the same
seeded arrivals, the same per-token work, the same admission and shutdown rules.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from experiments.common.stats import latency_summary
from experiments.foundations.a_common.arrivals import poisson_offsets


@dataclass
class Scenario:
    name: str = "steady"
    work_kind: str = "gpu_wait"    # gpu_wait: the step waits (GIL free); cpu_step: the step is Python CPU work
    rate_rps: float = 25.0         # mean Poisson arrival rate
    duration_s: float = 3.0        # arrivals happen in [0, duration_s)
    workers: int = 4
    queue_size: int = 8            # bounded: a full queue pushes back on the producer
    admission_timeout_s: float = 0.02  # how long the producer waits for space before rejecting
    prefill_ms: float = 10.0
    tokens: int = 16
    token_ms: float = 5.0
    shutdown_at_s: float | None = None  # None: shut down when arrivals end
    drain_deadline_s: float = 5.0  # after shutdown starts; queued requests past it are rejected
    seed: int = 0

    def arrival_offsets(self) -> list[float]:
        return poisson_offsets(self.rate_rps, self.duration_s, self.seed)

    def shutdown_offset(self) -> float:
        return self.duration_s if self.shutdown_at_s is None else self.shutdown_at_s

    def service_s(self) -> float:
        return (self.prefill_ms + self.tokens * self.token_ms) / 1e3


def busy_wait(seconds: float) -> None:
    """`seconds` of this thread's CPU time spent in Python (holding the GIL while it runs).

    The deadline is on the thread's CPU clock, not the wall clock: a thread that is
    preempted (or waits for the GIL) mid-spin gets no credit for CPU it never had.
    With a wall-clock deadline, threads sharing one GIL "did" 1.18 cores of work."""
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        x += 1


def step(work_kind: str, seconds: float) -> None:
    """One synchronous model step: prefill or one decoded token."""
    if work_kind == "gpu_wait":
        time.sleep(seconds)  # the GPU computes; this thread only waits
    else:
        busy_wait(seconds)


# Rejection reasons. Every submitted request ends as exactly one of these or "completed".
QUEUE_FULL, SHUTTING_DOWN, DRAIN_DEADLINE = "queue_full", "shutting_down", "drain_deadline"


class Ledger:
    """What the client side saw: admissions, rejections, and every streamed token.

    Fed from one thread (or one event loop) only, so it needs no lock.
    """

    def __init__(self, t0: float, offsets: list[float]):
        self.t0 = t0
        self.arrival = {i: t0 + off for i, off in enumerate(offsets)}
        self.admitted: set[int] = set()
        self.rejected: dict[int, str] = {}
        self.token_seen: dict[int, list[float]] = {}
        self.token_emitted: dict[int, list[float]] = {}
        self.done: dict[int, float] = {}

    def on_event(self, event: tuple, seen_at: float) -> None:
        kind, rid = event[0], event[1]
        if kind == "tok":
            self.token_seen.setdefault(rid, []).append(seen_at)
            self.token_emitted.setdefault(rid, []).append(event[2])
        elif kind == "done":
            self.done[rid] = seen_at

    def finished(self) -> int:
        return len(self.done) + sum(1 for r in self.rejected.values() if r == DRAIN_DEADLINE)

    def summary(self, scenario: Scenario) -> dict:
        submitted = set(self.arrival)
        completed = set(self.done)
        counts = {"submitted": len(submitted), "admitted": len(self.admitted), "completed": len(completed)}
        for reason in (QUEUE_FULL, SHUTTING_DOWN, DRAIN_DEADLINE):
            counts[f"rejected_{reason}"] = sum(1 for r in self.rejected.values() if r == reason)
        accounted = completed | set(self.rejected)
        counts["lost"] = len(submitted - accounted)
        counts["double_counted"] = len(completed & set(self.rejected))
        counts["short_streams"] = sum(1 for i in completed if len(self.token_seen.get(i, [])) != scenario.tokens)
        out: dict = {"counts": counts}
        if completed:
            ttft = [self.token_seen[i][0] - self.arrival[i] for i in completed]
            e2e = [self.done[i] - self.arrival[i] for i in completed]
            lag = [s - e for i in completed for s, e in zip(self.token_seen[i], self.token_emitted[i])]
            span = max(self.done.values()) - self.t0
            throughput = len(completed) / span
            out["littles_law"] = {
                # L = lambda x W over the run: the mean number of requests between their scheduled
                # arrival and their last token (queued, in a worker, or not yet admitted by a late producer).
                "in_system": throughput * statistics.fmean(e2e),
                # lambda x S: workers kept busy if each request took its nominal service time; for
                # cpu_step that is cores of Python work, which one GIL caps at 1.
                "in_service_nominal": throughput * scenario.service_s(),
                # What the server itself can hold: requests in workers plus requests in the queue.
                "server_capacity": scenario.workers + scenario.queue_size,
            }
            out.update({
                "ttft": latency_summary(ttft),
                "e2e": latency_summary(e2e),
                "stream_lag": latency_summary(lag),  # token emitted by worker -> seen by the client side
                "requests_per_s": throughput,
                "tokens_per_s": sum(len(self.token_seen[i]) for i in completed) / span,
            })
        return out
