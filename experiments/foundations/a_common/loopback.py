"""Run an ASGI app with uvicorn on 127.0.0.1 only, in a thread or a child process.

A thread is quick to start (tests); a child process keeps the load-generating
client from sharing the server's GIL (measurements), because a benchmark client
in the same interpreter can become the bottleneck it is trying to measure.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import socket
import threading
import time
from typing import Callable, Iterator

import httpx
import uvicorn

HOST = "127.0.0.1"  # never 0.0.0.0: the labs' servers are not reachable from outside


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    return sock


def _wait_healthy(base_url: str, timeout_s: float = 20.0, path: str = "/healthz") -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(base_url + path, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"server at {base_url} did not become healthy in {timeout_s} s")
        time.sleep(0.05)


def _uvicorn_config(app, **kw) -> uvicorn.Config:
    # One worker, no access log (logging every request would dominate the hot path).
    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", **kw)


@contextlib.contextmanager
def serve_in_thread(app, **uvicorn_kw) -> Iterator[str]:
    """Yield the base URL of `app` served from a background thread; stop it on exit."""
    sock = _bound_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(_uvicorn_config(app, **uvicorn_kw))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://{HOST}:{port}"
    try:
        _wait_healthy(base)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _child_main(app_factory: Callable, factory_kwargs: dict, conn, uvicorn_kw: dict) -> None:
    sock = _bound_socket()
    conn.send(sock.getsockname()[1])
    conn.close()
    app = app_factory(**factory_kwargs)
    uvicorn.Server(_uvicorn_config(app, **uvicorn_kw)).run(sockets=[sock])


@contextlib.contextmanager
def serve_in_process(app_factory: Callable, factory_kwargs: dict | None = None,
                     **uvicorn_kw) -> Iterator[str]:
    """Yield the base URL of `app_factory(**factory_kwargs)` served by a spawned child process."""
    ctx = mp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe()
    proc = ctx.Process(target=_child_main, args=(app_factory, factory_kwargs or {}, child_conn, uvicorn_kw),
                       daemon=True)
    proc.start()
    try:
        if not parent_conn.poll(30):
            raise TimeoutError("server process did not report its port")
        base = f"http://{HOST}:{parent_conn.recv()}"
        _wait_healthy(base)
        yield base
    finally:
        proc.terminate()  # SIGTERM: uvicorn shuts down gracefully
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
            proc.join()
