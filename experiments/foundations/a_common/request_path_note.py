"""Render the measured figures of docs/notes/day06-07-request-path.zh.md from the a1-a5 result files.

    python -m experiments.foundations.a_common.request_path_note

The note's prose is written by hand; its numbers are not: the diagram and the
table between the markers are regenerated here from the committed results, each
figure with the file and key it came from.
"""
from __future__ import annotations

import sys

from experiments.common.docs import fill_blocks
from experiments.common.fmt import md_table
from experiments.common.fmt import sig as fmt
from experiments.common.provenance import REPO_ROOT
from experiments.common.results import read_result

NOTE = REPO_ROOT / "docs" / "notes" / "day06-07-request-path.zh.md"
LABS = REPO_ROOT / "experiments" / "foundations"
FILES = {
    "a1": LABS / "a1_gil_threads_vs_processes" / "results" / "a1_threads_vs_processes.json",
    "a2": LABS / "a2_producer_consumer_queues" / "results" / "a2_producer_consumer.json",
    "a3": LABS / "a3_read_vs_mmap" / "results" / "a3_read_vs_mmap.json",
    "a4": LABS / "a4_mock_inference_service" / "results" / "a4_mock_service.json",
    "a5": LABS / "a5_latency_throughput_profiling" / "results" / "a5_latency_throughput.json",
    "tok": LABS / "a_common" / "results" / "tokenizer_cost.json",
    "c1": REPO_ROOT / "experiments" / "vllm" / "c1_prefill_decode_batching" / "results" / "prefill_decode_cpu.json",
}


def _src(lab: str, key: str) -> str:
    return f"`{FILES[lab].relative_to(REPO_ROOT)}` → `{key}`"


def figures(docs: dict[str, dict]) -> dict[str, tuple[str, str]]:
    """name -> (value text, source)."""
    a1, a2, a3, a4, a5, tok, c1 = (docs[k]["results"] for k in ("a1", "a2", "a3", "a4", "a5", "tok", "c1"))
    # the c1 prefill row closest to the tokenizer's prompt length, and the batch-1 decode step
    pre = min(c1["prefill"], key=lambda r: abs(r["prompt_tokens"] - tok["prompt_tokens"]))
    dec = next(r for r in c1["decode"] if r["batch"] == 1)
    tr = a4["transport"]
    a2row = lambda model, kind="gpu_wait", scen="steady": next(  # noqa: E731
        r for r in a2["rows"] if r["model"] == model and r["work_kind"] == kind and r["scenario"] == scen)
    a3row = lambda m, s="warm": next(r for r in a3["rows"] if r["method"] == m and r["state"] == s)  # noqa: E731
    low_load = min(a5["load"], key=lambda r: r["offered_rps"])
    rates = sorted({r["offered_rps"] for r in a5["batcher"]})
    sizes = sorted({r["max_batch_size"] for r in a5["batcher"]})
    bat = lambda b, rate: next(r for r in a5["batcher"] if r["max_batch_size"] == b and r["offered_rps"] == rate)  # noqa: E731
    limited = [r for r in a4["overload"] if r["limiter"]]
    top = max(limited, key=lambda r: r["offered_rps"])
    py2t = next(r for r in a1["rows"] if r["workload"] == "python_loop" and r["executor"] == "threads" and r["workers"] == 2)
    py2p = next(r for r in a1["rows"] if r["workload"] == "python_loop" and r["executor"] == "processes" and r["workers"] == 2)
    return {
        "tokenize": (f"encode {tok['prompt_tokens']} token {fmt(tok['encode_cpu']['median_us'])} µs CPU",
                     _src("tok", "encode_cpu.median_us")),
        "forward": (f"CPU、7.9M 模型：prefill {pre['prompt_tokens']} token {fmt(pre['step_s']['median'] * 1e3)} ms，"
                    f"decode 1 步 {fmt(dec['step_s']['median'] * 1e3)} ms",
                    _src("c1", f"prefill[{pre['prompt_tokens']} tokens].step_s.median / decode[batch 1].step_s.median")),
        "detokenize": (f"{fmt(tok['detokenize_us_per_token'])} µs CPU/token", _src("tok", "detokenize_us_per_token")),
        "conn_keepalive": (f"{fmt(tr['http_keep_alive']['p50_ms'])} ms", _src("a4", "transport.http_keep_alive.p50_ms")),
        "conn_new": (f"{fmt(tr['http_new_connection']['p50_ms'])} ms",
                     _src("a4", "transport.http_new_connection.p50_ms")),
        "grpc": (f"{fmt(tr['grpc_channel']['p50_ms'])} ms", _src("a4", "transport.grpc_channel.p50_ms")),
        "server_cpu": (f"{fmt(a5['profile']['cpu_ms_per_request'])} ms CPU", _src("a5", "profile.cpu_ms_per_request")),
        "client_minus_server": (
            f"{fmt(low_load['ok_latency']['p50_ms'] - low_load['server']['total']['p50_ms'])} ms",
            _src("a5", f"load[offered {fmt(low_load['offered_rps'])}] ok_latency.p50_ms - server.total.p50_ms")),
        "limit_429": (f"{top['share_429']:.0%} 429, {top['server_errors']} 个 5xx, {top['lost']} 个丢失",
                      _src("a4", f"overload[offered {fmt(top['offered_rps'])}, limiter on]")),
        "gil": (f"2 线程 {fmt(py2t['cores_used']['median'])} 核 vs 2 进程 {fmt(py2p['cores_used']['median'])} 核",
                _src("a1", "rows[python_loop, 2 workers].cores_used.median")),
        "batch_wait": (f"p50 {fmt(bat(sizes[0], rates[0])['latency']['p50_ms'])} → "
                       f"{fmt(bat(sizes[-1], rates[0])['latency']['p50_ms'])} ms",
                       _src("a5", f"batcher[max batch {sizes[0]} vs {sizes[-1]}, offered {fmt(rates[0])}].latency.p50_ms")),
        "batch_tput": (f"{fmt(bat(sizes[0], rates[-1])['throughput_rps'])} → "
                       f"{fmt(bat(sizes[-1], rates[-1])['throughput_rps'])} req/s",
                       _src("a5", f"batcher[max batch {sizes[0]} vs {sizes[-1]}, offered {fmt(rates[-1])}].throughput_rps")),
        "ipc_lag": (f"p50 {fmt(a2row('multiprocessing')['stream_lag']['p50_ms'])} ms（进程间）vs "
                    f"{fmt(a2row('asyncio')['stream_lag']['p50_ms'])} ms（同一事件循环）",
                    _src("a2", "rows[gpu_wait, steady, multiprocessing / asyncio].stream_lag.p50_ms")),
        "sse": (f"首个事件 p50 {fmt(a4['stream']['ttft']['p50_ms'])} ms，整段 p50 {fmt(a4['stream']['total']['p50_ms'])} ms",
                _src("a4", "stream.ttft.p50_ms / stream.total.p50_ms")),
        "weights": (f"{fmt(a3['file_bytes'] / 2**20)} MiB：read() {fmt(a3row('read_full')['wall_s']['median'] * 1e3)} ms vs "
                    f"mmap {fmt(a3row('mmap_full')['wall_s']['median'] * 1e3)} ms（热缓存）",
                    _src("a3", "rows[read_full / mmap_full, warm].wall_s.median")),
    }


