"""a4: the service answers 422/429/502/503/504 exactly when it should, never 500; the breaker's state machine."""
from __future__ import annotations

import json
import random

import httpx
import pytest
from fastapi.testclient import TestClient

from experiments.foundations.a4_mock_inference_service import lab
from experiments.foundations.a4_mock_inference_service.client import backoff_s, post_with_retries
from experiments.foundations.a4_mock_inference_service.resilience import (
    CLOSED, HALF_OPEN, OPEN, CircuitBreaker, TokenBucket,
)
from experiments.foundations.a4_mock_inference_service.service import ServiceConfig, create_app, parse_sse
from experiments.foundations.a_common.loopback import serve_in_thread

OK = {"model": "m", "prompt": "hello there", "max_tokens": 3}


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def client(**kw) -> TestClient:
    kw.setdefault("decode_ms_per_token", 0)
    return TestClient(create_app(ServiceConfig(**kw)))


def test_completion_and_stream():
    c = client()
    body = c.post("/v1/completions", json=OK).json()
    assert body["usage"]["completion_tokens"] == 3 and body["choices"][0]["text"].count("tok") == 3
    events = parse_sse(c.post("/v1/completions", json={**OK, "stream": True}).text)
    assert events[-1] == "[DONE]" and len(events) == 4
    assert all(json.loads(e)["choices"][0]["text"].startswith(" tok") for e in events[:-1])


