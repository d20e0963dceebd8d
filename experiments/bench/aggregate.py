"""From per-run JSON to the summary table: medians, spread, A/A noise floor, verdicts.

Noise floor of a metric = the largest relative difference between any two runs
of the baseline engine (baseline and baseline-aa variants) in this bench: an
A/A comparison measured next to the A/B one, on the same machine, interleaved.
A patched-vs-baseline difference no larger than that is reported as
"within noise", never as a win or a loss. So is one whose runs overlap the
reference's runs (some patched run is no better than some baseline run): with
3 repeats on a noisy machine a median can clear a 3-run floor by chance
(seen: +14.7% vs a 13.0% floor for a patch with its flags off,
results/observations/default-cpu-20261201T205119Z).

Paired benches (`interleave: passes`: the variants' servers up at once, their passes alternating)
compare within each repeat instead: a variant's delta is the median over repeats of its difference
to the reference in the same repeat, the noise floor the largest such difference between two
baseline-like variants (the A/A pair) in any repeat, the interval a bootstrap over adjacent pass
pairs, and a difference also needs every repeat to agree on its sign.
"""
from __future__ import annotations

import statistics
from itertools import combinations

from experiments.bench import floors
from experiments.common.stats import bootstrap_delta_ci, bootstrap_median_ci, summarize

# +1: higher is better, -1: lower is better, 0: informational.
DIRECTION = {
    "output_throughput": +1, "total_token_throughput": +1, "request_throughput": +1,
    "peak_rss_mb": -1, "kv_cache_usage_max": 0, "prefix_cache_hit_rate": 0, "startup_s": 0,
    # CPU seconds of the engine's processes per output token (/proc): less sensitive to other load
    "cpu_ms_per_output_token": -1, "peak_gpu_mem_mb": -1,
    # timing-independent scheduler counters and the machine's state during the run: informational
    "steps": 0, "tokens_per_step": 0, "preemptions": 0, "machine_busy_share": 0, "steal_share": 0,
    "others_cpu_share": 0,
}
LATENCY_PREFIXES = ("mean_", "median_", "p50_", "p90_", "p99_", "short_", "long_")


def direction(metric: str) -> int:
    if metric in DIRECTION:
        return DIRECTION[metric]
    if metric.endswith("_ms") and metric.startswith(LATENCY_PREFIXES):
        return -1
    return 0


SERVE_METRICS = ("output_throughput", "total_token_throughput", "request_throughput",
                 "mean_ttft_ms", "median_ttft_ms", "p90_ttft_ms", "p99_ttft_ms",
                 "mean_tpot_ms", "median_tpot_ms", "p99_tpot_ms",
                 "mean_itl_ms", "median_itl_ms", "p99_itl_ms", "median_e2el_ms", "p99_e2el_ms",
                 "short_p50_ttft_ms", "short_p90_ttft_ms", "short_p99_ttft_ms", "long_p90_ttft_ms",
                 "short_median_tpot_ms", "long_median_tpot_ms")


def pass_values(workload_result: dict, metric: str) -> list[float] | None:
    """The metric in each timed pass of a serve run (serve.PASS_KEYS), in pass order; None if not kept."""
    vals = [p.get(metric) for p in workload_result.get("passes") or []]
    return [float(v) for v in vals] if vals and None not in vals else None


