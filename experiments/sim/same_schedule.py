"""Which arms of a comparison make the same scheduling decisions: vLLM's real Scheduler of each arm
replays the same arrival traces on the virtual clock, and arms whose every step schedules the same
tokens for the same requests are one group.

    from experiments.sim import same_schedule
    same_schedule.groups({"a": vdef_a, "b": vdef_b, ...}, "long_docs", rate=2, seeds=[0, 1])

Two arms in one group differ in nothing the scheduler does on that workload, so whatever their
served runs measure apart is noise: the bench pools those differences with its A/A arm's
(experiments.bench.aggregate) instead of reading them as an effect. A flag that is off by default
shows its neutrality the same way (the patched engine, flag off, in the baseline's group).

The replay is exact for the simulated timing only: a real run's steps take other times, so a rule
that depends on timing could still split two arms the replay put together. The rules compared here
(token budgets, thresholds, caps) depend on the queue's contents at each step, which the same
arrivals reproduce step for step until the arms' decisions first differ.
"""
from __future__ import annotations

import hashlib
import json

from experiments.sim import api
from experiments.sim.errors import SimInputError


def decision_digest(steps: list[dict]) -> str:
    """One hash of a run's decisions: every step's {request: scheduled tokens}, in order."""
    blob = json.dumps([s["scheduled"] for s in steps], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def digests(points: dict[str, dict], workload: str, rate, seeds: list[int], cost_model: str = "cpu",
            **job_kwargs) -> dict[str, list[str]]:
    """{arm: [decision digest per seed]}: each arm replayed on the same arrivals of every seed."""
    jobs, keys = [], []
    for name, vdef in points.items():
        for seed in seeds:
            job = api.make_job(vdef, None, workload, rate, seed, cost_model, **job_kwargs)
            job["record_decisions"] = True
            jobs.append(job)
            keys.append(name)
    out: dict[str, list[str]] = {name: [] for name in points}
    for name, result in zip(keys, api.run_jobs(jobs)):
        out[name].append(decision_digest(result["steps"]))
    return out


def group_by_digest(per_arm: dict[str, list[str]]) -> list[list[str]]:
    """Arms with equal digests on every seed, in the arms' order; singletons included."""
    groups: dict[tuple, list[str]] = {}
    for name, ds in per_arm.items():
        groups.setdefault(tuple(ds), []).append(name)
    return list(groups.values())


def groups(points: dict[str, dict], workload: str, rate, seeds: list[int], cost_model: str = "cpu",
           **job_kwargs) -> list[list[str]]:
    return group_by_digest(digests(points, workload, rate, seeds, cost_model, **job_kwargs))


BENCH_SEEDS = (0, 1)


def for_bench(cfg: dict, seeds: tuple[int, ...] = BENCH_SEEDS, engines: tuple[str, ...] = ("baseline", "patched")) -> dict:
    """A bench's same-schedule groups per served workload, from its resolved config (presets.resolve):
    {"workloads": {workload: [[arm, ...], ...]}, "seeds", "cost_model"}, or {"skipped": reason} where the
    replay cannot stand for the bench (no served workload, not the CPU engine on one rank, a model
    without a local config)."""
    served = {w: o for w, o in cfg["workloads"].items() if w in cfg.get("request_rate", {})}
    if "serve" not in cfg["modes"] or not served:
        return {"skipped": "no served workload"}
    if cfg["backend"] != "cpu" or cfg.get("distributed"):
        return {"skipped": "the replay configures vLLM's scheduler as the CPU engine on one rank; this bench "
                           f"ran backend {cfg['backend']} with {cfg.get('distributed') or 'one rank'}"}
    engine_args = {k: v for k, v in cfg["engine_args"].items() if k != "load_format"}
    # Arms with the same engine and arguments (e.g. the A/A pair) need no replay: one stands for all.
    same_def: dict[str, list[str]] = {}
    for v, d in cfg["variant_defs"].items():
        if d["engine"] not in engines:
            continue
        same_def.setdefault(json.dumps([d["engine"], d["engine_args"]], sort_keys=True), []).append(v)
    points = {names[0]: {"engine": cfg["variant_defs"][names[0]]["engine"], "env": {},
                         "engine_args": {**engine_args, **cfg["variant_defs"][names[0]]["engine_args"]}}
              for names in same_def.values()}
    members = {names[0]: names for names in same_def.values()}
    out = {}
    try:
        for workload, overrides in served.items():
            found = [[n] for n in points] if len(points) == 1 else groups(
                points, workload, cfg["request_rate"][workload], list(seeds), "cpu", model=cfg["model"],
                workload_overrides=overrides or None)
            out[workload] = [[m for n in g for m in members[n]] for g in found]
    except SimInputError as exc:
        return {"skipped": f"replay refused: {exc}"}
    return {"workloads": out, "seeds": list(seeds), "cost_model": "cpu", "engines": list(engines)}


def describe(found: dict) -> str:
    """One line: the groups of more than one arm per workload, or why none were looked for."""
    if "skipped" in found:
        return f"not checked ({found['skipped']})"
    parts = []
    for workload, gs in found["workloads"].items():
        same = [" = ".join(g) for g in gs if len(g) > 1]
        parts.append(f"{workload}: {'; '.join(same) if same else 'every arm schedules differently'}")
    return ", ".join(parts) + f" (seeds {found['seeds']}, {found['cost_model']} cost model)"
