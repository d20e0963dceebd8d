"""A real engine run whose every step is recorded: `python -m experiments.sim.recorder JOB.json OUT.json`.

Runs in the variant's environment (baseline or build/vllm-patched first on the
path) with `VLLM_ENABLE_V1_MULTIPROCESSING=0`, so EngineCore and its Scheduler
live in this process. As in the c1 lab, `EngineCore.step` is wrapped (class
attribute, before the engine exists; `Scheduler.schedule` notes its output):
per step the wall time of the whole step (schedule + forward + sample +
update_from_output), the start-to-start interval, and what the scheduler decided (`SchedulerOutput.num_scheduled_tokens` per
request, plus the cost-model features). Requests are added through
`LLMEngine.add_request` just before the engine step whose index is their
`arrival_step`, so the simulator can replay the same arrivals step by step.
The workload runs `passes` times from an emptied prefix cache (identical
decisions, checked); a step's time is the fastest of its passes: another process
on the shared cores can only stretch a step, so the minimum is the engine's own cost.
"""
from __future__ import annotations

import json
import os
import sys
import time

from experiments.sim.cost_models import scheduled_features

clock = time.perf_counter
STEPS: list[dict] = []
LAST: dict = {}  # the decision of the step being timed
CURRENT = {"index": 0}  # index of the engine step as the driving loop counts it (the simulator counts alike)


def external_id(rid: str) -> str:
    """The id the request was added with: the input processor appends '-' + 8 random characters."""
    return rid.rsplit("-", 1)[0]


def install_step_recorder() -> None:
    """Class-level hooks, installed before the engine exists (EngineCore binds `step` at init):
    `Scheduler.schedule` notes its decision, `EngineCore.step` times the step around it."""
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm.v1.engine.core import EngineCore

    schedule, step = Scheduler.schedule, EngineCore.step

    def noting_schedule(self, *args, **kwargs):
        out = schedule(self, *args, **kwargs)
        LAST["decision"] = (out, scheduled_features(self, dict(out.num_scheduled_tokens)))
        return out

    def timed_step(self):
        LAST.pop("decision", None)
        t0 = clock()
        result = step(self)
        t1 = clock()
        if "decision" in LAST and LAST["decision"][0].total_num_scheduled_tokens > 0:
            so, feats = LAST["decision"]
            n = dict(so.num_scheduled_tokens)
            STEPS.append({"index": CURRENT["index"], "t0": t0, "step_s": t1 - t0, **feats,
                          "scheduled": {external_id(rid): n[rid] for rid in sorted(n, key=external_id)},
                          "kv_usage": self.scheduler.kv_cache_manager.usage})
        return result

    Scheduler.schedule = noting_schedule
    EngineCore.step = timed_step


def add(engine, request_id: str, token_ids: list[int], max_tokens: int) -> None:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    engine.add_request(request_id, TokensPrompt(prompt_token_ids=token_ids),
                       SamplingParams(max_tokens=max_tokens, ignore_eos=True, temperature=0.0, detokenize=False))


def run(job: dict) -> dict:
    install_step_recorder()
    from vllm import LLM

    llm = LLM(model=job["model"], **job["engine_args"])
    engine = llm.llm_engine
    core = engine.engine_core.engine_core
    from experiments.sim.engine_config import scheduler_summary

    summary = scheduler_summary(core.vllm_config)
    for i, ids in enumerate(job.get("warmup_prompts", [])):  # first calls of each kernel shape, not recorded
        add(engine, f"warmup-{i}", ids, 4)
    while engine.has_unfinished_requests():
        engine.step()
    import torch

    passes = []
    for _ in range(job.get("passes", 1)):
        llm.reset_prefix_cache()  # every pass starts from the same (empty) cache: same decisions
        passes.append(one_pass(engine, job["rows"]))
    first = passes[0]["steps"]
    same = all([(s["index"], s["scheduled"]) for s in p["steps"]] == [(s["index"], s["scheduled"]) for s in first]
               for p in passes)
    if not same:
        raise RuntimeError("scheduling decisions differ between passes of the same workload")
    for i, s in enumerate(first):
        s["step_s_passes"] = [p["steps"][i]["step_s"] for p in passes]
        # the fastest pass: on shared cores a step is often stretched 10-100x when another process
        # takes a core from one of torch's threads (seen: 5 ms steps at 200-600 ms), never shortened
        s["step_s"] = min(s["step_s_passes"])
    return {"scheduler": summary, "torch_threads": torch.get_num_threads(), "steps": first,
            "passes": [{"wall_s": p["wall_s"], "loadavg_1m_after": p["loadavg_1m_after"]} for p in passes]}


def one_pass(engine, rows: list[dict]) -> dict:
    """Add each request just before its arrival step, step until all finish; the recorded steps."""
    STEPS.clear()
    rows = sorted(rows, key=lambda r: (r["arrival_step"], r["request_id"]))
    step_index, nxt = 0, 0
    t_start = clock()
    while nxt < len(rows) or engine.has_unfinished_requests():
        while nxt < len(rows) and rows[nxt]["arrival_step"] <= step_index:
            add(engine, rows[nxt]["request_id"], rows[nxt]["prompt_token_ids"], rows[nxt]["output_tokens"])
            nxt += 1
        if not engine.has_unfinished_requests():
            step_index = rows[nxt]["arrival_step"]
            continue
        CURRENT["index"] = step_index
        engine.step()
        step_index += 1
    wall = clock() - t_start
    steps = list(STEPS)
    for i, s in enumerate(steps):  # start-to-start interval: the step plus the engine loop around it
        s["interval_s"] = (steps[i + 1]["t0"] - s["t0"]) if i + 1 < len(steps) else None
        s["t0"] -= t_start
    return {"steps": steps, "wall_s": wall, "loadavg_1m_after": os.getloadavg()[0]}


if __name__ == "__main__":
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # EngineCore in this process: its steps are ours to time
    config = json.loads(open(sys.argv[1]).read())
    result = run(config)
    tmp = sys.argv[2] + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(result, fh)
    os.replace(tmp, sys.argv[2])
