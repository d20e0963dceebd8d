"""Turn the engine's raw step records and request timings into the lab's tables (pure, no engine)."""
from __future__ import annotations

import statistics

from experiments.common.stats import latency_summary, summarize
from experiments.vllm.c1_prefill_decode_batching import roofline as R
from experiments.vllm.c1_prefill_decode_batching.batching_sim import compare
from experiments.vllm.c1_prefill_decode_batching.steps import fit_line, steps_of


def _phase_steps(steps: list[dict], prefix: str, kind: str | None = None) -> list[dict]:
    return [s for s in steps if s["phase"].startswith(prefix) and (kind is None or s["kind"] == kind)]


def ceilings_for(machine: dict) -> dict:
    """Bandwidth (B/s) and FLOP/s used by the roofline: the best repeat of each measured ceiling (a roofline is
    what the machine can do; on a shared machine the median of repeats already includes other jobs' load)."""
    return {"dram_Bps": machine["copy_dram"]["GBps"]["max"] * 1e9,
            "wset_Bps": machine["copy_weights_size"]["GBps"]["max"] * 1e9,
            "flops": machine["gemm"]["GFLOPs"]["max"] * 1e9}


def _roof(cost: dict, ceil: dict) -> dict:
    dram = R.roofline_time(cost, ceil["dram_Bps"], ceil["flops"])
    cache = R.roofline_time(cost, ceil["wset_Bps"], ceil["flops"])
    return {"bytes": cost["bytes"], "flops": cost["flops"], "intensity": dram["intensity_flop_per_byte"],
            "roofline_dram_s": dram["roofline_s"], "roofline_wset_s": cache["roofline_s"], "bound_dram": dram["bound"]}


def prefill_table(steps: list[dict], lengths: list[int], shape: R.LlamaShape, dtype_bytes: int, ceil: dict) -> list[dict]:
    rows = []
    for p in lengths:
        times = [s["step_s"] for s in _phase_steps(steps, f"prefill:{p}:", "prefill")]
        st = summarize(times)
        roof = _roof(R.prefill_step_cost(shape, p, dtype_bytes), ceil)
        rows.append({"prompt_tokens": p, "step_s": st, "samples_s": times,
                     "us_per_token": st["median"] / p * 1e6, **roof,
                     "measured_over_roofline": st["median"] / roof["roofline_dram_s"]})
    return rows


def decode_table(steps: list[dict], batches: list[int], shape: R.LlamaShape, dtype_bytes: int, ceil: dict) -> list[dict]:
    """Decode-only steps whose batch is the full B (all B requests have the same length, so that is all of them)."""
    rows = []
    for b in batches:
        sel = [s for s in _phase_steps(steps, f"decode:{b}:", "decode") if s["decode_reqs"] == b]
        times = [s["step_s"] for s in sel]
        st = summarize(times)
        ctx = statistics.median(s["decode_context_mean"] for s in sel)
        roof = _roof(R.decode_step_cost(shape, b, ctx, dtype_bytes), ceil)
        rows.append({"batch": b, "steps": len(sel), "step_s": st, "context_median": ctx,
                     "tokens_per_s": b / st["median"], "tokens_per_s_p25_p75": [b / st["p75"], b / st["p25"]],
                     "schedule_s_median": statistics.median(s["schedule_s"] for s in sel), **roof,
                     "measured_over_roofline": st["median"] / roof["roofline_dram_s"]})
    return rows


def context_table(steps: list[dict], lengths: list[int], batch: int, shape: R.LlamaShape, dtype_bytes: int,
                  ceil: dict) -> list[dict]:
    rows = []
    for c in lengths:
        sel = [s for s in _phase_steps(steps, f"context:{c}:", "decode") if s["decode_reqs"] == batch]
        st = summarize([s["step_s"] for s in sel])
        ctx = statistics.median(s["decode_context_mean"] for s in sel)
        cost = R.decode_step_cost(shape, batch, ctx, dtype_bytes)
        rows.append({"prompt_tokens": c, "batch": batch, "steps": len(sel), "context_median": ctx, "step_s": st,
                     "kv_bytes": cost["kv_bytes"], "weight_bytes": cost["weight_bytes"], **_roof(cost, ceil)})
    return rows


def fits(prefill: list[dict], decode: list[dict]) -> dict:
    """Step time = fixed + per-token cost, fitted on the medians."""
    return {"prefill": fit_line([r["prompt_tokens"] for r in prefill], [r["step_s"]["median"] for r in prefill]),
            "decode": fit_line([r["batch"] for r in decode], [r["step_s"]["median"] for r in decode])}


