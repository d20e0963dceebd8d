"""One serving run: `vllm serve` on 127.0.0.1, then one load client process
(experiments.bench.serve_client) that checks greedy outputs, warms the server up and runs
`serve_passes` timed passes of `vllm bench serve` per workload, each from an empty prefix cache.

The server runs the variant's engine; the load client always runs the
baseline (installed) vLLM so both variants are measured by identical code.
"""
from __future__ import annotations

import contextlib
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


def split_by_class(raw: dict, kinds: list[str]) -> dict:
    """Per class ("short"/"long", the workload's own label of each request, in the client's order:
    --disable-shuffle): count, TTFT p50/p90/p99 and median TPOT (a request's mean inter-token gap)."""
    ttfts, itls = raw.get("ttfts") or [], raw.get("itls") or []
    if len(ttfts) != len(kinds):
        return {}
    out = {}
    for label in ("short", "long"):
        idx = [i for i, k in enumerate(kinds) if k == label]
        if not idx:
            continue
        xs = [ttfts[i] for i in idx]
        out[f"{label}_count"] = len(xs)
        for q in (50, 90, 99):
            out[f"{label}_p{q}_ttft_ms"] = percentile(xs, q) * 1e3
        tpots = [sum(itls[i]) / len(itls[i]) for i in idx if i < len(itls) and itls[i]]
        if tpots:
            out[f"{label}_median_tpot_ms"] = percentile(tpots, 50) * 1e3
    return out