MERMAID = """```mermaid
flowchart LR
    C[客户端] -->|"连接：keep-alive {conn_keepalive} / 新连接 {conn_new} / gRPC {grpc}"| A[API server<br/>asyncio + HTTP]
    A -->|"解析+校验+中间件：{server_cpu}/请求"| L{{限流 / 熔断}}
    L -->|"过载时：{limit_429}"| X[429 / 503 + Retry-After]
    L --> T[tokenizer<br/>{tokenize}]
    T -->|"进程边界 IPC"| S[scheduler<br/>排队 + 动态 batch]
    S -->|"batch 等待：{batch_wait}"| G[forward<br/>{forward}<br/>GPU 未测量]
    G --> D[detokenizer<br/>{detokenize}]
    D -->|"逐 token 回传：{ipc_lag}"| A
    A -->|"SSE：{sse}"| C
    W[(权重文件)] -.->|"启动时加载：{weights}"| G
```"""


def render(docs: dict[str, dict]) -> str:
    figs = figures(docs)
    diagram = MERMAID.format(**{k: v[0] for k, v in figs.items()})
    labels = {
        "tokenize": "tokenizer：一个聊天 prompt 的 encode（本仓库离线 tokenizer，线程 CPU 时间）",
        "forward": "forward：c1 在 CPU 上测的 tiny 模型一次 prefill / 一个 decode step（不是 GPU）",
        "detokenize": "detokenizer：流式输出时每个 token 的增量解码（线程 CPU 时间）",
        "conn_keepalive": "客户端 → API：复用连接（keep-alive）", "conn_new": "客户端 → API：每次新建 TCP 连接",
        "grpc": "同样的调用走 gRPC（HTTP/2 长连接）", "server_cpu": "API server 每个流式请求的 CPU（模型代价为 0，token 数见 a5 config.load_tokens）",
        "client_minus_server": "客户端看到的 p50 减去服务端中间件测得的 p50（低负载）",
        "limit_429": "限流：过载时的 429 比例、5xx、丢失", "gil": "纯 Python 工作：线程 vs 进程实际用到的核数",
        "batch_wait": "低负载下 batch 上限从最小到最大，p50 的变化（等待凑 batch）",
        "batch_tput": "高负载下 batch 上限从最小到最大，吞吐的变化",
        "ipc_lag": "token 从 worker 产生到被前端看到（流式延迟）", "sse": "SSE 流式：首 token vs 整段",
        "weights": "启动时加载权重：read() vs mmap",
    }
    table = md_table(["环节", "测得的代价", "来源（结果文件 → 键）"],
                     [[labels[k], v[0], v[1]] for k, v in figs.items()])
    # the files were measured on different machines (c1 on another CPU than week 1): name each one's
    machines: dict[str, list[str]] = {}
    for key, doc in docs.items():
        m = doc["provenance"]["machine"]
        machines.setdefault(f"{m['cpu_model']}，{m['cpu_count']} 核", []).append(key)
    where = "；".join(f"{'、'.join(sorted(keys))}：{machine}" for machine, keys in sorted(machines.items()))
    return (f"{diagram}\n\n{table}\n\n测量机器（按结果文件）：{where}；都没有 GPU。不同机器上测得的数字只能比较量级，"
            f"各实验的具体时间与负载见各结果文件的 `provenance`。")


def main(argv: list[str] | None = None) -> int:
    missing = [str(p.relative_to(REPO_ROOT)) for p in FILES.values() if not p.exists()]
    if missing:
        print(f"request_path_note: run the labs first; missing {missing}", file=sys.stderr)
        return 1
    docs = {k: read_result(p) for k, p in FILES.items()}
    NOTE.write_text(fill_blocks(NOTE.read_text(), {"request-path-figures": render(docs)}))
    print(f"updated {NOTE.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
