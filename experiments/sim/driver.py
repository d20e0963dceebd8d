"""The virtual-clock loop around vLLM's real Scheduler (runs in the variant's process).

What `EngineCore.step` does, with the model replaced by a cost model:
    arrivals up to the clock -> add_request
    schedule()                               (the real scheduler, baseline or patched)
    cost model(step features, and the arrivals while the step runs) -> clock += seconds
    ModelRunnerOutput: one sampled token per request that is past its prompt
    (a request still in the middle of a chunked prefill samples nothing, as the
    model runner discards it), plus its accepted draft tokens with speculative
    decoding -> update_from_output()
    speculative decoding: new drafts for every request -> update_draft_token_ids()
      (what EngineCore.post_step hands over from the drafter)
Requests stop at their `max_tokens` (the bench runs with ignore_eos). Arrivals are
either times on the virtual clock or, for matching a recorded real run step by
step, engine step indices (`arrival_step`).
"""
from __future__ import annotations

import bisect
import random

from experiments.sim.cost_models import scheduled_features
from experiments.sim.errors import SimInputError, SimStalled

SAMPLED_TOKEN_ID = 100  # any id that is not EOS; with ignore_eos its value never matters


def make_request(row: dict, hasher, arrival_time: float):
    from vllm.sampling_params import SamplingParams
    from vllm.v1.engine import EngineCoreRequest
    from vllm.v1.request import Request

    params = SamplingParams(max_tokens=row["output_tokens"], ignore_eos=True, temperature=0.0, detokenize=False)
    core = EngineCoreRequest(request_id=row["request_id"], prompt_token_ids=list(row["prompt_token_ids"]),
                             mm_features=None, sampling_params=params, pooling_params=None,
                             arrival_time=arrival_time, lora_request=None, cache_salt=None,
                             data_parallel_rank=None, priority=row.get("priority", 0))
    return Request.from_engine_core_request(core, hasher)


def uncached_estimates(prompts: list[list[int]]) -> list[int]:
    """Each prompt's tokens beyond its longest common prefix with an earlier prompt: what a client (or a
    router with a prefix index) can tell of the prefix cache before sending, used as the request's
    priority (lower runs first under `scheduling_policy="priority"`). Upper bound of the real uncached
    count: evicted blocks are not modelled, partial blocks are counted as cached."""
    out = []
    for i, ids in enumerate(prompts):
        best = 0
        for prev in prompts[:i]:
            n = 0
            for a, b in zip(ids, prev):
                if a != b:
                    break
                n += 1
            best = max(best, n)
        out.append(len(ids) - best)
    return out


def reach_times(rows: list[dict], frontend: dict) -> list[dict]:
    """When each request reaches the scheduler: `request_in_s` after its send, and, in send order, no
    sooner than `request_in_serial_s` after the previous one (a burst passes the API server one by one).
    Without a frontend (in-process cost models) at its send."""
    fixed, serial = frontend.get("request_in_s", 0.0), frontend.get("request_in_serial_s", 0.0)
    out, prev = [], float("-inf")
    for row in sorted(rows, key=lambda r: (r["arrival_s"], r["request_id"])):
        prev = max(row["arrival_s"] + fixed, prev + serial)
        out.append({**row, "reach_s": prev})
    return out


def accepted_drafts(rng: random.Random, drafts: int, acceptance: float) -> int:
    """How many of a step's `drafts` verified tokens are accepted: each with probability `acceptance`
    once the ones before it were (the i.i.d. acceptance model of the speculative decoding papers), up
    to the first rejection. No drafter runs here: the rate stands for the drafter and the text."""
    n = 0
    while n < drafts and rng.random() < acceptance:
        n += 1
    return n


def cost_with_arrivals(cost_model, feats: dict, reach: list[float], nxt: int, start: float) -> tuple[int, float]:
    """(arrivals, seconds) of a step starting at `start`: the requests that reach the scheduler before it
    ends (reach times sorted, the first `nxt` already added) slow it, and a slower step lets more reach it;
    counted until it no longer grows (the cost never falls with more arrivals, so this ends)."""
    n = 0
    while True:
        cost = cost_model.step_seconds({**feats, "arrivals": n})
        now = bisect.bisect_right(reach, start + cost, lo=nxt) - nxt
        if now <= n:
            return n, cost
        n = now


