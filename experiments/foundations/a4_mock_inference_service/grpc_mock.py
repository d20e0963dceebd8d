"""The same completion call over gRPC, without code generation: generic handlers with JSON bytes.

The point is the transport row (HTTP/1.1 + JSON vs HTTP/2 + gRPC framing on one
long-lived channel), not protobuf: the payload stays JSON and is validated by
the same pydantic models, so both sides do the same serialisation work and the
difference is the framework and protocol (FastAPI/uvicorn/h11 vs grpcio's C core).
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import time
from concurrent import futures
from typing import Iterator

import grpc
from pydantic import ValidationError

from experiments.common.stats import latency_summary
from experiments.foundations.a4_mock_inference_service.service import (
    Choice, CompletionRequest, CompletionResponse, Usage,
)

SERVICE = "mock.Inference"


def _complete(request: bytes, context) -> bytes:
    """Validate with the HTTP service's own pydantic model and answer in its response shape."""
    try:
        req = CompletionRequest.model_validate_json(request)
    except ValidationError as exc:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    text = "".join(f" tok{i}" for i in range(req.max_tokens))
    n_prompt = len(req.prompt.split())
    resp = CompletionResponse(id=f"cmpl-{time.monotonic_ns():x}", created=int(time.time()), model=req.model,
                              choices=[Choice(index=0, text=text, finish_reason="length")],
                              usage=Usage(prompt_tokens=n_prompt, completion_tokens=req.max_tokens,
                                          total_tokens=n_prompt + req.max_tokens))
    return resp.model_dump_json().encode()


def _start_server() -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "Complete": grpc.unary_unary_rpc_method_handler(_complete),
    })
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")  # loopback only
    server.start()
    return server, port


def _child(conn) -> None:
    server, port = _start_server()
    conn.send(port)
    conn.close()
    server.wait_for_termination()


@contextlib.contextmanager
def serve_grpc() -> Iterator[str]:
    """A gRPC server in a spawned process (like the HTTP server: no GIL shared with the client)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child,), daemon=True)
    proc.start()
    try:
        if not parent.poll(30):
            raise TimeoutError("gRPC server did not report its port")
        yield f"127.0.0.1:{parent.recv()}"
    finally:
        proc.terminate()
        proc.join(timeout=10)


def measure_grpc(target: str, n: int, payload: dict) -> dict:
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(f"/{SERVICE}/Complete")
        body = json.dumps(payload).encode()
        call(body, timeout=10)  # warm-up: connects the channel
        lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            json.loads(call(body, timeout=10))
            lat.append(time.perf_counter() - t0)
    return latency_summary(lat)
