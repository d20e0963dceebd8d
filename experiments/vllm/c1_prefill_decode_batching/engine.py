"""One in-process vLLM engine whose every EngineCore step is timed and classified.

Run in a child process by `experiments.vllm.engine_child` (in-process mode:
VLLM_ENABLE_V1_MULTIPROCESSING=0 before vLLM is imported), so the EngineCore, its scheduler and (on CPU, the "uni" executor) the model runner all
live in this process. `EngineCore.step` is wrapped: wall time of the whole step
(schedule + forward + sample + update_from_output), and what the scheduler
handed the model (`SchedulerOutput.num_scheduled_tokens`, split into prefill
and decode tokens by `steps.classify_step`). vLLM's own per-iteration split
(`vllm.v1.utils.compute_iteration_details`, the function behind
`--enable-logging-iteration-details`) is stored beside ours as a cross-check.

Requests are driven through `LLMEngine.add_request` / `LLMEngine.step` (what
`LLM.generate` does inside), so this process also sees when each request's
first token and last token come back.
"""
from __future__ import annotations

import os
import time

from experiments.vllm.c1_prefill_decode_batching.steps import classify_step

clock = time.perf_counter
STEPS: list[dict] = []          # every recorded engine step
CURRENT = {"phase": "startup", "t0": 0.0}


def install_step_recorder():
    """Wrap EngineCore.step (class attribute, before the engine exists: `step_fn` binds it at init).

    Returns a function that puts the original back, so later engines in the same process are not recorded."""
    from vllm.v1.engine.core import EngineCore
    from vllm.v1.utils import compute_iteration_details

    original = EngineCore.step

    def timed_step(self):
        sched = self.scheduler
        before = {rid: r.num_computed_tokens for rid, r in sched.requests.items()}  # outside the timed span
        running_before, waiting_before = len(sched.running), len(sched.waiting)
        seen: dict = {}
        orig_schedule = sched.schedule

        def schedule(*args, **kwargs):
            out = orig_schedule(*args, **kwargs)
            seen["t"] = clock()
            seen["out"] = out
            # keep the Request objects: finished ones leave sched.requests during update_from_output
            seen["reqs"] = {rid: sched.requests[rid] for rid in out.num_scheduled_tokens}
            return out

        sched.schedule = schedule  # instance attribute shadows the method for this one step
        t0 = clock()
        try:
            result = original(self)
        finally:
            del sched.schedule
        t1 = clock()
        so = seen.get("out")
        if so is not None and so.total_num_scheduled_tokens > 0:
            n = dict(so.num_scheduled_tokens)
            rec = classify_step(n, before, {rid: r.num_prompt_tokens for rid, r in seen["reqs"].items()})
            ref = compute_iteration_details(so)
            rec.update({
                "phase": CURRENT["phase"], "start_s": t0 - CURRENT["t0"], "step_s": t1 - t0,
                "schedule_s": seen["t"] - t0, "total_tokens": so.total_num_scheduled_tokens,
                "num_reqs": len(n), "running_before": running_before, "waiting_before": waiting_before,
                "running_after": len(sched.running),
                "vllm_ctx_tokens": ref.num_ctx_tokens, "vllm_gen_tokens": ref.num_generation_tokens,
            })
            STEPS.append(rec)
        return result

    EngineCore.step = timed_step

    def uninstall() -> None:
        EngineCore.step = original

    return uninstall


def run_requests(engine, prompts: list[list[int]], max_tokens: list[int], tag: str, t_origin: float) -> list[dict]:
    """Submit all prompts at once, step until done; per request: times relative to t_origin."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    ids = []
    t_submit = clock()
    for i, (p, m) in enumerate(zip(prompts, max_tokens)):
        rid = f"{tag}-{i}"
        engine.add_request(rid, TokensPrompt(prompt_token_ids=p),
                           SamplingParams(max_tokens=m, min_tokens=m, temperature=0.0, ignore_eos=True,
                                          detokenize=False))
        ids.append(rid)
    first, done, n_out = {}, {}, {}
    while engine.has_unfinished_requests():
        for o in engine.step():
            now = clock()
            if o.request_id not in first and o.outputs and len(o.outputs[0].token_ids) > 0:
                first[o.request_id] = now
            if o.finished:
                done[o.request_id] = now
                n_out[o.request_id] = len(o.outputs[0].token_ids)
    return [{"id": rid, "prompt_tokens": len(p), "output_tokens": n_out[rid], "submit_s": t_submit - t_origin,
             "ttft_s": first[rid] - t_origin, "e2e_s": done[rid] - t_origin}
            for rid, p in zip(ids, prompts)]


def prompt_ids(n_tokens: int, seed: int) -> list[int]:
    """Deterministic token ids (3..31999: no BOS/EOS/PAD); with ignore_eos the text does not matter."""
    import random

    rng = random.Random(seed)
    return [1] + [rng.randrange(3, 32000) for _ in range(n_tokens - 1)]


def cpu_jiffies() -> tuple[int, int]:
    """(busy jiffies of the whole machine, jiffies of this process): their difference is other processes' CPU."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # minus idle and iowait
    own = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
    return busy, int(own[11]) + int(own[12])  # utime + stime


PHASES: list[dict] = []


