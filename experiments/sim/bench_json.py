"""Simulated requests -> the JSON `vllm bench serve --save-result --save-detailed` writes.

The metrics are computed by vLLM's own `calculate_metrics` on `RequestFuncOutput`
records (TTFT, ITL, TPOT, E2E exactly as the client defines them), and the keys
are assembled as `vllm.benchmarks.serve.benchmark` / `main` assemble them, so the
bench's `summarize_bench_json`, aggregation and plots read a simulated run as
they read a real one. Fields describing the wall clock (`date`) carry the
simulation's label instead, so the same inputs give byte-identical files.
"""
from __future__ import annotations

import contextlib
import io

PERCENTILE_METRICS = ("ttft", "tpot", "itl", "e2el")
PERCENTILES = (50.0, 90.0, 99.0)  # what the bench passes as --metric-percentiles


def request_outputs(requests: dict, order: list[str]):
    from vllm.benchmarks.lib.endpoint_request_func import RequestFuncOutput

    outs = []
    for rid in order:
        r = requests[rid]
        times = r["token_times"]
        outs.append(RequestFuncOutput(
            generated_text="", success=True, latency=r["finish_s"] - r["arrival_s"], output_tokens=len(times),
            ttft=times[0] - r["arrival_s"], itl=[b - a for a, b in zip(times, times[1:])],
            prompt_len=r["prompt_len"], start_time=r["arrival_s"]))
    return outs


def bench_serve_json(requests: dict, order: list[str], *, model: str, rate, burstiness: float,
                     label: str) -> dict:
    import numpy as np
    from vllm.benchmarks import serve as vbs

    outputs = request_outputs(requests, order)
    duration = max(o.start_time + o.latency for o in outputs)  # the virtual clock starts with the bench
    with contextlib.redirect_stdout(io.StringIO()):  # calculate_metrics prints a termplot tip
        metrics, out_lens = vbs.calculate_metrics(input_requests=[], outputs=outputs, dur_s=duration,
                                                  tokenizer=None, selected_percentiles=list(PERCENTILES),
                                                  goodput_config_dict={})
    result = {"date": label, "endpoint_type": "vllm", "backend": "vllm", "label": label, "model_id": model,
              "tokenizer_id": model, "num_prompts": len(order),
              "request_rate": rate if float(rate) < float("inf") else "inf", "burstiness": burstiness,
              "max_concurrency": None,
              "duration": duration, "completed": metrics.completed, "failed": metrics.failed,
              "total_input_tokens": metrics.total_input, "total_output_tokens": metrics.total_output,
              "request_throughput": metrics.request_throughput, "request_goodput": None,
              "output_throughput": metrics.output_throughput,
              "total_token_throughput": metrics.total_token_throughput,
              "input_lens": [o.prompt_len for o in outputs], "output_lens": out_lens,
              "ttfts": [o.ttft for o in outputs], "itls": [o.itl for o in outputs],
              "latencies": [o.latency for o in outputs], "start_times": [o.start_time for o in outputs],
              "queue_times": [o.client_queue_time for o in outputs],
              "generated_texts": [o.generated_text for o in outputs], "errors": [o.error for o in outputs],
              "max_output_tokens_per_s": metrics.max_output_tokens_per_s,
              "max_concurrent_requests": metrics.max_concurrent_requests, "rtfx": metrics.rtfx}
    for name in PERCENTILE_METRICS:
        result[f"mean_{name}_ms"] = getattr(metrics, f"mean_{name}_ms")
        result[f"median_{name}_ms"] = getattr(metrics, f"median_{name}_ms")
        result[f"std_{name}_ms"] = getattr(metrics, f"std_{name}_ms")
        for p, value in getattr(metrics, f"percentiles_{name}_ms"):
            result[f"p{int(p) if int(p) == p else p}_{name}_ms"] = value
    return {k: (float(v) if isinstance(v, np.floating) else int(v) if isinstance(v, np.integer) else v)
            for k, v in result.items()}
