"""A stub OpenAI-style /v1/completions server that answers instantly (loopback only).

Used once to show the load client (`vllm bench serve`) is not the bottleneck: it
must drive this stub far faster than the real engine sustains.
    python -m experiments.bench.stub_server --port P
"""
from __future__ import annotations

import argparse
import json

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

app = FastAPI()


@app.get("/health")
async def health():
    return {}


@app.get("/v1/models")
async def models():
    return {"object": "list", "data": [{"id": "stub", "object": "model"}]}


@app.post("/v1/completions")
async def completions(request: Request):
    body = await request.json()
    n = int(body.get("max_tokens") or 16)

    async def stream():
        for _ in range(n):
            yield "data: " + json.dumps({"choices": [{"index": 0, "text": " x"}]}) + "\n\n"
        yield "data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": n}}) + "\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
