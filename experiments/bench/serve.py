"""One serving run: `vllm serve` on 127.0.0.1, then `vllm bench serve` per workload.

The server runs the variant's engine; the load client always runs the
baseline (installed) vLLM so both variants are measured by identical code.
"""
from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from pathlib import Path

import httpx

from experiments.bench import processes
from experiments.bench import workloads as workloads_mod
from experiments.common.stats import percentile


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def engine_flags(engine_args: dict) -> list[str]:
    flags: list[str] = []
    for key, value in engine_args.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, dict):
            flags += [flag, json.dumps(value)]
        else:
            flags += [flag, str(value)]
    return flags


class KvUsageSampler(processes.PeriodicSampler):
    """Max of the server's `vllm:kv_cache_usage_perc` gauge, polled from /metrics."""

    PATTERN = re.compile(r"^vllm:kv_cache_usage_perc\{[^}]*\}\s+([0-9.eE+-]+)", re.M)

    def __init__(self, base_url: str, interval_s: float = 0.5):
        super().__init__(interval_s)
        self.base_url = base_url
        self.max_usage = 0.0
        self._client = httpx.Client(timeout=5)

    def _tick(self) -> None:
        try:
            text = self._client.get(self.base_url + "/metrics").text
            for m in self.PATTERN.finditer(text):
                self.max_usage = max(self.max_usage, float(m.group(1)))
        except httpx.HTTPError:
            pass

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self._client.close()


COUNTER_PATTERNS = {
    "preemptions": re.compile(r"^vllm:num_preemptions_total(?:\{[^}]*\})?\s+([0-9.eE+-]+)", re.M),
    "steps": re.compile(r"^vllm:iteration_tokens_total_count(?:\{[^}]*\})?\s+([0-9.eE+-]+)", re.M),
    "step_tokens": re.compile(r"^vllm:iteration_tokens_total_sum(?:\{[^}]*\})?\s+([0-9.eE+-]+)", re.M),
}


def scheduler_counters(metrics_text: str) -> dict:
    """Engine-step counters from the server's /metrics (summed over engines): timing-independent."""
    return {k: sum(float(m.group(1)) for m in pat.finditer(metrics_text)) for k, pat in COUNTER_PATTERNS.items()}


def read_counters(base_url: str) -> dict:
    return scheduler_counters(httpx.get(base_url + "/metrics", timeout=10).text)


def wait_ready(base_url: str, proc, timeout_s: float) -> float:
    t0 = time.time()
    with httpx.Client(timeout=2) as client:
        while time.time() - t0 < timeout_s:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with code {proc.returncode} before becoming ready")
            try:
                if client.get(base_url + "/health").status_code == 200:
                    return time.time() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    raise RuntimeError(f"server process {proc.pid} is alive but {base_url}/health did not answer within "
                       f"{timeout_s:.0f} s: port unreachable (bound elsewhere, firewalled) or the engine is "
                       "still starting; see server.log in the run directory")


def split_by_length(values: list[float], input_lens: list[int], threshold: int) -> dict:
    short = [v for v, n in zip(values, input_lens) if n < threshold]
    long_ = [v for v, n in zip(values, input_lens) if n >= threshold]
    out = {}
    for label, xs in (("short", short), ("long", long_)):
        if xs:
            out[f"{label}_count"] = len(xs)
            out[f"{label}_p50_ttft_ms"] = percentile(xs, 50) * 1e3
            out[f"{label}_p90_ttft_ms"] = percentile(xs, 90) * 1e3
    return out