@pytest.mark.parametrize("payload", [
    {"model": "m", "prompt": "", "max_tokens": 3},
    {"model": "m", "prompt": "hi", "max_tokens": 0},
    {"model": "m", "prompt": "hi", "max_tokens": 100000},
    {"model": "m", "prompt": "hi", "temperature": -1},
    {"model": "m", "prompt": 12},
    {"prompt": "no model"},
    {"model": "m", "prompt": "hi", "surprise": True},
    [],
])
def test_bad_input_is_422_with_a_message(payload):
    r = client().post("/v1/completions", json=payload)
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"]


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe{\x00", b""])
def test_malformed_body_is_422_not_400_or_500(body):
    r = client().post("/v1/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["msg"]


# Python's json parser (FastAPI's) accepts NaN, Infinity and -Infinity, which are not JSON; a
# schema-driven fuzzer never sends them. Each field, and the body itself, gets each literal
# (1e400 parses to Infinity).
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400"]


def _body_with(field: str | None, literal: str) -> bytes:
    if field is None:
        return literal.encode()
    body = {"model": "m", "prompt": "hi", "max_tokens": 3, "temperature": 1.0, "stream": False}
    body[field] = "@@"
    return json.dumps(body).replace('"@@"', literal).encode()


def _strict_json(text: str):
    def reject(name: str):
        raise AssertionError(f"response body is not strict JSON: it contains {name}")
    return json.loads(text, parse_constant=reject)


@pytest.mark.parametrize("literal", NON_FINITE)
@pytest.mark.parametrize("field", [None, "model", "prompt", "max_tokens", "temperature", "stream"])
def test_non_finite_numbers_are_422_in_strict_json(field, literal):
    c = TestClient(create_app(ServiceConfig(decode_ms_per_token=0)), raise_server_exceptions=False)
    r = c.post("/v1/completions", content=_body_with(field, literal), headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert _strict_json(r.text)["detail"][0]["msg"]


def test_nan_body_keeps_the_keep_alive_connection_usable():
    """Over a real socket: a NaN body is answered 422 and the same connection serves the next request."""
    app = create_app(ServiceConfig(decode_ms_per_token=0, rate_limit_rps=None))
    with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        bad = http.post("/v1/completions", content=_body_with("temperature", "NaN"),
                        headers={"content-type": "application/json"})
        good = http.post("/v1/completions", json=OK)
        stats = http.get("/stats").json()["statuses"]
    assert (bad.status_code, good.status_code) == (422, 200)
    assert stats == {"422": 1, "200": 1}


def test_rate_limit_429_exactly_after_the_burst():
    c = client(rate_limit_rps=0.01, rate_limit_burst=3)
    statuses = [c.post("/v1/completions", json=OK).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    r = c.post("/v1/completions", json=OK)
    assert int(r.headers["retry-after"]) >= 1 and r.json()["error"]["type"] == "rate_limited"
    # Buckets are per API key: another client is not starved.
    assert c.post("/v1/completions", json=OK, headers={"x-api-key": "other"}).status_code == 200


def test_breaker_opens_on_backend_failures_then_fails_fast():
    c = client(backend_failure_rate=1.0, breaker_failure_threshold=3, breaker_reset_timeout_s=1.0,
               rate_limit_rps=None)
    # The breaker's clock is frozen: on 2 busy CI cores a wall-clock reset timeout elapsed between
    # two requests and let a half-open trial through early (CI failure of 2026-12-01).
    clock = FakeClock()
    c.app.state.breaker.clock = clock
    statuses = [c.post("/v1/completions", json=OK).status_code for _ in range(5)]
    assert statuses == [502, 502, 502, 503, 503]
    r = c.post("/v1/completions", json=OK)
    assert r.json()["error"]["type"] == "circuit_open" and "retry-after" in r.headers
    clock.t += 1.0  # half-open: one trial reaches the (still failing) backend and re-opens
    assert [c.post("/v1/completions", json=OK).status_code for _ in range(2)] == [502, 503]
    assert c.get("/stats").json()["breaker"] == OPEN


def test_timeout_is_504_and_ends_a_stream_with_an_error_event():
    c = client(decode_ms_per_token=20, request_timeout_s=0.05, rate_limit_rps=None)
    r = c.post("/v1/completions", json={**OK, "max_tokens": 50})
    assert r.status_code == 504 and r.json()["error"]["type"] == "timeout"
    events = parse_sse(c.post("/v1/completions", json={**OK, "max_tokens": 50, "stream": True}).text)
    assert "error" in json.loads(events[-1]) and len(events) < 50


def test_breaker_state_machine():
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=2, reset_timeout_s=1.0, clock=clock)
    assert b.allow() == (True, 0.0)
    b.record_failure()
    b.record_success()           # a success resets the consecutive count
    b.record_failure()
    assert b.state == CLOSED
    b.record_failure()
    assert b.state == OPEN
    ok, wait = b.allow()
    assert not ok and wait == pytest.approx(1.0)
    clock.t += 1.0
    assert b.allow()[0] and b.state == HALF_OPEN
    assert not b.allow()[0]      # only one trial at a time
    b.record_failure()
    assert b.state == OPEN
    clock.t += 1.0
    assert b.allow()[0]
    b.record_success()
    assert b.state == CLOSED and b.allow()[0]
    assert [s for _, s in b.transitions] == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]


def test_breaker_released_when_a_trial_has_no_verdict():
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=1, reset_timeout_s=1.0, clock=clock)
    b.record_failure()
    clock.t += 1.0
    assert b.allow()[0]
    b.release()                  # e.g. the client disconnected mid-stream
    assert b.allow()[0]


def test_token_bucket_refills_at_its_rate():
    clock = FakeClock()
    tb = TokenBucket(rate=10, capacity=2, clock=clock)
    assert tb.try_acquire()[0] and tb.try_acquire()[0]
    ok, wait = tb.try_acquire()
    assert not ok and wait == pytest.approx(0.1)
    clock.t += 0.1 + 1e-9
    assert tb.try_acquire()[0]


def test_retries_wait_at_least_retry_after():
    c = client(rate_limit_rps=2, rate_limit_burst=1)
    assert c.post("/v1/completions", json=OK).status_code == 200
    resp, log = post_with_retries(c, "/v1/completions", OK, rng=random.Random(0))
    assert resp.status_code == 200
    assert log[0]["status"] == 429 and log[0]["wait_s"] >= float(log[0]["retry_after"])


def test_no_retry_on_422_and_backoff_is_bounded():
    resp, log = post_with_retries(client(), "/v1/completions", {"model": "m"}, sleep=lambda s: None)
    assert resp.status_code == 422 and len(log) == 1
    rng = random.Random(0)
    assert all(0 <= backoff_s(a, 0.05, 2.0, rng) <= min(2.0, 0.05 * 2 ** a) for a in range(12))


@pytest.fixture(scope="module")
def quick_doc(tmp_path_factory):
    out = tmp_path_factory.mktemp("a4")
    assert lab.main(["--quick", "--out-dir", str(out)]) == 0
    assert (out / "plots" / "a4_overload_and_breaker.png").stat().st_size > 0
    return json.loads((out / "results" / f"{lab.RESULT}.json").read_text())["results"]


def test_load_test_loses_nothing_and_sheds_with_429(quick_doc):
    limited = [r for r in quick_doc["overload"] if r["limiter"]]
    for row in quick_doc["overload"]:
        assert row["lost"] == 0
        # The server's own counts match what the client saw: nothing vanished in between.
        assert row["server_statuses"] == row["statuses"]
    assert all(row["server_errors"] == 0 for row in limited)
    top = max(limited, key=lambda r: r["offered_rps"])
    assert top["share_429"] > 0.2
    unlimited = next(r for r in quick_doc["overload"] if not r["limiter"])
    assert unlimited["share_429"] == 0
    # Same offered load, no shedding: everything is admitted. The latency tail this causes (p99 90x
    # the limited run's in the committed full run) is not asserted here: in this 1 s quick run the
    # client shares 2 cores with the server and its own lateness sets both tails (CI saw the limited
    # run's p99 at 1.1 s, 6.9 s and 4.3 s, once above the unlimited one).
    assert unlimited["statuses"].get("200", 0) > top["statuses"].get("200", 0)


def test_breaker_run_accounts_for_every_request(quick_doc):
    # The quick run's outage is wall-clock time, and a client stalled on busy cores may send fewer than the
    # 5 consecutive failures that open the breaker inside it (CI saw 0 fast failures): how much the breaker
    # saved is the lab run's figure; the protection itself is test_breaker_keeps_failing_calls_off_the_backend.
    on, off = quick_doc["breaker"]
    assert off["fast_failed"] == 0
    for run in (on, off):
        assert len(run["timeline"]) == sum(run["statuses"].values()) > 0
        assert set(run["statuses"]) <= {"200", "502", "503"}
        assert run["backend_calls_failed"] + run["fast_failed"] + run["statuses"].get("200", 0) == len(run["timeline"])


@pytest.mark.parametrize("threshold, expected_502", [(3, 3), (10**9, 20)])
def test_breaker_keeps_failing_calls_off_the_backend(threshold, expected_502):
    """Counts, no clock: with the backend down, the breaker lets `threshold` calls through, then fails fast."""
    c = client(backend_failure_rate=1.0, breaker_failure_threshold=threshold, rate_limit_rps=None)
    c.app.state.breaker.clock = FakeClock()  # no reset timeout can elapse during the test
    statuses = [c.post("/v1/completions", json=OK).status_code for _ in range(20)]
    assert statuses.count(502) == expected_502 and statuses.count(503) == 20 - expected_502


def test_transport_rows_and_retries(quick_doc):
    assert set(quick_doc["transport"]) == {"http_keep_alive", "http_new_connection", "grpc_channel"}
    assert quick_doc["retries"]["succeeded"] == quick_doc["retries"]["requests"]


def test_help_runs():
    with pytest.raises(SystemExit) as exc:
        lab.main(["--help"])
    assert exc.value.code == 0


def test_readme_flags_a_limiter_that_admitted_more_than_its_budget():
    doc = json.loads((lab.LAB_DIR / "results" / f"{lab.RESULT}.json").read_text())
    assert "more than its budget" not in lab.readme_tables(doc)
    row = next(r for r in doc["results"]["overload"] if r["limiter"] and r["offered_rps"] == 400)
    row["statuses"]["200"] = 1028  # what a re-run on a slower 2-core machine admitted
    assert "At 400 req/s the limiter admitted 1028, more than its budget of 320" in lab.readme_tables(doc)