def metric_rows(run: dict) -> list[dict]:
    """Flatten one run record into (mode, workload, metric, value) rows."""
    base = {"variant": run["variant"], "repeat": run["repeat"], "mode": run["mode"]}
    rows = []
    res = run["result"]

    def add(workload, metric, value, passes=None):
        if value is not None:
            rows.append({**base, "workload": workload, "metric": metric, "value": float(value),
                         **({"passes": passes} if passes else {})})

    def add_instrument(workload, block):
        if block.get("cpu_s_per_output_token") is not None:
            add(workload, "cpu_ms_per_output_token", block["cpu_s_per_output_token"] * 1e3)
        for m in ("steps", "tokens_per_step", "preemptions"):
            add(workload, m, (block.get("scheduler") or {}).get(m))

    if run["mode"] == "offline":
        wl = run["workload"]
        for m in ("output_throughput", "total_token_throughput", "request_throughput", "startup_s"):
            add(wl, m, res.get(m))
        q, h = res.get("prefix_cache_queries"), res.get("prefix_cache_hits")
        if q:
            add(wl, "prefix_cache_hit_rate", h / q)
        add(wl, "peak_rss_mb", res["peak_rss_bytes"] / 2**20 if res.get("peak_rss_bytes") else None)
        add_instrument(wl, res)
        all_wl = wl
    else:
        for wl, w in res["workloads"].items():
            for m in SERVE_METRICS:
                add(wl, m, w.get(m), pass_values(w, m))
            add_instrument(wl, w)
        add("(all)", "peak_rss_mb", res["peak_rss_bytes"] / 2**20 if res.get("peak_rss_bytes") else None)
        add("(all)", "kv_cache_usage_max", res.get("kv_cache_usage_max"))
        add("(all)", "startup_s", res.get("startup_s"))
        all_wl = "(all)"
    add(all_wl, "peak_gpu_mem_mb", res["peak_gpu_mem_bytes"] / 2**20 if res.get("peak_gpu_mem_bytes") else None)
    load = run.get("machine") or {}
    add(all_wl, "machine_busy_share", load.get("busy_share"))
    add(all_wl, "others_cpu_share", load.get("others_share"))
    add(all_wl, "steal_share", load.get("steal_share"))
    return rows


# 2: a difference also needs the two variants' runs not to overlap (verdict(..., ref_values, values)).
# 3: the floor pools every pair of arms known to schedule identically (floors.pooled_floor).
AGGREGATION_VERSION = 3
SAME_SCHEDULE = "same schedule"


def runs_overlap(ref_values: list[float] | None, values: list[float] | None) -> bool:
    """True when the two sets of runs share any part of their [min, max] range."""
    if not ref_values or not values:
        return False
    return max(ref_values) >= min(values) and max(values) >= min(ref_values)


def verdict(delta: float | None, floor: float | None, sign: int,
            ref_values: list[float] | None = None, values: list[float] | None = None) -> str:
    if delta is None:
        return "n/a"
    if floor is None:
        return "no noise floor (needs >= 2 baseline runs)"
    if abs(delta) <= floor or runs_overlap(ref_values, values):
        return "within noise"
    if sign == 0:
        return "changed"
    return "better" if delta * sign > 0 else "worse"


def rel_diff(a: float, b: float) -> float | None:
    """(b - a) / a, None when a is 0."""
    return (b - a) / a if a else None


def paired_comparison(sel: list[dict], against: str, v: str, floor: float | None, sign: int) -> dict:
    """v against `against` within each repeat (runs whose passes alternated): median of the per-repeat
    deltas, a bootstrap interval over the pass pairs (pass k of each, adjacent in time), and a
    verdict that also needs every repeat's delta to share the median's sign."""
    ref = {r["repeat"]: r for r in sel if r["variant"] == against}
    mine = {r["repeat"]: r for r in sel if r["variant"] == v}
    reps = sorted(set(ref) & set(mine))
    per_repeat = [d for d in (rel_diff(ref[k]["value"], mine[k]["value"]) for k in reps) if d is not None]
    pass_pairs = [d for k in reps if ref[k].get("passes") and mine[k].get("passes")
                  for d in (rel_diff(a, b) for a, b in zip(ref[k]["passes"], mine[k]["passes"])) if d is not None]
    delta = statistics.median(per_repeat) if per_repeat else None
    if delta is None:
        verdict_ = "n/a"
    elif floor is None:
        verdict_ = "no noise floor (needs an A/A pair of baseline variants in the same repeats)"
    elif abs(delta) <= floor or not all(d * delta > 0 for d in per_repeat):
        verdict_ = "within noise"
    else:
        verdict_ = "changed" if sign == 0 else ("better" if delta * sign > 0 else "worse")
    return {"delta": delta, "per_repeat": per_repeat, "pass_pairs": len(pass_pairs),
            "ci95": bootstrap_median_ci(pass_pairs or per_repeat), "verdict": verdict_, "paired": True}


