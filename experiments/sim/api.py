"""Python API of the simulator: `simulate` one point, `run_jobs` many, `write_bench` the bench layout.

    from experiments.sim import api
    r = api.simulate("patched", {"long_prefill_token_threshold": 512, "short_prefill_first": "bounded"},
                     "mixed_long_short",
                     rate=16, seed=0, cost_model="cpu")
    r["summary"]["short_p90_ttft_ms"], r["bench_serve"]["output_throughput"], r["label"]

A variant is a bench variant name (`experiments.bench.presets.VARIANTS`) or a def
{"engine": "baseline"|"patched", "env": {...}, "engine_args": {...}}. Each engine
runs in its own process started with the bench's own environment for it
(`experiments.bench.processes.variant_env`: build/vllm-patched first on
PYTHONPATH for "patched"), so the real scheduler of that variant makes every
decision. Engine arguments are merged as the bench merges them (preset's CPU
arguments, then the variant's, then the caller's) and passed through to
`EngineArgs`, so a patch's new knob needs no change here.
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments.bench import presets, processes, serve, workloads
from experiments.sim.arrivals import arrival_times
from experiments.sim.errors import SimInputError
from tools import pins

BASE_ENGINE_ARGS = {**presets.CPU_ENGINE_ARGS, "seed": 0}
CHILD_TIMEOUT_S = 1800


SERVER_ONLY_ENV = ("PYTHONPATH", "SIM_SERVED_STEPS")


def resolve_variant(variant: str | dict) -> dict:
    if isinstance(variant, dict):
        vdef = {"engine": variant.get("engine"), "env": dict(variant.get("env", {})),
                "engine_args": dict(variant.get("engine_args", {})),
                **({"priority_from": variant["priority_from"]} if variant.get("priority_from") else {})}
    elif variant in presets.VARIANTS:
        vdef = copy.deepcopy(presets.VARIANTS[variant])
    else:
        raise SimInputError(f"unknown variant {variant!r}; known: {', '.join(presets.VARIANTS)} "
                            "or a def {'engine': 'baseline'|'patched', 'engine_args': {...}}")
    if vdef["engine"] not in ("baseline", "patched"):
        raise SimInputError(f"variant engine must be baseline or patched, got {vdef['engine']!r}")
    # A bench's variant may carry how its server was run (the served step hook: SIM_SERVED_STEPS and a
    # PYTHONPATH naming the checkout it ran from); the simulator picks its engine by `engine` alone.
    for key in SERVER_ONLY_ENV:
        vdef["env"].pop(key, None)
    return vdef


def workload_rows(name: str, overrides: dict | None = None, seed: int = 0) -> tuple[list[dict], dict]:
    """The bench's workload `name` (any name `experiments.bench.workloads` defines), as the bench makes it."""
    if name not in workloads.SPECS:
        raise SimInputError(f"missing workload {name!r}: experiments.bench.workloads defines "
                            f"{sorted(workloads.SPECS)}")
    wl = workloads.generate(workloads.make_spec(name, **(overrides or {})), seed=seed)
    rows = [{"request_id": r["request_id"], "kind": r["kind"], "prompt": r["prompt"],
             "output_tokens": r["output_tokens"]} for r in wl.rows]
    return rows, {"name": name, "seed": seed, "spec": wl.spec, "fingerprint": wl.fingerprint,
                  "num_requests": len(rows)}


def make_job(variant, engine_args: dict | None, workload: str, rate, seed: int, cost_model: str, *,
             model: str | None = None, workload_overrides: dict | None = None, burstiness: float = 1.0,
             stall_steps: int = 64, spec_acceptance: float | None = None, priority_from: str | None = None) -> dict:
    """One simulation. Speculative decoding: `speculative_config` in the engine arguments (as for `vllm
    serve`; the scheduler reserves and schedules its draft tokens) and `spec_acceptance`, the chance each
    draft token is accepted (no drafter runs: `driver.accepted_drafts`). priority_from="uncached": each
    request's priority is its prompt's tokens beyond the longest prefix an earlier prompt shares
    (`driver.uncached_estimates`), for `scheduling_policy="priority"`."""
    vdef = resolve_variant(variant)
    model = model or presets.EMBEDDED_MODEL
    if not (Path(model) / "config.json").is_file():
        raise SimInputError(f"unknown model {model!r}: no config.json in that directory")
    rows, meta = workload_rows(workload, workload_overrides)
    priority_from = priority_from or vdef.get("priority_from")
    args = {**BASE_ENGINE_ARGS, **vdef["engine_args"], **(engine_args or {})}
    if (args.get("speculative_config") is None) != (spec_acceptance is None):
        raise SimInputError("speculative decoding needs both engine_args['speculative_config'] and spec_acceptance "
                            "(the chance each draft token is accepted: the simulator runs no drafter)")
    if spec_acceptance is not None and not 0.0 <= spec_acceptance <= 1.0:
        raise SimInputError(f"spec_acceptance must be within [0, 1], got {spec_acceptance}")
    if priority_from not in (None, "uncached"):
        raise SimInputError(f"priority_from must be None or 'uncached', got {priority_from!r}")
    if priority_from and args.get("scheduling_policy") != "priority":
        raise SimInputError("priority_from needs engine_args['scheduling_policy'] = 'priority' (under fcfs the "
                            "scheduler ignores request priorities)")
    return {"variant": vdef, "model": model, "engine_args": args, "workload": meta, "rows": rows,
            "arrivals": arrival_times(len(rows), rate, seed, burstiness), "rate": str(rate), "seed": seed,
            "burstiness": burstiness, "cost_model": cost_model, "stall_steps": stall_steps,
            "spec_acceptance": spec_acceptance, "priority_from": priority_from}