def wait_client(client, server, timeout_s: float) -> int:
    """Wait for the load client; fail at once, naming the cause, if the server dies meanwhile."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        rc = client.poll()
        if rc is not None:
            return rc
        if server is not None and server.poll() is not None:
            raise RuntimeError(f"the vLLM server died mid-run (exit code {server.returncode}) while the "
                               "client was sending requests; see server.log in the run directory")
        time.sleep(0.2)
    raise RuntimeError(f"vllm bench serve did not finish within {timeout_s:.0f} s")


KEEP_KEYS = ("completed", "failed", "duration", "total_input_tokens", "total_output_tokens",
             "request_throughput", "output_throughput", "total_token_throughput", "max_concurrent_requests")


def summarize_bench_json(raw: dict, long_threshold: int | None) -> dict:
    out = {k: raw[k] for k in KEEP_KEYS if k in raw}
    for k, v in raw.items():
        if re.fullmatch(r"(mean|median|std|p\d+(\.\d+)?)_(ttft|tpot|itl|e2el)_ms", k):
            out[k] = v
    if long_threshold and raw.get("ttfts") and raw.get("input_lens"):
        out.update(split_by_length(raw["ttfts"], raw["input_lens"], long_threshold))
    # Per-request latencies for CDFs (kept, they are small).
    out["ttfts_s"] = raw.get("ttfts", [])
    out["itls_s"] = [x for req in raw.get("itls", []) for x in req]
    return out


def server_args(cfg: dict, variant: str, port: int) -> list[str]:
    """`vllm serve ...` arguments of a variant (tests parse them with vLLM's own parser)."""
    args = ["serve", cfg["model"], "--host", "127.0.0.1", "--port", str(port), "--seed", str(cfg["seed"]),
            *engine_flags({**cfg["engine_args"], **cfg["variant_defs"][variant]["engine_args"]})]
    if cfg.get("profile_dir"):
        args += ["--profiler-config", json.dumps({
            "profiler": "torch", "torch_profiler_dir": str(cfg["profile_dir"]),
            "torch_profiler_with_stack": False})]
    return args


def client_args(cfg: dict, name: str, meta: dict, port: int, run_dir: Path) -> list[str]:
    """`vllm bench serve ...` arguments for one workload (tests parse them with vLLM's own parser)."""
    rate = cfg["request_rate"].get(name, "inf")
    return ["bench", "serve", "--backend", "vllm",
            "--model", cfg["model"], "--host", "127.0.0.1", "--port", str(port),
            "--dataset-name", "custom", "--dataset-path", meta["jsonl"], "--custom-output-len", "-1",
            "--skip-chat-template", "--disable-shuffle", "--num-prompts", str(meta["num_requests"]),
            "--request-rate", str(rate), "--ignore-eos", "--temperature", "0", "--seed", str(cfg["seed"]),
            "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99",
            "--save-result", "--save-detailed", "--result-dir", str(run_dir),
            "--result-filename", f"bench-serve-{name}.json", "--disable-tqdm"]


def run_serve(cfg: dict, variant: str, workloads: dict[str, dict], run_dir: Path) -> dict:
    vdef = cfg["variant_defs"][variant]
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server_cmd = [sys.executable, "-m", "tools.vllm_cli", *server_args(cfg, variant, port)]
    env = processes.variant_env(vdef["engine"], vdef["env"])
    proc = processes.start(server_cmd, env, run_dir / "server.log")
    engine_cores, client_cores = processes.core_split()
    processes.pin(proc.pid, engine_cores)  # before it spawns EngineCore and workers
    result: dict = {"mode": "serve", "server_cmd": server_cmd, "workloads": {},
                    "cores": {"engine": sorted(engine_cores or []), "client": sorted(client_cores or [])}}
    try:
        with processes.TreeMemorySampler(proc.pid) as mem, processes.GpuMemorySampler(proc.pid) as gpu, \
                processes.TreeCpuSampler(proc.pid) as cpu:
            result["startup_s"] = wait_ready(base_url, proc, cfg["server_ready_timeout_s"])
            with KvUsageSampler(base_url) as kv:
                for name, meta in workloads.items():
                    result["workloads"][name] = measured_client(cfg, name, meta, port, run_dir, proc, client_cores)
            result["kv_cache_usage_max"] = kv.max_usage
        result["peak_rss_bytes"] = mem.peak_bytes
        result.update(gpu.result())
        # server tree over the whole run plus every load client: the run's own CPU
        result["run_cpu_s"] = cpu.cpu_s + sum(w.get("client_cpu_s") or 0 for w in result["workloads"].values())
    finally:
        processes.kill_tree(proc)
    return result


def measured_client(cfg: dict, name: str, meta: dict, port: int, run_dir: Path, server,
                    client_cores: set[int] | None = None) -> dict:
    """One client run plus what the server did for it: CPU seconds of its process tree (/proc)
    per output token, and scheduler counters (steps, tokens per step, preemptions)."""
    base_url = f"http://127.0.0.1:{port}"
    before, cpu0 = read_counters(base_url), processes.tree_cpu_seconds(server.pid)
    summary = run_client(cfg, name, meta, port, run_dir, server, client_cores)
    cpu_s = processes.tree_cpu_seconds(server.pid) - cpu0
    after = read_counters(base_url)
    sched = {k: after[k] - before[k] for k in after}
    if sched["steps"]:
        sched["tokens_per_step"] = sched["step_tokens"] / sched["steps"]
    summary["scheduler"] = sched
    summary["server_cpu_s"] = cpu_s
    if summary.get("total_output_tokens"):
        summary["cpu_s_per_output_token"] = cpu_s / summary["total_output_tokens"]
    return summary


def run_client(cfg: dict, name: str, meta: dict, port: int, run_dir: Path, server=None,
               cores: set[int] | None = None) -> dict:
    out_name = f"bench-serve-{name}.json"
    rate = cfg["request_rate"].get(name, "inf")
    cmd = [sys.executable, "-m", "tools.vllm_cli", *client_args(cfg, name, meta, port, run_dir)]
    client = processes.start(cmd, processes.variant_env("baseline"), run_dir / f"client-{name}.log")
    processes.pin(client.pid, cores)
    try:
        with processes.TreeCpuSampler(client.pid) as client_cpu:
            rc = wait_client(client, server, timeout_s=900)
    finally:
        if client.poll() is None:
            processes.kill_tree(client)
    if rc != 0:
        raise RuntimeError(f"vllm bench serve failed for {name} (rc={rc}); see {run_dir}/client-{name}.log")
    raw = json.loads((run_dir / out_name).read_text())
    spec = meta["spec"]
    summary = summarize_bench_json(raw, workloads_mod.long_threshold(spec))
    summary["request_rate"] = rate
    summary["client_cpu_s"] = client_cpu.cpu_s
    if summary.get("failed"):
        raise RuntimeError(f"{summary['failed']} request(s) failed in {name}; see {run_dir}")
    return summary
