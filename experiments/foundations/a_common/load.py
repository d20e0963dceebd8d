"""A bounded open-loop HTTP load generator on loopback (httpx + asyncio).

Open loop: requests are sent on a seeded Poisson schedule whether or not earlier
ones have finished, as real users do; a closed loop (send the next when the
last returns) would slow down with the server and hide its queueing. Bounded:
a fixed number of scheduled requests, a per-request timeout, and a concurrency
cap; the run stops by itself. Every scheduled request is accounted for: a
status code, or a named client-side error (never silently dropped).
"""
from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass

import httpx

from experiments.common.stats import latency_summary
from experiments.foundations.a_common.arrivals import poisson_offsets


@dataclass
class LoadSpec:
    rate_rps: float
    duration_s: float
    payload: dict
    path: str = "/v1/completions"
    max_in_flight: int = 256        # client-side cap: beyond it requests wait for a connection
    timeout_s: float = 10.0
    seed: int = 0
    headers: dict | None = None


async def _run(base_url: str, spec: LoadSpec) -> dict:
    offsets = poisson_offsets(spec.rate_rps, spec.duration_s, spec.seed)
    # keepalive_expiry below uvicorn's 5 s idle timeout (httpx's default is also 5 s): otherwise, after a
    # stall, the client can send on a connection the server is closing and get a ReadError (seen in CI).
    limits = httpx.Limits(max_connections=spec.max_in_flight, max_keepalive_connections=spec.max_in_flight,
                          keepalive_expiry=2.0)
    records: list[dict] = []
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=spec.timeout_s,
                                 headers=spec.headers) as client:
        t0 = time.perf_counter() + 0.05

        async def one(off: float) -> None:
            await asyncio.sleep(max(0.0, t0 + off - time.perf_counter()))
            start = time.perf_counter()
            rec = {"scheduled_s": off, "late_s": start - (t0 + off)}
            try:
                resp = await client.post(spec.path, json=spec.payload)
                rec.update(status=resp.status_code, retry_after=resp.headers.get("retry-after"),
                           server_timing=resp.headers.get("server-timing"))
            except httpx.HTTPError as exc:
                rec.update(status=None, error=type(exc).__name__)
            # Latency from the scheduled send time: a late client send is the client's queueing.
            rec["latency_s"] = time.perf_counter() - (t0 + off)
            records.append(rec)

        await asyncio.gather(*(one(off) for off in offsets))
        wall = time.perf_counter() - t0
    return summarize_load(records, len(offsets), wall, spec)


def summarize_load(records: list[dict], scheduled: int, wall_s: float, spec: LoadSpec) -> dict:
    statuses = collections.Counter(str(r["status"]) if r["status"] is not None else r["error"] for r in records)
    ok = [r["latency_s"] for r in records if r["status"] == 200]
    return {
        "offered_rps": spec.rate_rps,
        "scheduled": scheduled,
        "answered": sum(1 for r in records if r["status"] is not None),
        "lost": scheduled - len(records) + sum(1 for r in records if r["status"] is None),
        "statuses": dict(statuses),
        "server_errors": sum(1 for r in records if r["status"] is not None and r["status"] >= 500),
        "share_429": statuses.get("429", 0) / scheduled if scheduled else 0.0,
        "ok_latency": latency_summary(ok) if ok else None,
        "ok_per_s": len(ok) / wall_s,
        "client_late_p99_ms": latency_summary([r["late_s"] for r in records])["p99_ms"] if records else None,
        "records": records,
    }


def run_load(base_url: str, spec: LoadSpec) -> dict:
    return asyncio.run(_run(base_url, spec))
