"""Step-by-step decision match: the simulator's scheduled tokens vs a recorded real engine run.

The recorded run (`experiments.sim.recorder`) added each request just before a
given engine step; the simulator replays the same token ids at the same step
indices through the same variant's Scheduler, and every step's
`num_scheduled_tokens` (request -> tokens) must be identical.
"""
from __future__ import annotations

import json
from pathlib import Path

from experiments.sim import api


def replay_job(recorded: dict, model: str | None = None) -> dict:
    return {"variant": recorded["variant"], "model": model or api.presets.EMBEDDED_MODEL,
            "engine_args": recorded["engine_args"],
            "workload": {"name": "recorded", "spec": {}, "seed": 0, "num_requests": len(recorded["rows"])},
            "rows": recorded["rows"], "by_step": True, "record_decisions": True, "rate": "inf", "seed": 0,
            "cost_model": "constant-step", "stall_steps": 64}


def compare(real_steps: list[dict], sim_steps: list[dict]) -> dict:
    real = [(s["index"], s["scheduled"]) for s in real_steps]
    sim = [(s["index"], s["scheduled"]) for s in sim_steps]
    first = next((i for i, (a, b) in enumerate(zip(real, sim)) if a != b), None)
    if first is None and len(real) != len(sim):
        first = min(len(real), len(sim))
    out = {"real_steps": len(real), "sim_steps": len(sim), "identical": first is None,
           "scheduled_tokens_real": sum(sum(s.values()) for _, s in real),
           "scheduled_tokens_sim": sum(sum(s.values()) for _, s in sim)}
    if first is not None:
        out["first_mismatch"] = {"position": first, "real": real[first] if first < len(real) else None,
                                 "sim": sim[first] if first < len(sim) else None}
    return out


def check_recorded(path: Path) -> dict:
    recorded = json.loads(Path(path).read_text())
    result = api.run_jobs([replay_job(recorded)])[0]
    verdict = compare(recorded["steps"], result["steps"])
    verdict.update(point=recorded["point"], recorded=str(path), scheduler_real=recorded["scheduler"],
                   scheduler_sim=result["scheduler"])
    return verdict