def run(scheduler, hasher, rows: list[dict], cost_model, *, by_step: bool = False,
        stall_steps: int = 64, record_decisions: bool = False, spec_acceptance: float | None = None,
        spec_seed: int = 0) -> dict:
    """Drive `scheduler` until every request in `rows` finished.

    rows: request_id, prompt_token_ids, output_tokens and `arrival_s` (virtual seconds: the client's
    send; the request reaches the scheduler after the cost model's frontend time, if it has one)
    or, with by_step, `arrival_step` (added just before that engine step).
    spec_acceptance: with a scheduler configured for speculative decoding, the chance each draft token
    is accepted (`accepted_drafts`, seeded by spec_seed); required then, refused otherwise.
    """
    from vllm.v1.outputs import DraftTokenIds, ModelRunnerOutput

    drafts_per_step = scheduler.num_spec_tokens
    if bool(drafts_per_step) != (spec_acceptance is not None):
        raise SimInputError("speculative decoding needs both a speculative_config in the engine arguments and "
                            f"spec_acceptance (scheduler drafts per step: {drafts_per_step}, spec_acceptance: "
                            f"{spec_acceptance})")
    rng = random.Random(spec_seed)

    key = "arrival_step" if by_step else "reach_s"
    frontend = getattr(cost_model, "frontend", None) or {}
    token_out_s = frontend.get("token_out_s", 0.0)
    if not by_step:
        rows = reach_times(rows, frontend)
    pending = sorted(rows, key=lambda r: (r[key], r["request_id"]))
    reach = [r[key] for r in pending]
    reqs = {r["request_id"]: {"arrival_s": None, "prompt_len": len(r["prompt_token_ids"]), "token_times": [],
                              "finish_s": None} for r in rows}
    steps: list[dict] = []
    clock, step_index, stalled, nxt = 0.0, 0, 0, 0
    while nxt < len(pending) or scheduler.has_requests():
        while nxt < len(pending) and pending[nxt][key] <= (step_index if by_step else clock):
            row = pending[nxt]
            # TTFT counts from the send (the client's clock): waiting in the frontend or for the step
            # in flight is part of it
            reqs[row["request_id"]]["arrival_s"] = clock if by_step else row["arrival_s"]
            scheduler.add_request(make_request(row, hasher, clock))
            nxt += 1
        if not scheduler.has_requests():
            if by_step:
                step_index = pending[nxt][key]
            else:
                clock = pending[nxt][key]  # idle engine: jump to the next arrival
            continue
        so = scheduler.schedule()
        n_sched = dict(so.num_scheduled_tokens)
        if so.total_num_scheduled_tokens == 0:
            scheduler.update_from_output(so, ModelRunnerOutput(req_ids=[], req_id_to_index={}))
            step_index += 1
            if scheduler.has_unfinished_requests():
                stalled += 1
                if stalled >= stall_steps:
                    raise SimStalled(
                        f"no tokens scheduled for {stalled} consecutive steps at t={clock:.3f} s with "
                        f"{len(scheduler.waiting)} waiting / {len(scheduler.running)} running requests "
                        f"(KV blocks free: {scheduler.kv_cache_manager.block_pool.get_num_free_blocks()}); "
                        "a prompt larger than the KV cache or the step budget can cause this")
                if nxt < len(pending) and not by_step:
                    clock = max(clock, pending[nxt][key])
            continue
        stalled = 0
        live = {rid: scheduler.requests[rid] for rid in n_sched}
        feats = scheduled_features(scheduler, n_sched)
        if by_step:  # decision replay: arrivals are step indices, a step's length decides nothing
            feats["arrivals"] = 0
            cost = cost_model.step_seconds(feats)
        else:
            feats["arrivals"], cost = cost_with_arrivals(cost_model, feats, reach, nxt, clock)
        start = clock
        clock += cost
        order = sorted(n_sched)
        accepted = {rid: accepted_drafts(rng, len(so.scheduled_spec_decode_tokens.get(rid, ())), spec_acceptance)
                    for rid in order} if drafts_per_step else {}
        sampled = [[] if live[rid].is_prefill_chunk else [SAMPLED_TOKEN_ID] * (1 + accepted.get(rid, 0))
                   for rid in order]
        out = ModelRunnerOutput(req_ids=order, req_id_to_index={rid: i for i, rid in enumerate(order)},
                                sampled_token_ids=sampled)
        engine_outputs = scheduler.update_from_output(so, out)
        if drafts_per_step:  # finished requests and prefill chunks are skipped by the scheduler itself
            scheduler.update_draft_token_ids(DraftTokenIds(order, [[SAMPLED_TOKEN_ID] * drafts_per_step for _ in order]))
        for eco in engine_outputs.values():
            for o in eco.outputs:
                rec = reqs[o.request_id]
                rec["token_times"].extend([clock + token_out_s] * len(o.new_token_ids))
                if o.finish_reason is not None:
                    rec["finish_s"] = clock + token_out_s
        step = {"index": step_index, "start_s": start, "seconds": cost, **feats,
                "accepted_drafts": sum(accepted.values()),
                "kv_usage": scheduler.kv_cache_manager.usage,
                "waiting_after": len(scheduler.waiting), "running_after": len(scheduler.running)}
        if record_decisions:
            step["scheduled"] = {rid: n_sched[rid] for rid in order}
        steps.append(step)
        step_index += 1
    unfinished = [rid for rid, r in reqs.items() if r["finish_s"] is None]
    if unfinished:
        raise SimStalled(f"{len(unfinished)} request(s) never finished, e.g. {unfinished[:3]}")
    return {"requests": reqs, "steps": steps, "virtual_end_s": clock}