def engine_series(engine: str) -> str | None:
    """Patch series hash build/vllm-patched was built from (None for the baseline engine): the lead
    rebuilds it as the series changes, so every simulated and recorded result names the one it ran."""
    stamp = pins.PATCHED_ENGINE_DIR / ".llm-infra-series"
    return stamp.read_text().split()[0] if engine == "patched" and stamp.exists() else None


def _run_child(engine: str, env_extra: dict, jobs: list[dict], log_dir: Path) -> list[dict]:
    env = processes.variant_env(engine, env_extra)
    env["VLLM_LOGGING_LEVEL"] = "ERROR"
    jobs_path, out_path = log_dir / f"jobs-{engine}.json", log_dir / f"out-{engine}.json"
    jobs_path.write_text(json.dumps({"jobs": jobs}))
    with open(log_dir / f"child-{engine}.log", "wb") as log:
        rc = subprocess.run([sys.executable, "-m", "experiments.sim.child", str(jobs_path), str(out_path)],
                            env=env, cwd=pins.REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                            timeout=CHILD_TIMEOUT_S).returncode
    if rc != 0 or not out_path.exists():
        tail = (log_dir / f"child-{engine}.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"simulator process for the {engine} engine failed (rc={rc}):\n{tail}")
    return json.loads(out_path.read_text())["results"]


def run_jobs(jobs: list[dict]) -> list[dict]:
    """Run jobs grouped by (engine, env): one process per group; results in the jobs' order.
    A job that failed raises here, naming the job and the cause (never a partial result)."""
    groups: dict[str, list[int]] = {}
    for i, job in enumerate(jobs):
        key = json.dumps([job["variant"]["engine"], job["variant"]["env"]], sort_keys=True)
        groups.setdefault(key, []).append(i)
    results: list[dict | None] = [None] * len(jobs)
    with tempfile.TemporaryDirectory(prefix="sim-") as tmp:
        for key, idx in groups.items():
            engine, env = json.loads(key)
            t0 = time.perf_counter()
            outs = _run_child(engine, env, [jobs[i] for i in idx], Path(tmp))
            wall = time.perf_counter() - t0
            for i, out in zip(idx, outs):
                if not out["ok"]:
                    j = jobs[i]
                    raise SimInputError(f"simulation of {j['variant']} on {j['workload']['name']} "
                                        f"(rate {j['rate']}, seed {j['seed']}) failed: {out['error']}")
                out["process_wall_s"] = wall
                out["series"] = engine_series(engine)
                out["process_jobs"] = len(idx)
                results[i] = out
    for job, out in zip(jobs, results):
        out["summary"] = run_summary(job, out)
    return results


def run_summary(job: dict, out: dict) -> dict:
    """What the bench keeps of a `vllm bench serve` JSON (its own summarize_bench_json), plus the label."""
    summary = serve.summarize_bench_json(out["bench_serve"], workloads.request_kinds(job["rows"]))
    summary["request_rate"] = job["rate"]
    summary["simulated"] = out["label"]
    return summary


def simulate(variant, engine_args: dict | None, workload: str, rate, seed: int = 0, cost_model: str = "cpu",
             **kwargs) -> dict:
    """One simulated `vllm bench serve` run: bench_serve (the client's JSON), summary (the bench's
    per-workload record), steps (per-step batch composition), scheduler (resolved config), label."""
    return run_jobs([make_job(variant, engine_args, workload, rate, seed, cost_model, **kwargs)])[0]


def sweep(points: dict[str, dict], workload: str, rates: list, seeds: list[int], cost_model: str = "cpu",
          **kwargs) -> list[dict]:
    """Every (point, rate, seed): [{point, rate, seed, summary, label, ...}], one process per engine."""
    jobs, keys = [], []
    for name, vdef in points.items():
        for rate in rates:
            for seed in seeds:
                jobs.append(make_job(vdef, None, workload, rate, seed, cost_model, **kwargs))
                keys.append({"point": name, "rate": str(rate), "seed": seed})
    return [{**k, **r} for k, r in zip(keys, run_jobs(jobs))]
