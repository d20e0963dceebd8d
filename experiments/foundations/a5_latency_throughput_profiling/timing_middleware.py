"""Server-side timing for the a4 service: a pure ASGI middleware plus a /timings summary endpoint.

Measures, per request, the time to the response headers (what `Server-Timing`
can report, since headers leave before the body) and to the last body byte
(the whole stream). Compared with the client's numbers, the difference is what
the server never sees: connection set-up, the client's own queueing, the wire.
"""
from __future__ import annotations

import collections
import contextlib
import json
import time

from fastapi import FastAPI

from experiments.common.stats import latency_summary
from experiments.foundations.a4_mock_inference_service.service import ServiceConfig, create_app


class TimingMiddleware:
    def __init__(self, app, store: collections.deque):
        self.app, self.store = app, store

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        mark = {"headers_s": None, "status": None}

        async def timed_send(message):
            if message["type"] == "http.response.start":
                mark["headers_s"] = time.perf_counter() - t0
                mark["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={mark['headers_s'] * 1e3:.3f}".encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                self.store.append({"path": scope["path"], "status": mark["status"],
                                   "headers_s": mark["headers_s"], "total_s": time.perf_counter() - t0})
            await send(message)

        await self.app(scope, receive, timed_send)


def install_timing(app: FastAPI, keep: int = 100_000) -> collections.deque:
    store: collections.deque = collections.deque(maxlen=keep)  # bounded: a long run cannot eat memory

    @app.get("/timings")
    async def timings(reset: bool = False) -> dict:
        rows = [r for r in store if r["path"] == "/v1/completions"]
        out = {"n": len(rows)}
        if rows:
            out["headers"] = latency_summary([r["headers_s"] for r in rows])
            out["total"] = latency_summary([r["total_s"] for r in rows])
        if reset:
            store.clear()
        return out

    app.add_middleware(TimingMiddleware, store=store)
    return store


def create_timed_app(cfg: ServiceConfig | None = None) -> FastAPI:
    app = create_app(cfg)
    install_timing(app)
    return app


def create_profiled_app(cfg: ServiceConfig, html_path: str, text_path: str, interval_s: float = 0.0005) -> FastAPI:
    """The timed app with pyinstrument sampling the server's event-loop thread from start-up to shutdown."""
    from pyinstrument import Profiler

    app = create_timed_app(cfg)
    profiler = Profiler(interval=interval_s, async_mode="disabled")  # whole thread: loop, uvicorn, app

    inner_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def profiled_lifespan(a):
        profiler.start()
        try:
            async with inner_lifespan(a) as state:
                yield state
        finally:
            profiler.stop()
            _write_profile(profiler, html_path, text_path)

    app.router.lifespan_context = profiled_lifespan
    return app


def _write_profile(profiler, html_path: str, text_path: str) -> None:
    from pyinstrument import processors
    from pyinstrument.renderers import HTMLRenderer

    renderer = HTMLRenderer()
    # Merge repeated calls and drop nodes under 0.5% of the time before embedding the tree:
    # the raw per-sample tree of a few seconds of uvicorn makes a multi-MB file.
    renderer.preprocessors = [processors.remove_importlib, processors.aggregate_repeated_calls,
                              processors.remove_irrelevant_nodes]
    renderer.preprocessor_options = {"filter_threshold": 0.005}
    with open(html_path, "w") as fh:
        fh.write(renderer.render(profiler.last_session))
    with open(text_path, "w") as fh:
        fh.write(profiler.output_text(unicode=False, color=False, show_all=False))
    session = profiler.last_session
    with open(text_path + ".json", "w") as fh:
        json.dump({"duration_s": session.duration, "cpu_time_s": session.cpu_time,
                   "samples": session.sample_count}, fh)