def wait_client(client, servers, timeout_s: float) -> int:
    """Wait for the load client; fail at once, naming the cause, if a server dies meanwhile."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        rc = client.poll()
        if rc is not None:
            return rc
        for server in servers:
            if server.poll() is not None:
                raise RuntimeError(f"the vLLM server died mid-run (exit code {server.returncode}) "
                                   "while the client was sending requests; see server.log in the run directory")
        time.sleep(0.2)
    raise RuntimeError(f"vllm bench serve did not finish within {timeout_s:.0f} s")


KEEP_KEYS = ("completed", "failed", "duration", "total_input_tokens", "total_output_tokens",
             "request_throughput", "output_throughput", "total_token_throughput", "max_concurrent_requests")


def summarize_bench_json(raw: dict, kinds: list[str] | None) -> dict:
    out = {k: raw[k] for k in KEEP_KEYS if k in raw}
    for k, v in raw.items():
        if re.fullmatch(r"(mean|median|std|p\d+(\.\d+)?)_(ttft|tpot|itl|e2el)_ms", k):
            out[k] = v
    if kinds:
        out.update(split_by_class(raw, kinds))
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
        args += ["--profiler-config", json.dumps(processes.torch_profiler_config(
            Path(cfg["profile_dir"]) / run_name, cfg["variant_defs"][variant]["engine"]))]
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


def client_plan(cfg: dict, workloads: dict[str, dict], servers: list[dict]) -> dict:
    """What the run's one client process does: per server the greedy gate and one short warm-up pass
    per workload (not recorded), then `serve_passes` timed passes of each workload, workloads
    interleaved. `servers`: [{name, port, pid, run_dir}], one per variant; with several, pass k of a
    workload runs on every server back to back, in reverse order every other k (A B B A), so
    each variant's pass k has the other's beside it in time. A pass's JSON goes to its server's run_dir."""
    passes = []
    for k in range(1, int(cfg.get("serve_passes", 1)) + 1):
        for name, meta in workloads.items():
            for srv in (servers if k % 2 else servers[::-1]):
                fname = f"bench-serve-{name}-pass{k}.json"
                args = client_args(cfg, name, meta, srv["port"], srv["run_dir"], result_filename=fname)
                if cfg.get("profile_dir") and k == 1 and not any(p["server"] == srv["name"] for p in passes):
                    args.append("--profile")  # the server's torch profiler over its first timed pass
                passes.append({"server": srv["name"], "workload": name, "pass": k, "result_file": fname, "args": args})
    warm = int(cfg.get("serve_warmup_prompts", 0))
    return {"model": cfg["model"], "seed": cfg["seed"], "gate": cfg.get("gate"), "reset_prefix_cache": True,
            "servers": {srv["name"]: {"base_url": f"http://127.0.0.1:{srv['port']}", "server_pid": srv.get("pid"),
                                      "warmup": [client_args(cfg, n, m, srv["port"], srv["run_dir"],
                                                             num_prompts=min(warm, m["num_requests"]))
                                                 for n, m in workloads.items()] if warm else []}
                        for srv in servers},
            "passes": passes}


def run_client_plan(plan: dict, run_dir: Path, servers=(), cores: set[int] | None = None,
                    timeout_s: float = 1800) -> dict:
    """Run experiments.bench.serve_client on a plan; its result plus the client's own CPU seconds.
    `servers`: the server processes it talks to (a dead one stops the run at once, named)."""
    plan_path, out_path = run_dir / "client-plan.json", run_dir / "client-result.json"
    write_json_atomic(plan_path, plan)
    cmd = [sys.executable, "-m", "experiments.bench.serve_client", str(plan_path), str(out_path)]
    client = processes.start(cmd, processes.variant_env("baseline"), run_dir / "client.log")
    processes.pin(client.pid, cores)
    try:
        with processes.TreeCpuSampler(client.pid) as client_cpu:
            rc = wait_client(client, servers, timeout_s=timeout_s)
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
                                       meta.get("kinds"))
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
    """One server start of one variant: its passes back to back."""
    return run_serve_group(cfg, [variant], workloads, {variant: run_dir})[variant]


def start_server(cfg: dict, variant: str, run_dir: Path) -> dict:
    """`vllm serve` of a variant on a free loopback port, pinned per its core layout (before it
    spawns EngineCore and workers)."""
    vdef = cfg["variant_defs"][variant]
    port = free_port()
    server_cmd = [sys.executable, "-m", "tools.vllm_cli", *server_args(cfg, variant, port, run_dir.name)]
    layout = vdef.get("core_layout") or cfg.get("core_layout", "auto")  # a variant's own layout wins
    dist = cfg.get("distributed", {})
    ranks = (dist.get("tensor_parallel_size", 1) * dist.get("pipeline_parallel_size", 1)
             * dist.get("data_parallel_size", 1))
    cores = processes.core_layout(layout, ranks=ranks)
    # Dev mode for POST /reset_prefix_cache between passes (loopback only; same for every variant).
    env = processes.variant_env(vdef["engine"], {"VLLM_SERVER_DEV_MODE": "1", **cores["env"], **vdef["env"]})
    proc = processes.start(server_cmd, env, run_dir / "server.log")
    processes.pin(proc.pid, cores["server"])
    return {"name": variant, "port": port, "pid": proc.pid, "proc": proc, "run_dir": run_dir, "cmd": server_cmd,
            "layout": layout, "cores": cores}


def run_serve_group(cfg: dict, variants: list[str], workloads: dict[str, dict], run_dirs: dict[str, Path]) -> dict:
    """Servers of `variants` up at once, one client alternating their passes (client_plan); per variant
    the same result a lone server gives, plus `interleaved_with`. The client's files and CPU time go
    to the first variant's run; its CPU seconds are split evenly in each run's `run_cpu_s`."""
    servers: list[dict] = []
    results: dict[str, dict] = {}
    try:
        with contextlib.ExitStack() as stack:
            samplers = {}
            for v in variants:  # one after the other: each start-up is timed alone, as in a lone run
                srv = start_server(cfg, v, run_dirs[v])
                servers.append(srv)
                samplers[v] = [stack.enter_context(s(srv["pid"])) for s in
                               (processes.TreeMemorySampler, processes.GpuMemorySampler, processes.TreeCpuSampler)]
                c = srv["cores"]
                results[v] = {"mode": "serve", "server_cmd": srv["cmd"], "workloads": {},
                              "cores": {"layout": srv["layout"], "engine": sorted(c["server"] or []),
                                        "client": sorted(c["client"] or []), "env": c["env"]},
                              "startup_s": wait_ready(f"http://127.0.0.1:{srv['port']}", srv["proc"],
                                                      cfg["server_ready_timeout_s"])}
                if len(variants) > 1:
                    results[v]["interleaved_with"] = [o for o in variants if o != v]
            with contextlib.ExitStack() as kv_stack:
                kv = {srv["name"]: kv_stack.enter_context(KvUsageSampler(f"http://127.0.0.1:{srv['port']}"))
                      for srv in servers}
                client = run_client_plan(client_plan(cfg, workloads, servers), run_dirs[variants[0]],
                                         [s["proc"] for s in servers], servers[0]["cores"]["client"])
        for srv in servers:
            v, res = srv["name"], results[srv["name"]]
            mem, gpu, cpu = samplers[v]
            res["kv_cache_usage_max"] = kv[v].max_usage
            for name, meta in workloads.items():
                passes = [p for p in client["passes"] if p["workload"] == name and p["server"] == v]
                res["workloads"][name] = summarize_workload(cfg, name, meta, passes, srv["run_dir"])
            if v in client.get("gate_tokens", {}):
                res["gate_tokens"] = client["gate_tokens"][v]
            res["client_cpu_s"] = client["client_cpu_s"] / len(servers)
            res["peak_rss_bytes"] = mem.peak_bytes
            res.update(gpu.result())
            # server tree over the whole run plus its share of the load client: the run's own CPU
            res["run_cpu_s"] = cpu.cpu_s + res["client_cpu_s"]
    finally:
        for srv in servers:
            processes.kill_tree(srv["proc"])
    return results