def summarize_runs(runs: list[dict], variant_defs: dict[str, dict], reference: str = "baseline",
                   pairs: dict[str, str] | list[list[str]] | None = None,
                   same_schedule: dict[str, list[list[str]]] | None = None) -> list[dict]:
    """One row per (mode, workload, metric). `pairs` ({variant: against}, or a list of
    [variant, against] when one variant is compared with several) adds direct comparisons
    besides the one with `reference` (e.g. patched-scopes against baseline-scopes), judged
    against the same noise floor. `same_schedule` ({workload: [[arm, ...], ...]}, from
    experiments.sim.same_schedule) names the arms known to make identical scheduling decisions on
    that workload: their differences join the A/A pair's in the floor (experiments.bench.floors)."""
    rows = [r for run in runs for r in metric_rows(run)]
    # runs whose servers were up together, passes alternating: compared within each repeat
    interleaved = any(run["result"].get("interleaved_with") for run in runs)
    baseline_like = [v for v, d in variant_defs.items()
                     if d["engine"] == "baseline" and not d["env"] and not d["engine_args"]]
    keys = sorted({(r["mode"], r["workload"], r["metric"]) for r in rows})
    table = []
    for mode, wl, metric in keys:
        sel = [r for r in rows if (r["mode"], r["workload"], r["metric"]) == (mode, wl, metric)]
        per_variant = {}
        for v in variant_defs:
            vals = [r["value"] for r in sel if r["variant"] == v]
            if vals:
                per_variant[v] = {**summarize(vals), "values": vals}
        if reference not in per_variant:
            continue
        groups = floors.merge_groups([baseline_like, *(same_schedule or {}).get(wl, [])])
        floor_vals = [r["value"] for r in sel if r["variant"] in baseline_like]
        unpaired = floors.pooled_floor(sel, groups, paired=False)
        pooled = floors.pooled_floor(sel, groups, paired=True) if interleaved else unpaired
        floor = pooled["floor"]
        sign = direction(metric)

        def compare(v: str, against: str) -> dict:
            if interleaved:
                out = paired_comparison(sel, against, v, floor, sign)
            else:
                a_vals, vals = per_variant[against]["values"], per_variant[v]["values"]
                delta = rel_diff(per_variant[against]["median"], per_variant[v]["median"])
                out = {"delta": delta, "ci95": bootstrap_delta_ci(a_vals, vals),
                       "verdict": verdict(delta, floor, sign, a_vals, vals)}
            if any(v in g and against in g for g in groups):
                out["verdict"] = SAME_SCHEDULE  # their gap is noise by construction: it is in the floor
            return out

        comparisons = {v: compare(v, reference) for v in per_variant if v != reference}
        paired = {}
        pair_list = list(pairs.items()) if isinstance(pairs, dict) else [tuple(p) for p in pairs or ()]
        for v, against in pair_list:
            if v in per_variant and against in per_variant and per_variant[against]["median"]:
                key = v if isinstance(pairs, dict) else f"{v} vs {against}"
                paired[key] = {"variant": v, "against": against, **compare(v, against)}
        table.append({"mode": mode, "workload": wl, "metric": metric, "direction": sign,
                      "noise_floor": floor, "noise_floor_runs": len(floor_vals),
                      "noise_floor_pairs": pooled["pairs"], "noise_floor_false_alarm": pooled["false_alarm"],
                      "noise_floor_groups": [g for g in groups if len(g) > 1],
                      **({"interleaved": True, "noise_floor_unpaired": unpaired["floor"]} if interleaved else {}),
                      "variants": per_variant, "vs_" + reference: comparisons, "pairs": paired})
    return table


def gate_mismatches(runs: list[dict]) -> list[str]:
    """Greedy outputs of every run must equal those of the first baseline run of the same mode
    (offline runs generate in-process, serve runs through the completions API)."""
    bad = []
    for mode in sorted({r["mode"] for r in runs}):
        gated = [r for r in runs if r["mode"] == mode and "gate_tokens" in r["result"]]
        ref = next((r for r in gated if r["variant"] == "baseline"), None)
        if ref is None:
            continue
        want = ref["result"]["gate_tokens"]
        for r in gated:
            got = r["result"]["gate_tokens"]
            if got != want:
                first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
                bad.append(f"{r['variant']} r{r['repeat']} {mode}: greedy outputs differ from baseline "
                           f"r{ref['repeat']} (first differing prompt #{first})")
    return bad
