"""Client side: retries with backoff + jitter that honour Retry-After, and connection reuse measured."""
from __future__ import annotations

import random
import time
from typing import Callable

import httpx

from experiments.common.stats import latency_summary

RETRY_STATUSES = {429, 502, 503, 504}


def backoff_s(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """'Full jitter' exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0.0, min(cap_s, base_s * 2 ** attempt))


def post_with_retries(client: httpx.Client, url: str, payload: dict, *, max_attempts: int = 5,
                      base_s: float = 0.05, cap_s: float = 2.0, rng: random.Random | None = None,
                      sleep: Callable[[float], None] = time.sleep) -> tuple[httpx.Response | None, list[dict]]:
    """POST, retrying 429/502/503/504 and transport errors; never retry other 4xx (the request is wrong).

    A server's Retry-After is a floor: the client waits at least that long, plus
    jitter so that many clients told "1 s" do not all come back in the same
    millisecond. Returns the last response (None if every attempt failed to
    connect) and the log of attempts.
    """
    rng = rng or random.Random()
    log: list[dict] = []
    resp = None
    for attempt in range(max_attempts):
        try:
            resp = client.post(url, json=payload)
            status, retry_after = resp.status_code, resp.headers.get("retry-after")
        except httpx.TransportError as exc:
            resp, status, retry_after = None, type(exc).__name__, None
        entry = {"attempt": attempt, "status": status, "retry_after": retry_after, "wait_s": 0.0}
        log.append(entry)
        if status not in RETRY_STATUSES and not isinstance(status, str):
            return resp, log
        if attempt == max_attempts - 1:
            break
        wait = backoff_s(attempt, base_s, cap_s, rng)
        if retry_after is not None:
            wait = float(retry_after) + rng.uniform(0.0, base_s)
        entry["wait_s"] = wait
        sleep(wait)
    return resp, log


def measure_connection_reuse(base_url: str, n: int, payload: dict) -> dict:
    """Sequential small requests: one kept-alive connection vs a new TCP connection per request."""
    out = {}
    for name, limits in (("keep_alive", httpx.Limits(max_keepalive_connections=1)),
                         ("new_connection", httpx.Limits(max_keepalive_connections=0))):
        with httpx.Client(base_url=base_url, limits=limits, timeout=10) as client:
            client.post("/v1/completions", json=payload)  # warm-up (imports, first connection)
            lat = []
            for _ in range(n):
                t0 = time.perf_counter()
                client.post("/v1/completions", json=payload).raise_for_status()
                lat.append(time.perf_counter() - t0)
        out[name] = latency_summary(lat)
    return out


def measure_stream(base_url: str, n: int, payload: dict) -> dict:
    """Time to first SSE event vs to the end of the stream, over one kept-alive connection."""
    ttft, total = [], []
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            first = None
            with client.stream("POST", "/v1/completions", json={**payload, "stream": True}) as resp:
                for line in resp.iter_lines():
                    if line.startswith("data: ") and first is None:
                        first = time.perf_counter() - t0
            ttft.append(first)
            total.append(time.perf_counter() - t0)
    return {"ttft": latency_summary(ttft), "total": latency_summary(total)}
