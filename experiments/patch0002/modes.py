"""Patch 0002's two modes at GPU shapes, simulated: bounded vs work-conserving against upstream.

    python -m experiments.patch0002.modes [--quick] [--out DIR] [--cost-model SPEC]

Runs vLLM's real scheduler (upstream 0.32.0 for the upstream arms, the patched
build for `short_prefill_first`) on the simulator's virtual clock
(`experiments.sim.api`), every step priced by a cost model: by default the
roofline of an H100 for a Llama-3.1-8B shape (modelled from datasheet figures,
a lower bound on step time, not measured). The scheduler sees GPU-sized
settings: 8192-token steps, prompts up to 128k tokens, and the KV blocks an
H100 holds for that model. Workload `cache_hit_turns`: short turns (64-512 new
tokens) over two shared 16k-token contexts (prefix-cache hits) with long
documents of 32k-128k tokens (misses) among them, Poisson arrivals.

Arms: upstream defaults; `long_prefill_token_threshold` alone; the patch's
work-conserving and bounded modes (same threshold). Metrics per arm and rate,
median over the arrival seeds with min and max: short-request TTFT p50/p90,
long-request TTFT p50/p90, TPOT p50/p90 and ITL p50/p90/p99 over all
requests, output throughput. Results: results/reference/sim/0002-modes/
(modes.json with the manifest, modes.md rendered from it). Everything it writes
is labelled simulated.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from experiments.common.results import write_json_atomic
from tools import pins

OUT = pins.REPO_ROOT / "results" / "reference" / "sim" / "0002-modes"
SHAPE = "experiments/sim/shapes/llama-3.1-8b.json"
COST_MODEL = f"roofline-h100:{SHAPE}"
THRESHOLD = 2048
# KV blocks of an H100 (80 GB, 90% used) for Llama-3.1-8B in bf16: 16 GB of weights, 128 KiB of KV per
# token -> ~430k tokens. The scheduler runs the tiny model (float32, 6144 B of KV per token), so the
# byte budget that gives it the same number of tokens is 430k x 6144.
KV_TOKENS = 430_000
TINY_KV_BYTES_PER_TOKEN = 6144
ENGINE_ARGS = {
    "max_num_batched_tokens": 8192,
    "max_model_len": 135_168,
    "kv_cache_memory_bytes": KV_TOKENS * TINY_KV_BYTES_PER_TOKEN,
    "enable_prefix_caching": True,
}
# The tiny model's config says 4096 positions; the scheduler only counts tokens.
ENV = {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}
ARMS = {
    "upstream": {"engine": "baseline", "env": ENV, "engine_args": {}},
    "threshold": {"engine": "baseline", "env": ENV,
                  "engine_args": {"long_prefill_token_threshold": THRESHOLD}},
    "work_conserving": {"engine": "patched", "env": ENV,
                        "engine_args": {"long_prefill_token_threshold": THRESHOLD,
                                        "short_prefill_first": "work_conserving"}},
    "bounded": {"engine": "patched", "env": ENV,
                "engine_args": {"long_prefill_token_threshold": THRESHOLD, "short_prefill_first": "bounded"}},
}
WORKLOAD = "cache_hit_turns"
WORKLOAD_OVERRIDES = {"num_requests": 96, "long_fraction": 0.25, "long_tokens": (32_768, 131_072),
                      "num_contexts": 2, "context_tokens": 16_384, "turn_tokens": (64, 512),
                      "output_tokens": 128}
RATES = ["0.5", "1", "2", "4"]
SEEDS = [0, 1, 2]
METRICS = ("short_p50_ttft_ms", "short_p90_ttft_ms", "long_p50_ttft_ms", "long_p90_ttft_ms",
           "p50_tpot_ms", "p90_tpot_ms", "p50_itl_ms", "p90_itl_ms", "p99_itl_ms", "output_throughput")


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    xs = sorted(values)
    if not xs:
        raise ValueError("percentile of no values")
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def run_metrics(kinds: list[str], bench: dict) -> dict:
    """One simulated run's figures from the client's per-request arrays (in the workload's row order)."""
    ttfts, itls, lats, outs = bench["ttfts"], bench["itls"], bench["latencies"], bench["output_lens"]
    if not len(kinds) == len(ttfts) == len(itls) == len(lats) == len(outs):
        raise ValueError(f"{len(kinds)} workload rows but {len(ttfts)} per-request results")
    by_kind = {k: [t * 1000 for t, kind in zip(ttfts, kinds) if kind == k] for k in ("short", "long")}
    tpots = [(lat - ttft) * 1000 / (n - 1) for lat, ttft, n in zip(lats, ttfts, outs) if n > 1]
    all_itls = [x * 1000 for req in itls for x in req]
    out = {f"{k}_p{q}_ttft_ms": percentile(v, q) for k, v in by_kind.items() for q in (50, 90)}
    out.update({f"p{q}_tpot_ms": percentile(tpots, q) for q in (50, 90)})
    out.update({f"p{q}_itl_ms": percentile(all_itls, q) for q in (50, 90, 99)})
    out["output_throughput"] = bench["output_throughput"]
    return out


def aggregate(runs: list[dict]) -> dict:
    """Per arm and rate: median over seeds, with min and max, of each metric."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["arm"], r["rate"]), []).append(r["metrics"])
    table: dict[str, dict[str, dict]] = {}
    for (arm, rate), ms in groups.items():
        table.setdefault(rate, {})[arm] = {
            m: {"median": statistics.median(x[m] for x in ms), "min": min(x[m] for x in ms),
                "max": max(x[m] for x in ms), "n": len(ms)} for m in METRICS}
    return table


def render(result: dict) -> str:
    lines = [f"# Patch 0002 modes, simulated ({result['manifest']['label']})", "",
             f"Workload `{WORKLOAD}` {result['manifest']['workload_overrides']}; engine "
             f"{result['manifest']['engine_args']}; threshold {THRESHOLD}. Median over seeds "
             f"{result['manifest']['seeds']} [min-max]. Rendered from modes.json.", ""]
    head = "| rate | arm | " + " | ".join(METRICS) + " |"
    lines += [head, "|" + "---|" * (len(METRICS) + 2)]
    for rate, arms in result["table"].items():
        for arm in ARMS:
            cells = [f"{v['median']:,.1f} [{v['min']:,.1f}-{v['max']:,.1f}]"
                     for v in (arms[arm][m] for m in METRICS)]
            lines.append(f"| {rate} | {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def manifest(cost_model: str, rates: list[str], seeds: list[int], argv: list[str], label: str) -> dict:
    from vllm import __version__ as vllm_version  # noqa: PLC0415 (heavy import, only when writing)

    git = subprocess.run(["git", "-C", str(pins.REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    return {"what": "patch 0002 short_prefill_first modes vs upstream, simulated at GPU shapes",
            "label": label, "cost_model": cost_model, "shape": SHAPE,
            "kv_tokens_modelled": KV_TOKENS, "engine_args": ENGINE_ARGS, "arms": ARMS, "workload": WORKLOAD,
            "workload_overrides": {k: list(v) if isinstance(v, tuple) else v
                                   for k, v in WORKLOAD_OVERRIDES.items()},
            "rates_req_s": rates, "seeds": seeds, "command": " ".join(["python", "-m", __spec__.name, *argv]),
            "machine": {"node": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version()},
            "versions": {"vllm": vllm_version, "repo_commit": git.stdout.strip()},
            "note": "simulated: vLLM's real scheduler on a virtual clock, steps priced by a modelled "
                    "cost model (no GPU was used); figures are not measurements"}


def main(argv: list[str] | None = None) -> int:
    from experiments.sim import api

    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one rate, one seed, 32 requests (smoke)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--cost-model", default=COST_MODEL)
    args = ap.parse_args(argv)
    rates, seeds = (RATES[1:2], SEEDS[:1]) if args.quick else (RATES, SEEDS)
    overrides = {**WORKLOAD_OVERRIDES, **({"num_requests": 32} if args.quick else {})}
    jobs, keys = [], []
    for arm, vdef in ARMS.items():
        for rate in rates:
            for seed in seeds:
                jobs.append(api.make_job(vdef, ENGINE_ARGS, WORKLOAD, rate, seed, args.cost_model,
                                         workload_overrides=overrides))
                keys.append({"arm": arm, "rate": rate, "seed": seed})
    t0 = time.perf_counter()
    results = api.run_jobs(jobs)
    wall = time.perf_counter() - t0
    runs = []
    for key, job, res in zip(keys, jobs, results):
        kinds = [row["kind"] for row in job["rows"]]
        runs.append({**key, "label": res["label"], "series": res["series"],
                     "resolved_short_prefill_first": res["scheduler"]["scheduler_config"].get(
                         "short_prefill_first", "absent (upstream engine)"),
                     "metrics": run_metrics(kinds, res["bench_serve"])})
    labels = {r["label"] for r in runs}
    if len(labels) != 1:
        raise RuntimeError(f"runs carry different labels: {labels}")
    result = {"manifest": {**manifest(args.cost_model, rates, seeds, argv, labels.pop()),
                           "wall_s": wall, "workload_overrides": overrides},
              "table": aggregate(runs), "runs": runs}
    result["manifest"]["workload_overrides"] = {k: list(v) if isinstance(v, tuple) else v
                                                for k, v in overrides.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "modes.json", result)
    (args.out / "modes.md").write_text(render(result))
    print(f"[0002 modes] {len(runs)} simulated runs in {wall:.0f} s -> {args.out}/modes.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
