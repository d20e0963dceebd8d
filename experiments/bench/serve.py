"""One serving run: `vllm serve` on 127.0.0.1, then one load client process
(experiments.bench.serve_client) that checks greedy outputs, warms the server up and runs
`serve_passes` timed passes of `vllm bench serve` per workload, each from an empty prefix cache.

The server runs the variant's engine; the load client always runs the
baseline (installed) vLLM so both variants are measured by identical code.
"""
from __future__ import annotations

import json
import re
import statistics
import socket
import sys
import time
from pathlib import Path

import httpx

from experiments.bench import processes
from experiments.bench import workloads as workloads_mod
from experiments.common.results import write_json_atomic
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


def server_args(cfg: dict, variant: str, port: int, run_name: str = "") -> list[str]:
    """`vllm serve ...` arguments of a variant (tests parse them with vLLM's own parser); with a
    profile dir, the torch profiler writes under <profile_dir>/<run_name> as in offline runs."""
    args = ["serve", cfg["model"], "--host", "127.0.0.1", "--port", str(port), "--seed", str(cfg["seed"]),
            *engine_flags({**cfg["engine_args"], **cfg["variant_defs"][variant]["engine_args"]})]
    if cfg.get("profile_dir"):
        args += ["--profiler-config", json.dumps({
            "profiler": "torch", "torch_profiler_dir": str((Path(cfg["profile_dir"]) / run_name).resolve()),
            "torch_profiler_with_stack": False})]
    return args


def client_args(cfg: dict, name: str, meta: dict, port: int, run_dir: Path, *, result_filename: str | None = None,
                num_prompts: int | None = None) -> list[str]:
    """`vllm bench serve ...` arguments for one pass over a workload (tests parse them with vLLM's own
    parser); `result_filename=None` with `num_prompts` set: a warm-up pass whose result is not saved."""
    rate = cfg["request_rate"].get(name, "inf")
    args = ["--backend", "vllm",
            "--model", cfg["model"], "--host", "127.0.0.1", "--port", str(port),
            "--dataset-name", "custom", "--dataset-path", meta["jsonl"], "--custom-output-len", "-1",
            "--skip-chat-template", "--disable-shuffle", "--num-prompts", str(num_prompts or meta["num_requests"]),
            "--request-rate", str(rate), "--ignore-eos", "--temperature", "0", "--seed", str(cfg["seed"]),
            "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99", "--disable-tqdm"]
    if result_filename:
        args += ["--save-result", "--save-detailed", "--result-dir", str(run_dir), "--result-filename", result_filename]
    return args


def client_plan(cfg: dict, workloads: dict[str, dict], port: int, run_dir: Path, server_pid: int | None) -> dict:
    """What the run's one client process does: the greedy gate, one short warm-up pass per workload
    (not recorded), then `serve_passes` timed passes of each workload, workloads interleaved."""
    passes = []
    for k in range(1, int(cfg.get("serve_passes", 1)) + 1):
        for name, meta in workloads.items():
            fname = f"bench-serve-{name}-pass{k}.json"
            args = client_args(cfg, name, meta, port, run_dir, result_filename=fname)
            if cfg.get("profile_dir") and not passes:
                args.append("--profile")  # the server's torch profiler over the first timed pass
            passes.append({"workload": name, "pass": k, "result_file": fname, "args": args})
    warm = int(cfg.get("serve_warmup_prompts", 0))
    return {"base_url": f"http://127.0.0.1:{port}", "server_pid": server_pid, "model": cfg["model"],
            "seed": cfg["seed"], "gate": cfg.get("gate"), "reset_prefix_cache": True,
            "warmup": [client_args(cfg, n, m, port, run_dir, num_prompts=min(warm, m["num_requests"]))
                       for n, m in workloads.items()] if warm else [],
            "passes": passes}


def run_client_plan(plan: dict, run_dir: Path, server=None, cores: set[int] | None = None,
                    timeout_s: float = 1800) -> dict:
    """Run experiments.bench.serve_client on a plan; its result plus the client's own CPU seconds."""
    plan_path, out_path = run_dir / "client-plan.json", run_dir / "client-result.json"
    write_json_atomic(plan_path, plan)
    cmd = [sys.executable, "-m", "experiments.bench.serve_client", str(plan_path), str(out_path)]
    client = processes.start(cmd, processes.variant_env("baseline"), run_dir / "client.log")
    processes.pin(client.pid, cores)
    try:
        with processes.TreeCpuSampler(client.pid) as client_cpu:
            rc = wait_client(client, server, timeout_s=timeout_s)
    finally:
        if client.poll() is None:
            processes.kill_tree(client)
    if rc != 0 or not out_path.exists():
        tail = (run_dir / "client.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the load client failed (rc={rc}); see {run_dir}/client.log, tail:\n{tail}")
    return {**json.loads(out_path.read_text()), "client_cpu_s": client_cpu.cpu_s}


