"""The load client of one serving run: greedy gate, warm-up, then timed passes, in one process.

Started by experiments.bench.serve, always under the baseline vLLM so all variants are
measured by identical code:
    python -m experiments.bench.serve_client <plan.json> <result.json>

One process for the whole run because importing vLLM costs ~10 CPU-seconds on 2 cores: paid
once, not once per pass. Every pass is vLLM's own benchmark (`vllm.benchmarks.serve.main`, its
arguments parsed by its own parser, exactly what `vllm bench serve` runs). A plan names one
server, or several (one per variant, all up at once) whose passes alternate so that adjacent
passes of different variants see the same machine (`interleave: passes` in a preset). Before
each pass the server's prefix cache is emptied (POST /reset_prefix_cache, a route of vLLM's dev
mode, which the bench server enables), so every pass of a workload does the same work. Around
each pass the client reads what the server did for it: CPU seconds of the server's process tree
(/proc) and the scheduler counters on /metrics.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx

from experiments.bench import processes
from experiments.bench.engine_offline import counter_delta, gate_prompts


def reset_prefix_cache(base_url: str) -> None:
    r = httpx.post(base_url + "/reset_prefix_cache", timeout=60)
    if r.status_code != 200:
        raise RuntimeError(f"POST {base_url}/reset_prefix_cache answered {r.status_code}: the server must run "
                           "with VLLM_SERVER_DEV_MODE=1 (experiments.bench.serve sets it)")


def model_vocab_size(model: str) -> int:
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(model)
    return getattr(cfg, "get_text_config", lambda: cfg)().vocab_size


def greedy_gate(base_url: str, model: str, gate: dict, seed: int) -> list[list[int]]:
    """Greedy token ids for the gate's fixed token-id prompts (one batched completions request)."""
    prompts = gate_prompts(gate["num_prompts"], gate["prompt_len"], model_vocab_size(model), seed)
    body = {"model": model, "prompt": prompts, "max_tokens": gate["max_tokens"], "temperature": 0,
            "ignore_eos": True, "return_token_ids": True}
    r = httpx.post(base_url + "/v1/completions", json=body, timeout=300)
    r.raise_for_status()
    choices = sorted(r.json()["choices"], key=lambda c: c["index"])
    return [list(c["token_ids"]) for c in choices]


def run_benchmark(args: list[str]) -> dict:
    """One `vllm bench serve` run in this process (the CLI's own parser and entry point)."""
    from vllm.benchmarks.serve import add_cli_args, main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    return main(parser.parse_args(args))


def measured_pass(base_url: str, server_pid: int | None, args: list[str]) -> dict:
    """One timed pass plus the server's CPU seconds and scheduler-counter deltas over it."""
    from experiments.bench.serve import read_counters

    before = read_counters(base_url)
    cpu0 = processes.tree_cpu_seconds(server_pid) if server_pid else None
    run_benchmark(args)
    out: dict = {}
    if server_pid:
        out["server_cpu_s"] = processes.tree_cpu_seconds(server_pid) - cpu0
    out["scheduler"] = counter_delta(read_counters(base_url), before)  # the offline runs' own delta
    return out


def run_plan(plan: dict) -> dict:
    """plan["servers"]: {name: {base_url, server_pid, warmup: [args]}}; plan["passes"]: each names its server.
    Every server is gated and warmed up before the first timed pass of any."""
    servers = plan["servers"]
    result: dict = {"passes": [], "gate_tokens": {}}
    for name, srv in servers.items():
        if plan.get("gate"):
            result["gate_tokens"][name] = greedy_gate(srv["base_url"], plan["model"], plan["gate"], plan["seed"])
        for args in srv.get("warmup", []):
            run_benchmark(args)
    for p in plan["passes"]:
        srv = servers[p["server"]]
        if plan.get("reset_prefix_cache", True):
            reset_prefix_cache(srv["base_url"])
        rec = measured_pass(srv["base_url"], srv.get("server_pid"), p["args"])
        result["passes"].append({k: p[k] for k in ("server", "workload", "pass", "result_file")} | rec)
    return result


def main() -> None:
    from tools.vllm_cli import use_vllm_cpu_version

    use_vllm_cpu_version()
    plan_path, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    result = run_plan(json.loads(plan_path.read_text()))
    from experiments.common.results import write_json_atomic

    write_json_atomic(out_path, result)


if __name__ == "__main__":
    main()
