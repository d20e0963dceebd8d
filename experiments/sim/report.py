"""The generated section of results/reference/sim/README.md, rendered from the result files beside it.

    python -m experiments.sim.report      (also the last step of `make sim`)
A test checks that the committed README equals this render.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from experiments.common.readme import replace_between
from experiments.sim.validate import run_values
from tools.pins import REPO_ROOT

ROOT = REPO_ROOT / "results" / "reference" / "sim"
README = ROOT / "README.md"
BEGIN, END = "<!-- sim-results:begin (make sim) -->", "<!-- sim-results:end -->"
BENCH_METRICS = ("output_throughput", "median_ttft_ms", "p90_ttft_ms", "short_p90_ttft_ms", "long_p90_ttft_ms",
                 "median_tpot_ms")


def _load(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _pct(x: float) -> str:
    return f"{x:.1%}"


def calibration_part(root: Path) -> str:
    cm = _load(root / "calibration" / "cost_model.json")
    if cm is None:
        return "No calibrated CPU cost model yet (`python -m experiments.sim calibrate`).\n"
    fit, m = cm["fit"], cm["fit"]["machine"]
    ho, tr = fit["held_out"], fit["train"]
    coef = ", ".join(f"{k} {v * 1e6:.3g} us" for k, v in cm["coef"].items())
    return (f"**CPU cost model** ([`calibration/cost_model.json`](calibration/cost_model.json), "
            f"plot `calibration/cost_model.png`): step seconds = {cm['overhead_s'] * 1e3:.3g} ms + per unit "
            f"{coef}; fitted on {tr['n']} real steps of `{cm['source']}` ({m['cpu_model']}, {m['cpu_count']} cores, "
            f"torch threads {fit['torch_threads']}, load average {fit['loadavg_1m_before_after'][0]:.2f} before / "
            f"{fit['loadavg_1m_before_after'][1]:.2f} after). Held-out steps ({fit['holdout_rule']}, n={ho['n']}): "
            f"median |error| {_pct(ho['median_abs_rel_error'])}, p90 {_pct(ho['p90_abs_rel_error'])}, "
            f"error of their summed time {ho['sum_rel_error']:+.1%}.\n")


def decisions_part(root: Path) -> str:
    d = _load(root / "decisions.json")
    if d is None:
        return "No decision check yet.\n"
    lines = ["| recorded real run | real steps | simulated steps | scheduled tokens (real / sim) | identical step by step |",
             "|---|---|---|---|---|"]
    for c in d["checks"]:
        lines.append(f"| [`{Path(c['recorded']).name}`]({Path(c['recorded']).relative_to('results/reference/sim')}) "
                     f"({c['point']}) | {c['real_steps']} | {c['sim_steps']} | {c['scheduled_tokens_real']:,} / "
                     f"{c['scheduled_tokens_sim']:,} | {'yes' if c['identical'] else '**no**'} |")
    return "**Decisions** (`decisions.json`):\n\n" + "\n".join(lines) + "\n"


def validation_part(root: Path) -> str:
    c = _load(root / "validation" / "comparison.json")
    if c is None:
        return "No sim-vs-real comparison yet.\n"
    out = [f"**Simulated vs real** ([`validation/comparison.md`](validation/comparison.md), plot "
           f"`validation/comparison.png`; {c['label']}; the same points, workloads, rates and arrival seed as "
           f"each real set): {c['within']} of {c['rows']} rows within max(10%, the real runs' own spread)."]
    for b in c["benches"]:
        rows, m = b["rows"], b["real_machine"]
        ratios = []
        for metric in sorted({r["metric"] for r in rows}):
            rs = [r["real_median"] / r["sim"] for r in rows if r["metric"] == metric and r["sim"]]
            ratios.append(f"{metric} {statistics.median(rs):.2f}x [{min(rs):.2f}, {max(rs):.2f}]")
        gaps = b["arrivals"]["max_abs_gap_s"]
        line = (f"- `{b['real_bench']}` ({m['cpu_model']}, load average {m['loadavg_1m']:.2f} at start, "
                f"{rows[0]['real_runs'] if rows else 0} runs per point): {sum(r['within'] for r in rows)} of "
                f"{len(rows)} rows within; real median / simulated (median [min, max] over rows): "
                + "; ".join(ratios) + ".")
        if gaps:
            line += (f" Simulated arrivals vs the real client's send times: at most "
                     f"{max(gaps.values()) * 1e3:.1f} ms apart.")
        if any(not r["same_series"] for r in rows):
            line += (f" Patched rows compare series {b['real_series']} (real) with "
                     f"{', '.join(b['sim_series'])} (simulated).")
        out.append(line)
    return "\n".join(out) + "\n"


def bench_part(bench: Path, root: Path) -> str:
    manifest = _load(bench / "manifest.json")
    cfg = manifest["config"]
    vals: dict = {}
    for (variant, wl, m), values in run_values(bench, BENCH_METRICS).items():
        vals.setdefault((wl, m), {})[variant] = values
    lines = [f"[`{bench.relative_to(root)}`]({bench.relative_to(root)}/summary.md) "
             f"({manifest['simulated']}; rate {', '.join(sorted(set(map(str, cfg['request_rate'].values()))))} req/s, "
             f"arrival seeds {cfg['seeds']}; median [min, max] over seeds):", "",
             "| workload | metric | " + " | ".join(cfg["variants"]) + " |", "|---|---|" + "---|" * len(cfg["variants"])]
    for (wl, m), per in sorted(vals.items()):
        cells = [f"{statistics.median(per[v]):,.1f} [{min(per[v]):,.1f}, {max(per[v]):,.1f}]" if v in per else "-"
                 for v in cfg["variants"]]
        lines.append(f"| {wl} | {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def speed_part(root: Path) -> str:
    s = _load(root / "speed.json")
    if s is None:
        return "No speed measurement yet.\n"
    one, sw = s["single"], s["sweep"]
    return (f"**Speed** (`speed.json`, {s['machine_cores']} cores, load average after {s['loadavg_1m_after']:.2f}): "
            f"{one['what']}: {one['wall_s_including_process_start']:.1f} s including the simulator process start "
            f"(vLLM import and config: most of it), {one['simulation_loop_s']:.2f} s in the loop for "
            f"{one['steps']} steps. {sw['what']}: {sw['wall_s']:.1f} s.\n")


def render(root: Path = ROOT) -> str:
    parts = [calibration_part(root), decisions_part(root), validation_part(root)]
    for sub, title in (("benches", "**Simulated benches on the calibrated CPU model**"),
                       ("projection", "**Projected to a GPU (modeled from public specs, not measured)**")):
        benches = sorted(p.parent for p in (root / sub).glob("*/manifest.json")
                         if _load(p).get("status") == "complete")
        if benches:
            parts.append(title + "\n\n" + "\n".join(bench_part(b, root) for b in benches))
    parts.append(speed_part(root))
    return "\n".join(parts)


def write(root: Path = ROOT, readme: Path = README) -> bool:
    return replace_between(readme, BEGIN, END, render(root))


if __name__ == "__main__":
    print("written" if write() else f"{README}: no markers")
