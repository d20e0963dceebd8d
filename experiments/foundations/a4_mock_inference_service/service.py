"""The mock inference service: POST /v1/completions (OpenAI-style), streaming over SSE.

Order of defences for one request: validation (FastAPI/pydantic: 422) -> rate
limit (429 + Retry-After) -> circuit breaker (503 + Retry-After while open) ->
the fake model under a per-request timeout (504) -> backend failure (502).
"""
from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Annotated, AsyncIterator, Literal

from fastapi import FastAPI, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from experiments.foundations.a4_mock_inference_service.resilience import (
    CircuitBreaker, KeyedRateLimiter, retry_after_header,
)


@dataclass
class ServiceConfig:
    prefill_ms_per_token: float = 0.05   # per prompt word
    decode_ms_per_token: float = 2.0
    request_timeout_s: float = 5.0
    # Concurrent generations the fake backend can run (a GPU's batch slots); None = unlimited.
    model_slots: int | None = None
    rate_limit_rps: float | None = 200.0  # per API key; None disables the limiter
    rate_limit_burst: float = 50.0
    breaker_failure_threshold: int = 5
    breaker_reset_timeout_s: float = 1.0
    backend_failure_rate: float = 0.0
    # (start_s, end_s) after app start during which every backend call fails.
    outage_windows: list[tuple[float, float]] = field(default_factory=list)
    seed: int = 0


def _integral_float_to_int(v):
    """JSON Schema counts 71.0 as an integer; strict pydantic would not. Accept it, nothing looser."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


JsonInt = Annotated[int, BeforeValidator(_integral_float_to_int)]


class CompletionRequest(BaseModel):
    # strict: no silent coercion ("stream": 0 or "max_tokens": "5" are errors, not guesses);
    # schemathesis found the lax default accepting "stream": 0.
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1, max_length=64, description="any non-empty name; the fake model ignores it")
    prompt: str = Field(min_length=1, max_length=8000)
    max_tokens: JsonInt = Field(default=16, ge=1, le=256)
    # Python's json (what FastAPI parses bodies with) accepts the literals NaN and Infinity; they are not JSON.
    temperature: float = Field(default=1.0, ge=0.0, le=2.0, allow_inf_nan=False)
    stream: bool = False


class Choice(BaseModel):
    index: int
    text: str
    finish_reason: Literal["length"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


ERROR_RESPONSES = {
    200: {"description": "a completion (JSON), or with stream=true one SSE event per token then [DONE]",
          # One SSE event: `data:` carries a JSON chunk (or [DONE]); schemathesis checks each event.
          "content": {"text/event-stream": {"schema": {
              "type": "object", "required": ["data"],
              "properties": {"data": {"type": "string"}, "event": {"type": "string"}}}}}},
    429: {"model": ErrorResponse, "description": "rate limited; see Retry-After"},
    502: {"model": ErrorResponse, "description": "the backend failed this request"},
    503: {"model": ErrorResponse, "description": "circuit breaker open; see Retry-After"},
    504: {"model": ErrorResponse, "description": "request exceeded the server's timeout"},
}


class BackendError(Exception):
    pass


class FakeModel:
    """Token-by-token latency model: prefill cost per prompt word, then a fixed cost per token."""

    def __init__(self, cfg: ServiceConfig, started: float):
        self.cfg, self.started = cfg, started
        self.first_call: float | None = None
        self.slots = asyncio.Semaphore(cfg.model_slots) if cfg.model_slots else None
        self.rng = random.Random(cfg.seed)

    def check_backend(self) -> None:
        """The flaky part: a backend that fails at random or during scheduled outages.

        Outage windows count from the first request, so a run's timeline does not
        depend on how long the server took to start.
        """
        if self.first_call is None:
            self.first_call = time.monotonic()
        t = time.monotonic() - self.first_call
        if any(a <= t < b for a, b in self.cfg.outage_windows):
            raise BackendError("backend unavailable (scheduled outage)")
        if self.cfg.backend_failure_rate and self.rng.random() < self.cfg.backend_failure_rate:
            raise BackendError("backend failed (injected)")

    async def generate(self, req: CompletionRequest) -> AsyncIterator[str]:
        if self.slots is None:
            async for tok in self._generate(req):
                yield tok
            return
        async with self.slots:  # waiting here is queueing inside the server
            async for tok in self._generate(req):
                yield tok

    async def _generate(self, req: CompletionRequest) -> AsyncIterator[str]:
        words = req.prompt.split()
        if self.cfg.prefill_ms_per_token:
            await asyncio.sleep(len(words) * self.cfg.prefill_ms_per_token / 1e3)
        seed = int.from_bytes(hashlib.blake2b(req.prompt.encode(), digest_size=4).digest(), "little")
        for i in range(req.max_tokens):
            if self.cfg.decode_ms_per_token:
                await asyncio.sleep(self.cfg.decode_ms_per_token / 1e3)
            yield f" tok{(seed + i) % 50_000}"


def _json_safe(value):
    """`value` with every non-finite float replaced by its name ("NaN", "Infinity", "-Infinity").

    A 422 echoes the offending input back; a NaN in it cannot be written as strict JSON, and
    Starlette's JSONResponse refuses it (allow_nan=False): the error handler itself would raise,
    the client would get a 500 and its keep-alive connection would be dropped."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _error(status: int, kind: str, message: str, retry_after: float | None = None) -> JSONResponse:
    headers = {"Retry-After": retry_after_header(retry_after)} if retry_after is not None else None
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status, headers=headers)