def batching_table(runs: list[dict], steps: list[dict], slots: int, output_lengths: list[int],
                   decode_fit: dict | None = None, phase_load: list[dict] | None = None) -> dict:
    load = {p["phase"]: p["foreign_cpu_cores"] for p in phase_load or []}
    per_mode: dict[str, dict] = {}
    for mode in ("static", "continuous"):
        reps = [r for r in runs if r["mode"] == mode]
        tps, ttft, e2e, n_steps, occ, decode_time_share = [], [], [], [], [], []
        for r in reps:
            out_tokens = sum(q["output_tokens"] for q in r["requests"])
            tps.append(out_tokens / r["wall_s"])
            ttft += [q["ttft_s"] for q in r["requests"]]
            e2e += [q["e2e_s"] for q in r["requests"]]
            st = _phase_steps(steps, f"batching:{mode}:{r['repeat']}")
            n_steps.append(len(st))
            gen = [s for s in st if s["decode_tokens"] or s["prefill_reqs"]]
            occ.append(statistics.fmean(s["decode_reqs"] + s["prefill_reqs"] for s in gen) / slots)
            decode_time_share.append(sum(s["step_s"] for s in st if s["kind"] == "decode") / sum(s["step_s"] for s in st))
        per_mode[mode] = {"repeats": len(reps), "output_tokens_per_s": summarize(tps), "output_tokens_per_s_all": tps,
                          "wall_s_all": [r["wall_s"] for r in reps],
                          # other processes' CPU use (cores) during each repeat: a slow repeat with a high value was contended
                          "foreign_cpu_cores_all": [load.get(f"batching:{mode}:{r['repeat']}") for r in reps],
                          "ttft": latency_summary(ttft), "e2e": latency_summary(e2e),
                          "steps_all": n_steps, "mean_batch_over_slots": summarize(occ),
                          "decode_only_time_share": summarize(decode_time_share)}
    sim = compare(output_lengths, slots, decode_fit)
    return {"slots": slots, "requests": len(output_lengths), "output_tokens": sum(output_lengths),
            "modes": per_mode, "simulated": sim,
            "measured_speedup": per_mode["continuous"]["output_tokens_per_s"]["median"]
            / per_mode["static"]["output_tokens_per_s"]["median"]}


def load_summary(phase_load: list[dict], min_wall_s: float = 1.0) -> dict:
    """Other processes' CPU use over the engine run: time-weighted mean, and the worst phase that lasted
    long enough (>= min_wall_s) for jiffy-resolution accounting to mean something."""
    total = sum(p["wall_s"] for p in phase_load)
    long = [p for p in phase_load if p["wall_s"] >= min_wall_s]
    return {"mean_cores": sum(p["foreign_cpu_cores"] * p["wall_s"] for p in phase_load) / total,
            "max_cores_long_phases": max((p["foreign_cpu_cores"] for p in long), default=None),
            "engine_phases_wall_s": total}


def quietest_repeat(table: dict, mode: str) -> int:
    """The repeat during which other processes used the least CPU: the one the timeline plot shows."""
    loads = table["modes"][mode]["foreign_cpu_cores_all"]
    return min(range(len(loads)), key=lambda i: loads[i] if loads[i] is not None else 0.0)


def request_latencies(runs: list[dict], mode: str, repeat: int) -> dict:
    """Per-request TTFT and end-to-end latency (ms since all requests arrived) of one repeat, for the CDF plot."""
    run = next(r for r in runs if r["mode"] == mode and r["repeat"] == repeat)
    return {"repeat": repeat, "ttft": [round(q["ttft_s"] * 1e3, 2) for q in run["requests"]],
            "e2e": [round(q["e2e_s"] * 1e3, 2) for q in run["requests"]]}


def timeline_columns(steps: list[dict], phase: str) -> dict:
    """One run's steps as compact columns (times in microseconds) for the timeline plot."""
    st = [s for s in steps if s["phase"] == phase]
    return {"phase": phase, "start_us": [round(s["start_s"] * 1e6) for s in st],
            "step_us": [round(s["step_s"] * 1e6) for s in st],
            "prefill_tokens": [s["prefill_tokens"] for s in st], "decode_tokens": [s["decode_tokens"] for s in st]}


def time_split(steps: list[dict], prefix: str) -> dict:
    """Where the wall time of a run went: steps with prefill (prefill/mixed) vs decode-only, and their tokens."""
    st = [s for s in steps if s["phase"] == prefix] or _phase_steps(steps, prefix)
    with_prefill = [s for s in st if s["prefill_tokens"]]
    decode_only = [s for s in st if s["kind"] == "decode"]
    total = sum(s["step_s"] for s in st)
    return {"steps": len(st), "step_time_s": total,
            "prefill_steps": len(with_prefill), "decode_only_steps": len(decode_only),
            "prefill_step_time_share": sum(s["step_s"] for s in with_prefill) / total,
            "decode_only_time_share": sum(s["step_s"] for s in decode_only) / total,
            "prefill_tokens": sum(s["prefill_tokens"] for s in st), "decode_tokens": sum(s["decode_tokens"] for s in st)}


def check_against_vllm(steps: list[dict]) -> dict:
    """Our split vs vLLM's compute_iteration_details: vLLM counts a request as 'context' until it has an output
    token, so a prefill step's tokens are context tokens; the totals must agree step by step."""
    mismatched = [s for s in steps if (s["prefill_tokens"], s["decode_tokens"]) != (s["vllm_ctx_tokens"], s["vllm_gen_tokens"])]
    return {"steps": len(steps), "mismatched": len(mismatched)}


__all__ = ["ceilings_for", "prefill_table", "decode_table", "context_table", "fits", "batching_table",
           "time_split", "check_against_vllm", "steps_of"]