def phase(name: str) -> float:
    """Start a named phase; closes the previous one with how much CPU other processes took meanwhile."""
    now = clock()
    busy, own = cpu_jiffies()
    if PHASES:
        last = PHASES[-1]
        wall = now - last["t"]
        hz = os.sysconf("SC_CLK_TCK")
        last["wall_s"] = wall
        last["foreign_cpu_cores"] = ((busy - last["busy"]) - (own - last["own"])) / hz / wall if wall > 0 else 0.0
    PHASES.append({"phase": name, "t": now, "busy": busy, "own": own})
    CURRENT["phase"] = name
    CURRENT["t0"] = now
    return now


def run(cfg: dict) -> dict:
    STEPS.clear()
    PHASES.clear()
    uninstall = install_step_recorder()
    try:
        return _run(cfg)
    finally:
        uninstall()


def _run(cfg: dict) -> dict:
    from vllm import LLM

    t = clock()
    llm = LLM(model=cfg["model"], dtype=cfg["dtype"], enforce_eager=True, max_model_len=cfg["max_model_len"],
              max_num_seqs=cfg["max_num_seqs"], max_num_batched_tokens=cfg["max_num_batched_tokens"],
              kv_cache_memory_bytes=cfg["kv_cache_bytes"], enable_prefix_caching=False, seed=0,
              # On CUDA async scheduling is on by default and EngineCore steps through
              # step_with_batch_queue, which the recorder does not wrap (CPU forces it off anyway).
              async_scheduling=False)
    core = llm.llm_engine.engine_core.engine_core
    if getattr(core.step_fn, "__func__", None) is not type(core).step:  # the recorder wraps EngineCore.step
        raise RuntimeError(f"c1: EngineCore steps through {core.step_fn.__name__}, not the recorded "
                           "EngineCore.step: no step would be timed")
    startup_s = clock() - t
    engine = llm.llm_engine
    scheduler = engine.engine_core.engine_core.scheduler
    import torch

    out = {"startup_s": startup_s, "torch_threads": torch.get_num_threads(), "phases": {}}

    # warm-up: the largest prefill and decode shapes once, so no kernel's first call lands in a measurement
    t0 = phase("warmup")
    run_requests(engine, [prompt_ids(max(cfg["prefill_lengths"]), 0)], [2], "wp", t0)
    run_requests(engine, [prompt_ids(16, i) for i in range(max(cfg["decode_batches"]))], [4] * max(cfg["decode_batches"]), "wd", t0)

    runs = out["phases"]
    runs["prefill"] = []
    for rep in range(cfg.get("prefill_repeats", cfg["repeats"])):
        for p in cfg["prefill_lengths"]:
            t0 = phase(f"prefill:{p}:{rep}")
            runs["prefill"] += run_requests(engine, [prompt_ids(p, 100 + rep)], [1], f"p{p}r{rep}", t0)
    print(f"prefill sweep done ({len(STEPS)} steps)", flush=True)

    runs["decode"] = []
    for rep in range(cfg["repeats"]):
        for b in cfg["decode_batches"]:
            t0 = phase(f"decode:{b}:{rep}")
            runs["decode"] += run_requests(engine, [prompt_ids(cfg["decode_prompt"], 1000 * rep + i) for i in range(b)],
                                           [cfg["decode_tokens"]] * b, f"d{b}r{rep}", t0)
    print(f"decode sweep done ({len(STEPS)} steps)", flush=True)

    runs["context"] = []
    b = cfg["context_batch"]
    for rep in range(cfg["context_repeats"]):
        for c in cfg["context_lengths"]:
            t0 = phase(f"context:{c}:{rep}")
            runs["context"] += run_requests(engine, [prompt_ids(c, 5000 + 100 * rep + i) for i in range(b)],
                                            [cfg["context_tokens"]] * b, f"c{c}r{rep}", t0)
    print(f"context sweep done ({len(STEPS)} steps)", flush=True)

    # static waves vs continuous batching over the same requests, same concurrency cap, alternating
    w = cfg["batching"]
    prompts = [prompt_ids(n, 9000 + i) for i, n in enumerate(w["prompt_lengths"])]
    cap = w["slots"]
    scheduler.max_num_active_reqs = cap  # == --max-num-active-seqs cap, without a second engine start
    runs["batching"] = []
    for rep in range(cfg["batching_repeats"]):
        for mode in ("static", "continuous"):
            t0 = phase(f"batching:{mode}:{rep}")
            reqs = []
            if mode == "static":
                for s in range(0, len(prompts), cap):  # next wave only once the whole previous wave is done
                    reqs += run_requests(engine, prompts[s:s + cap], w["output_lengths"][s:s + cap], f"s{rep}w{s}", t0)
            else:
                reqs = run_requests(engine, prompts, w["output_lengths"], f"c{rep}", t0)
            wall = clock() - t0
            runs["batching"].append({"mode": mode, "repeat": rep, "wall_s": wall, "requests": reqs})
            print(f"{mode} rep {rep}: {sum(r['output_tokens'] for r in reqs) / wall:.0f} output tok/s", flush=True)
    scheduler.max_num_active_reqs = scheduler.max_num_running_reqs
    phase("end")
    out["phase_load"] = [{"phase": p["phase"], "wall_s": p["wall_s"], "foreign_cpu_cores": p["foreign_cpu_cores"]}
                         for p in PHASES[:-1]]
    out["steps"] = STEPS
    return out