def create_app(cfg: ServiceConfig | None = None) -> FastAPI:
    cfg = cfg or ServiceConfig()
    app = FastAPI(title="mock inference service (a4)", version="1.0")
    started = time.monotonic()
    model = FakeModel(cfg, started)
    limiter = KeyedRateLimiter(cfg.rate_limit_rps, cfg.rate_limit_burst) if cfg.rate_limit_rps else None
    breaker = CircuitBreaker(cfg.breaker_failure_threshold, cfg.breaker_reset_timeout_s)
    counters: collections.Counter = collections.Counter()
    app.state.cfg, app.state.breaker, app.state.counters, app.state.model = cfg, breaker, counters, model

    @app.exception_handler(StarletteHTTPException)
    async def unparseable_body_is_422(request: Request, exc: StarletteHTTPException):
        # FastAPI answers 400 for a body it cannot even decode (e.g. not UTF-8); to a client that is
        # the same mistake as malformed JSON, so it gets the same 422 shape.
        if exc.status_code == 400:
            return JSONResponse({"detail": [{"type": "body_parse_error", "loc": ["body"],
                                             "msg": f"request body could not be parsed: {exc.detail}"}]},
                                status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error_is_422(request: Request, exc: RequestValidationError):
        # FastAPI's default handler, except that non-finite numbers in the echoed input are spelled out.
        return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.middleware("http")
    async def count_statuses(request: Request, call_next):
        response = await call_next(request)
        if request.url.path == "/v1/completions":
            counters[str(response.status_code)] += 1
        return response

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/stats")
    async def stats() -> dict:
        """Status counts since start and the breaker's state (read by the load test)."""
        t0 = model.first_call or started
        return {"statuses": dict(counters), "breaker": breaker.state,
                "breaker_transitions": [(round(t - t0, 4), s) for t, s in breaker.transitions]}

    @app.post("/v1/completions", response_model=CompletionResponse, responses=ERROR_RESPONSES)
    async def completions(req: CompletionRequest, x_api_key: str = Header(default="anonymous", max_length=128)):
        if limiter is not None:
            ok, wait = limiter.try_acquire(x_api_key)
            if not ok:
                return _error(429, "rate_limited", f"rate limit {cfg.rate_limit_rps:g} req/s exceeded", wait)
        allowed, wait = breaker.allow()
        if not allowed:
            return _error(503, "circuit_open", "backend circuit breaker is open; failing fast", wait)
        try:
            model.check_backend()
        except BackendError as exc:
            breaker.record_failure()
            return _error(502, "backend_error", str(exc))
        rid = f"cmpl-{time.monotonic_ns():x}"
        deadline = time.monotonic() + cfg.request_timeout_s
        if req.stream:
            return StreamingResponse(_sse(req, rid, deadline), media_type="text/event-stream")
        try:
            async with asyncio.timeout(cfg.request_timeout_s):
                text = "".join([tok async for tok in model.generate(req)])
        except TimeoutError:
            breaker.record_failure()
            return _error(504, "timeout", f"generation exceeded {cfg.request_timeout_s:g} s")
        breaker.record_success()
        n_prompt = len(req.prompt.split())
        return CompletionResponse(
            id=rid, created=int(time.time()), model=req.model,
            choices=[Choice(index=0, text=text, finish_reason="length")],
            usage=Usage(prompt_tokens=n_prompt, completion_tokens=req.max_tokens,
                        total_tokens=n_prompt + req.max_tokens))

    async def _sse(req: CompletionRequest, rid: str, deadline: float) -> AsyncIterator[str]:
        """One SSE event per token; a timeout mid-stream ends with an error event (status is already 200)."""
        outcome = None
        try:
            try:
                async with asyncio.timeout_at(asyncio.get_running_loop().time() + deadline - time.monotonic()):
                    async for tok in model.generate(req):
                        chunk = {"id": rid, "object": "text_completion", "model": req.model,
                                 "choices": [{"index": 0, "text": tok, "finish_reason": None}]}
                        yield f"data: {json.dumps(chunk)}\n\n"
                outcome = "ok"
            except TimeoutError:
                outcome = "timeout"
            if outcome == "ok":
                breaker.record_success()
                yield "data: [DONE]\n\n"
            else:
                breaker.record_failure()
                yield f"data: {json.dumps({'error': {'type': 'timeout', 'message': 'generation timed out'}})}\n\n"
        finally:
            if outcome is None:
                breaker.release()  # the client went away mid-stream: no verdict on the backend

    return app


def parse_sse(body: str) -> list[str]:
    """The `data:` payloads of an SSE body, in order."""
    return [line[len("data: "):] for line in body.splitlines() if line.startswith("data: ")]
