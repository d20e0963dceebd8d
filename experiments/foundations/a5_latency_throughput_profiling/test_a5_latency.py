"""a5: timing middleware, the batcher's rules, and the quick sweep's throughput/latency trade-off."""
from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient

from experiments.foundations.a4_mock_inference_service.service import ServiceConfig
from experiments.foundations.a5_latency_throughput_profiling import lab
from experiments.foundations.a5_latency_throughput_profiling.batcher import DynamicBatcher
from experiments.foundations.a5_latency_throughput_profiling.timing_middleware import create_timed_app


def test_timing_middleware_adds_server_timing_and_summary():
    c = TestClient(create_timed_app(ServiceConfig(decode_ms_per_token=1, rate_limit_rps=None)))
    for stream in (False, True):
        r = c.post("/v1/completions", json={"model": "m", "prompt": "hi", "max_tokens": 5, "stream": stream})
        assert r.status_code == 200 and r.headers["server-timing"].startswith("app;dur=")
    t = c.get("/timings").json()
    assert t["n"] == 2 and t["total"]["p50_ms"] >= t["headers"]["p50_ms"] > 0
    # The non-streamed call's headers leave after the 5 x 1 ms model, so its timing covers it.
    assert t["total"]["max_ms"] >= 5


def _run(coro):
    return asyncio.run(coro)


def test_batcher_respects_max_size_and_resolves_everything():
    async def main():
        async def run_batch(items):
            await asyncio.sleep(0.005)
            return [i * 2 for i in items]
        async with DynamicBatcher(run_batch, max_batch_size=4, max_wait_s=0.01) as b:
            results = await asyncio.gather(*(b.submit(i) for i in range(10)))
            return results, b.batch_sizes
    results, sizes = _run(main())
    assert results == [i * 2 for i in range(10)]
    assert max(sizes) <= 4 and sum(sizes) == 10


def test_lone_request_waits_at_most_about_max_wait():
    async def main():
        async def run_batch(items):
            return items
        async with DynamicBatcher(run_batch, max_batch_size=8, max_wait_s=0.03) as b:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await b.submit("x")
            return loop.time() - t0, b.batch_sizes
    waited, sizes = _run(main())
    assert sizes == [1]
    assert 0.025 <= waited < 1.0   # flushed by the deadline, not by a full batch


def test_a_failed_step_fails_only_its_batch():
    async def main():
        calls = []

        async def run_batch(items):
            calls.append(items)
            if len(calls) == 1:
                raise RuntimeError("step failed")
            return items
        async with DynamicBatcher(run_batch, max_batch_size=2, max_wait_s=0.0) as b:
            first = await asyncio.gather(b.submit(1), b.submit(2), return_exceptions=True)
            second = await b.submit(3)
        return first, second
    first, second = _run(main())
    assert all(isinstance(r, RuntimeError) for r in first) and second == 3


@pytest.fixture(scope="module")
def quick_doc(tmp_path_factory):
    out = tmp_path_factory.mktemp("a5")
    assert lab.main(["--quick", "--out-dir", str(out)]) == 0
    assert (out / "plots" / "a5_latency_and_batching.png").stat().st_size > 0
    html = (out / "results" / lab.PROFILE_HTML).read_text()  # the profiler's reports sit next to the JSON
    assert "pyinstrument" in html.lower()
    return json.loads((out / "results" / f"{lab.RESULT}.json").read_text())["results"]


def test_load_run_reports_percentiles_and_loses_nothing(quick_doc):
    for r in quick_doc["load"]:
        assert r["lost"] == 0 and r["server_errors"] == 0
        lat = r["ok_latency"]
        assert lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"]
        # 16 tokens x 2 ms of model time is a floor for every completed request, on both sides.
        assert lat["p50_ms"] >= 32 and r["server"]["total"]["p50_ms"] >= 32
    assert quick_doc["profile"]["requests"] > 0 and quick_doc["profile"]["cpu_ms_per_request"] > 0


def test_bigger_batches_trade_latency_for_throughput(quick_doc):
    rows = quick_doc["batcher"]
    pick = lambda b, rate: next(r for r in rows if r["max_batch_size"] == b and r["offered_rps"] == rate)  # noqa: E731
    # High load: batch-1 saturates (5.5 ms per request), batch-16 keeps up.
    assert pick(16, 400)["throughput_rps"] > 1.5 * pick(1, 400)["throughput_rps"]
    assert pick(16, 400)["mean_batch"] > 2
    # Low load: waiting up to max_wait for company makes the batched server slower per request.
    assert pick(16, 50)["latency"]["p50_ms"] > pick(1, 50)["latency"]["p50_ms"]


def test_help_runs():
    with pytest.raises(SystemExit) as exc:
        lab.main(["--help"])
    assert exc.value.code == 0