# Per-pass figures kept beside the run's median, so the spread inside one engine start stays visible.
PASS_KEYS = ("duration", "output_throughput", "median_ttft_ms", "p90_ttft_ms", "median_tpot_ms",
             "short_p90_ttft_ms", "cpu_s_per_output_token")


def summarize_workload(cfg: dict, name: str, meta: dict, passes: list[dict], run_dir: Path) -> dict:
    """One workload of a run: each metric the median over its timed passes (all passes kept under
    `passes`); per-request latencies pooled over the passes for CDFs."""
    per_pass = []
    for p in passes:
        summary = summarize_bench_json(json.loads((run_dir / p["result_file"]).read_text()),
                                       workloads_mod.long_threshold(meta["spec"]))
        if summary.get("failed"):
            raise RuntimeError(f"{summary['failed']} request(s) failed in {name} pass {p['pass']}; see {run_dir}")
        summary["scheduler"] = p["scheduler"]
        if p.get("server_cpu_s") is not None:
            summary["server_cpu_s"] = p["server_cpu_s"]
            if summary.get("total_output_tokens"):
                summary["cpu_s_per_output_token"] = p["server_cpu_s"] / summary["total_output_tokens"]
        per_pass.append(summary)
    out: dict = {}
    for key in per_pass[0]:
        vals = [s.get(key) for s in per_pass]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            out[key] = statistics.median(vals)
    out["scheduler"] = {k: statistics.median(s["scheduler"][k] for s in per_pass)
                        for k in per_pass[0]["scheduler"]}
    out["ttfts_s"] = [x for s in per_pass for x in s["ttfts_s"]]
    out["itls_s"] = [x for s in per_pass for x in s["itls_s"]]
    out["pass_duration_s"] = [s.get("duration") for s in per_pass]
    out["passes"] = [{k: s.get(k) for k in PASS_KEYS if s.get(k) is not None} for s in per_pass]
    out["request_rate"] = cfg["request_rate"].get(name, "inf")
    return out


def run_serve(cfg: dict, variant: str, workloads: dict[str, dict], run_dir: Path) -> dict:
    vdef = cfg["variant_defs"][variant]
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server_cmd = [sys.executable, "-m", "tools.vllm_cli", *server_args(cfg, variant, port, run_dir.name)]
    # Dev mode for POST /reset_prefix_cache between passes (loopback only; same for every variant).
    layout = vdef.get("core_layout") or cfg.get("core_layout", "auto")  # a variant's own layout wins
    dist = cfg.get("distributed", {})
    ranks = (dist.get("tensor_parallel_size", 1) * dist.get("pipeline_parallel_size", 1)
             * dist.get("data_parallel_size", 1))
    cores = processes.core_layout(layout, ranks=ranks)
    env = processes.variant_env(vdef["engine"], {"VLLM_SERVER_DEV_MODE": "1", **cores["env"], **vdef["env"]})
    proc = processes.start(server_cmd, env, run_dir / "server.log")
    engine_cores, client_cores = cores["server"], cores["client"]
    processes.pin(proc.pid, engine_cores)  # before it spawns EngineCore and workers
    result: dict = {"mode": "serve", "server_cmd": server_cmd, "workloads": {},
                    "cores": {"layout": layout, "engine": sorted(engine_cores or []),
                              "client": sorted(client_cores or []), "env": cores["env"]}}
    try:
        with processes.TreeMemorySampler(proc.pid) as mem, processes.GpuMemorySampler(proc.pid) as gpu, \
                processes.TreeCpuSampler(proc.pid) as cpu:
            result["startup_s"] = wait_ready(base_url, proc, cfg["server_ready_timeout_s"])
            with KvUsageSampler(base_url) as kv:
                client = run_client_plan(client_plan(cfg, workloads, port, run_dir, proc.pid), run_dir, proc, client_cores)
            result["kv_cache_usage_max"] = kv.max_usage
        for name, meta in workloads.items():
            passes = [p for p in client["passes"] if p["workload"] == name]
            result["workloads"][name] = summarize_workload(cfg, name, meta, passes, run_dir)
        if "gate_tokens" in client:
            result["gate_tokens"] = client["gate_tokens"]
        result["client_cpu_s"] = client["client_cpu_s"]
        result["peak_rss_bytes"] = mem.peak_bytes
        result.update(gpu.result())
        # server tree over the whole run plus the load client: the run's own CPU
        result["run_cpu_s"] = cpu.cpu_s + client["client_cpu_s"]
    finally:
        processes.kill_tree(proc)
    return result
