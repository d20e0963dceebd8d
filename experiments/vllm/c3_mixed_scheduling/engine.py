"""One vLLM engine config, driven step by step with requests arriving on a fixed schedule.

Run by `experiments.vllm.engine_child` (in-process mode) in a child process; every config
gets a fresh engine.

Why an `LLMEngine.step()` loop instead of a server plus a client thread: with
`VLLM_ENABLE_V1_MULTIPROCESSING=0` the EngineCore (and its scheduler) lives in
this process, so every `schedule()` call can be recorded and matched to the
step that executed it, with no client process competing for the 2 cores and no
HTTP/IPC jitter in the timestamps. Requests are added between steps as soon as
their arrival time has passed: a request that "arrives" during a step waits for
that step to end, which is also when a server's engine loop would pick it up.

Per step we record: what the scheduler scheduled (per request: prefill tokens,
decode tokens), queue lengths, and the wall time of `engine.step()` (schedule +
forward + sampling + output processing). Per request: arrival, when it was
added, and the time of every step that returned new tokens for it.
"""
from __future__ import annotations

import os
import time



CLEAN_SHARE = 0.9  # a pass is clean if its CPU share is >= 90% of the best pass's


class ScheduleRecorder:
    """Wraps `Scheduler.schedule` and keeps the token split of the last call."""

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.last: dict | None = None
        self._orig = scheduler.schedule
        scheduler.schedule = self._schedule

    def _schedule(self, *args, **kwargs):
        t = time.perf_counter()
        out = self._orig(*args, **kwargs)
        sched_s = time.perf_counter() - t
        reqs = []
        for rid, n in out.num_scheduled_tokens.items():
            req = self.scheduler.requests[rid]
            # schedule() has already advanced num_computed_tokens by n (_update_after_schedule)
            after = req.num_computed_tokens
            before = after - n
            prefill = max(0, min(after, req.num_prompt_tokens) - before)
            reqs.append([external_id(rid), prefill, n - prefill])
        self.last = {"reqs": reqs, "total": out.total_num_scheduled_tokens, "schedule_s": sched_s,
                     "waiting": len(self.scheduler.waiting), "running": len(self.scheduler.running),
                     "preempted": len(out.preempted_req_ids or ())}
        return out

    def take(self) -> dict | None:
        rec, self.last = self.last, None
        return rec


def cpu_share(steps: list[dict]) -> float:
    """CPU seconds of this process per wall second of its steps (about 2 here when it has both cores)."""
    wall = sum(s["t_end"] - s["t_start"] for s in steps)
    return sum(s["cpu_s"] for s in steps) / wall if wall else 0.0


def external_id(internal_id: str) -> str:
    """vLLM appends '-<8 random chars>' to the id given to add_request."""
    head, _, tail = internal_id.rpartition("-")
    return head if head and len(tail) == 8 else internal_id


def drive(engine, recorder: ScheduleRecorder, requests: list[dict], params_for) -> dict:
    """Feed `requests` at their arrival times, step the engine until all are done."""
    from vllm.inputs import TokensPrompt

    pending = sorted(requests, key=lambda r: r["arrival_s"])
    added, tokens = {}, {r["request_id"]: [] for r in requests}
    steps = []
    t0 = time.perf_counter()
    i = 0
    while i < len(pending) or engine.has_unfinished_requests():
        now = time.perf_counter() - t0
        while i < len(pending) and pending[i]["arrival_s"] <= now:
            r = pending[i]
            engine.add_request(r["request_id"], TokensPrompt(prompt_token_ids=r["prompt_token_ids"]),
                               params_for(r))
            added[r["request_id"]] = time.perf_counter() - t0
            i += 1
        if not engine.has_unfinished_requests():
            time.sleep(max(0.0, pending[i]["arrival_s"] - (time.perf_counter() - t0)))
            continue
        ts, cpu0 = time.perf_counter() - t0, time.process_time()
        outs = engine.step()
        te, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        rec = recorder.take()
        if rec is None and not outs:
            continue
        rec = rec or {"reqs": [], "total": 0, "schedule_s": 0.0, "waiting": 0, "running": 0, "preempted": 0}
        # cpu_s well below the wall time = this process waited for a core (shared machine)
        steps.append({"t_start": ts, "t_end": te, "cpu_s": cpu, **rec})
        for o in outs:
            n_new = len(o.outputs[0].token_ids)  # DELTA outputs: the tokens this step produced
            if n_new:
                tokens[o.request_id].append([len(steps) - 1, te, n_new])
    return {"steps": steps, "added_s": added, "tokens": tokens, "wall_s": time.perf_counter() - t0}


def resolved_scheduler_config(engine) -> dict:
    sc = engine.vllm_config.scheduler_config
    return {k: getattr(sc, k, None) for k in ("enable_chunked_prefill", "max_num_batched_tokens", "max_num_seqs",
                                              "long_prefill_token_threshold", "policy")}


def run(cfg: dict) -> dict:
    # engine_child set VLLM_ENABLE_V1_MULTIPROCESSING=0 before vLLM was imported: the scheduler is in this process
    from vllm import EngineArgs, SamplingParams
    from vllm.sampling_params import RequestOutputKind
    from vllm.v1.engine.llm_engine import LLMEngine

    t = time.perf_counter()
    engine = LLMEngine.from_engine_args(EngineArgs(**cfg["engine_args"]))
    startup_s = time.perf_counter() - t
    scheduler = engine.engine_core.engine_core.scheduler  # InprocClient -> EngineCore -> Scheduler
    recorder = ScheduleRecorder(scheduler)

    def params_for(r):
        # greedy, fixed length: every config does the same work
        return SamplingParams(max_tokens=r["output_tokens"], temperature=0.0, ignore_eos=True,
                              detokenize=False, output_kind=RequestOutputKind.DELTA)

    def one_pass(tag: str) -> dict:
        # fresh ids per pass; prefix caching is off so every pass prefills everything again
        reqs = [{**r, "request_id": f"{r['request_id']}.{tag}"} for r in cfg["requests"]]
        load = os.getloadavg()[0]
        out = drive(engine, recorder, reqs, params_for)
        strip = len(f".{tag}")
        out["added_s"] = {k[:-strip]: v for k, v in out["added_s"].items()}
        out["tokens"] = {k[:-strip]: v for k, v in out["tokens"].items()}
        for st in out["steps"]:
            for row in st["reqs"]:
                row[0] = row[0][:-strip]
        out["loadavg_1m_before"] = load
        out["cpu_share"] = cpu_share(out["steps"])
        print(f"{cfg['name']} {tag}: {len(out['steps'])} steps, {out['wall_s']:.2f} s, "
              f"cpu share {out['cpu_share']:.2f}", flush=True)
        return out

    best = 0.0
    for w in range(cfg["warmup"]):
        best = max(best, one_pass(f"w{w}")["cpu_share"])
    # Other jobs share these cores. A pass in which the engine got clearly less CPU than its best
    # pass is re-run (up to max_extra times); the parent re-checks every pass against the final best.
    runs, clean = [], 0
    while clean < cfg["repeats"] and len(runs) < cfg["repeats"] + cfg.get("max_extra", 0):
        out = one_pass(f"r{len(runs)}")
        best = max(best, out["cpu_share"])
        clean += out["cpu_share"] >= CLEAN_SHARE * best
        runs.append({"repeat": len(runs), **out})
    engine.engine_core.shutdown()
    return {"name": cfg["name"], "startup_s": startup_s, "scheduler_config": resolved_scheduler_config(engine),
            "best_cpu_share": best, "runs": runs}
