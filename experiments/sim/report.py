"""The generated section of results/reference/sim/README.md, rendered from the result files beside it.

    python -m experiments.sim.report      (also the last step of `make sim`)
Also the before/after validation counts in experiments/sim/README.md. A test checks that both
committed READMEs equal this render.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from experiments.common.docs import fill_file
from experiments.sim.validate import counted_benches, run_values, window_note
from tools.pins import REPO_ROOT

ROOT = REPO_ROOT / "results" / "reference" / "sim"
README = ROOT / "README.md"
BLOCK = "sim-results"  # generated blocks (experiments.common.docs markers)
PACKAGE_README = REPO_ROOT / "experiments" / "sim" / "README.md"
PACKAGE_BLOCK = "sim-validation"
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


def served_part(root: Path) -> str:
    cm = _load(root / "calibration" / "cost_model_served.json")
    bd = _load(root / "served" / "breakdown.json")
    if cm is None or bd is None:
        return "No served calibration yet (`python -m experiments.sim served`, then `served-fit`).\n"
    fit, fe, rows = cm["fit"], cm["frontend"], bd["rows"]
    ho, hp, tr = fit["held_out"], fit.get("held_out_points"), fit["train"]
    coef = ", ".join(f"{k} {v * 1e6:.3g} us" for k, v in cm["coef"].items())
    runs = fit["runs"]
    shares = [r["others_share"] for r in runs if r["others_share"] is not None]
    m = _load(Path(REPO_ROOT / cm["source"]) / runs[0]["bench"] / "manifest.json")["provenance"]["machine"]
    out = [f"**Where the time goes in a real `vllm serve` run** ([`served/breakdown.md`](served/breakdown.md), from "
           f"{len(runs)} runs under [`served/`](served/): {m['cpu_model']}, {m['cpu_count']} cores, other processes "
           f"used {min(shares):.0%}-{max(shares):.0%} of the CPUs during the runs, load average "
           f"{min(r['loadavg_1m_start'] for r in runs):.2f}-{max(r['loadavg_1m_start'] for r in runs):.2f} at start; "
           f"measured, {len(runs) // len({(r['point'], r['bench']) for r in runs})} bench repeat(s) per point and bench, "
           f"{len(rows) // len(runs)} client passes per run over "
           f"{len({r['workload'].split('/')[0] for r in rows})} workloads). Over "
           f"{len(rows)} client passes, median over passes of the per-pass median (ms):"]
    for bench in sorted({r["bench"] for r in rows}):
        sel = [r for r in rows if r["bench"] == bench]
        rates = ", ".join(f"{wl} at {rate}" for wl, rate in sorted({(r["workload"].split("/")[0], r["rate"]) for r in sel}))
        med = {k: statistics.median(r[k] for r in sel) for k in
               ("median_ttft_s_ms", "median_inbound_s_ms", "median_engine_s_ms", "median_outbound_s_ms",
                "median_period_ms", "period_over_cpu_model")}
        out.append(f"- `{bench}` ({rates}; {len(sel)} passes): client TTFT {med['median_ttft_s_ms']:,.1f}; its parts: inbound "
                   f"(client send -> scheduler) {med['median_inbound_s_ms']:,.1f}, engine (-> end of the first token's "
                   f"step) {med['median_engine_s_ms']:,.1f}, outbound (-> client) {med['median_outbound_s_ms']:,.1f} "
                   f"(medians, so they need not add up; the means do, in the breakdown); step period "
                   f"{med['median_period_ms']:,.1f}; the served steps took "
                   f"{med['period_over_cpu_model']:.2f}x [{min(r['period_over_cpu_model'] for r in sel):.2f}, "
                   f"{max(r['period_over_cpu_model'] for r in sel):.2f}] what the in-process model predicts for "
                   "the same steps.")
    out.append(
        f"\n**Served CPU cost model `cpu-served`** ([`calibration/cost_model_served.json`]"
        f"(calibration/cost_model_served.json), plot `calibration/cost_model_served.png`): step period = "
        f"{cm['overhead_s'] * 1e3:.3g} ms + per unit {coef}; fitted on {tr['n']} step periods of the "
        f"{', '.join(fit['fit_points'])} runs. Held-out steps ({fit['holdout_rule']}, n={ho['n']}): median |error| "
        f"{_pct(ho['median_abs_rel_error'])}, p90 {_pct(ho['p90_abs_rel_error'])}, summed time {ho['sum_rel_error']:+.1%}"
        + (f"; steps of the held-out points ({', '.join(hp['points'])}, n={hp['n']}): median |error| "
           f"{_pct(hp['median_abs_rel_error'])}, summed time {hp['sum_rel_error']:+.1%}" if hp else "")
        + f". Frontend: a request reaches the scheduler {fe['request_in_s'] * 1e3:.3g} ms after it is sent, a burst "
        f"passes at one per {fe['request_in_serial_s'] * 1e3:.3g} ms, every token reaches the client "
        f"{fe['token_out_s'] * 1e3:.3g} ms after its step.\n")
    return "\n".join(out)


def validation_part(root: Path) -> str:
    c = _load(root / "validation" / "comparison.json")
    if c is None:
        return "No sim-vs-real comparison yet.\n"
    served = _load(root / "validation" / "comparison-cpu-served.json")
    head = (f"**Timing validation before and after the served calibration**: with the in-process cost model "
            f"`cpu` {c['within']} of {c['rows']} rows are within max(10%, the real runs' own spread)"
            + not_counted_note(c)
            + (f"; with `cpu-served` {served['within']} of {served['rows']}" + not_counted_note(served) + "." if served else
               "; no `cpu-served` comparison yet.") + "\n\n")
    return head + "\n".join(comparison_part(x, stem) for x, stem in ((c, "comparison"), (served, "comparison-cpu-served"))
                            if x is not None)


def not_counted_note(c: dict) -> str:
    """The rows of older real sets (another window or another CPU than the calibration's): shown, not in the tally."""
    o = c.get("not_counted") or {}
    if not o.get("rows"):
        return ""
    return (f" in the served calibration's window; older real sets (another window or CPU): {o['within']} of "
            f"{o['rows']} within, shown, not counted")


def comparison_part(c: dict, stem: str) -> str:
    out = [f"**Simulated ({c.get('cost_model', 'cpu')}) vs real** ([`validation/{stem}.md`](validation/{stem}.md), plot "
           f"`validation/{stem}.png`; {c['label']}; the same points, workloads, rates and arrival seed as "
           f"each real set): {c['within']} of {c['rows']} rows within max(10%, the real runs' own spread)"
           + not_counted_note(c) + "."]
    for b in c["benches"]:
        rows, m = b["rows"], b["real_machine"]
        ratios = []
        for metric in sorted({r["metric"] for r in rows}):
            rs = [r["real_median"] / r["sim"] for r in rows if r["metric"] == metric and r["sim"]]
            ratios.append(f"{metric} {statistics.median(rs):.2f}x [{min(rs):.2f}, {max(rs):.2f}]")
        gaps = b["arrivals"]["max_abs_gap_s"]
        line = (f"- `{b['real_bench']}` ({m['cpu_model']}, load average {m['loadavg_1m']:.2f} at start, "
                f"{rows[0]['real_passes'] if rows else 0} timed passes per point): {sum(r['within'] for r in rows)} of "
                f"{len(rows)} rows within; real median / simulated (median [min, max] over rows): "
                + "; ".join(ratios) + ".")
        if b.get("not_counted"):
            line += f" Not counted: {b['not_counted']}."
        if b.get("window"):
            line += f" Window: {window_note(b['window'])}."
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
    each = (f"median of {one['repeats']} runs, each its own process: {min(one['wall_s_each']):.1f} to "
            f"{max(one['wall_s_each']):.1f} s; " if one.get("wall_s_each") else "")
    return (f"**Speed** (`speed.json`, {s['machine_cores']} cores, load average after {s['loadavg_1m_after']:.2f}): "
            f"{one['what']}: {one['wall_s_including_process_start']:.1f} s including the simulator process start "
            f"({each}vLLM import and config: most of it), {one['simulation_loop_s']:.2f} s in the loop for "
            f"{one['steps']} steps. {sw['what']}: {sw['wall_s']:.1f} s.\n")


def render(root: Path = ROOT) -> str:
    parts = [calibration_part(root), decisions_part(root), served_part(root), validation_part(root)]
    for sub, title in (("benches", "**Simulated benches on the calibrated CPU model**"),
                       ("projection", "**Projected to a GPU (modeled from public specs, not measured)**")):
        benches = sorted(p.parent for p in (root / sub).glob("*/manifest.json")
                         if _load(p).get("status") == "complete")
        if benches:
            parts.append(title + "\n\n" + "\n".join(bench_part(b, root) for b in benches))
    parts.append(speed_part(root))
    return "\n".join(parts)


def render_package_summary(root: Path = ROOT) -> str:
    """The before/after counts for experiments/sim/README.md (links relative to that file)."""
    c = _load(root / "validation" / "comparison.json")
    served = _load(root / "validation" / "comparison-cpu-served.json")
    cm = _load(root / "calibration" / "cost_model_served.json")
    if c is None:
        return "No sim-vs-real comparison yet (`make sim`).\n"
    link = "../../results/reference/sim/validation"
    counted = served or c
    out = (f"Timing validation on the real runs measured in the served calibration's window (each point's plain "
           f"run next to its hooked twin, one server at a time, runs alternating A B B A; {counted['rows']} rows: "
           f"point x workload x rate x metric), a row within when its error is at most max(10%, the real passes' "
           f"own spread):\n\n"
           f"- before, in-process cost model `cpu`: **{c['within']} of {c['rows']}**"
           + (" (it was calibrated on another CPU than these runs: its rows are all shown apart)" if not c["rows"] else "")
           + f" ([`comparison.md`]({link}/comparison.md));\n")
    if served is None or cm is None:
        return out + "- no served calibration yet (`python -m experiments.sim served`, then `make sim`).\n"
    ho = cm["fit"]["held_out"]
    drifted = [w for w in cm["fit"].get("windows") or [] if w["drifted"]]
    return out + (f"- after, served calibration `cpu-served`: **{served['within']} of {served['rows']}** "
                  f"([`comparison-cpu-served.md`]({link}/comparison-cpu-served.md)); its held-out step periods: "
                  f"median |error| {_pct(ho['median_abs_rel_error'])}, summed time {ho['sum_rel_error']:+.1%} "
                  f"(n={ho['n']}, [`cost_model_served.json`](../../results/reference/sim/calibration/cost_model_served.json))"
                  + (f"; {len(drifted)} of its {len(cm['fit']['windows'])} windows drifted (a point's repeats more than "
                     f"{cm['fit']['window_drift_limit']}x apart in engine speed: "
                     + ", ".join(f"`{w['bench']}`" for w in drifted) + "), a weak test there: the real passes' "
                     "spread, and with it the bar, widens with the drift; in the windows that did not drift: "
                     "**{0} of {1}**".format(*steady_rows(served)) if drifted else "")
                  + ".\n" + misses_part(served))


def misses_part(c: dict) -> str:
    """The counted rows outside the bar, each with its error and the bar it missed: where the target is not met."""
    rows = [(b, r) for b in counted_benches(c) for r in b["rows"] if not r["within"]]
    if not rows:
        return ""
    return ("\nWhere the simulator misses (counted rows outside max(10%, spread); the simulated value against the "
            "real median; real / hooked twin: the compared runs' median over their hooked twins', the calibration "
            "runs of the same point that alternated with them):\n\n" + "".join(
                f"- rate {r['rate']}, `{r['workload']}`, `{r['point']}`, {r['metric']}: {r['error']:+.1%} "
                f"(bar {r['allowed']:.1%}; `{b['real_bench']}`"
                + (", a drifted window" if (b.get("window") or {}).get("drifted") else "")
                + (f"; real / hooked twin {r['plain_over_hooked_twin']:.2f}x" if r.get("plain_over_hooked_twin")
                   else "") + ")\n"
                for b, r in rows))


def steady_rows(c: dict) -> tuple[int, int]:
    """(within, rows) over the counted benches whose window did not drift (`served_fit.windows`)."""
    rows = [r for b in counted_benches(c) if not (b.get("window") or {}).get("drifted") for r in b["rows"]]
    return sum(r["within"] for r in rows), len(rows)


def write(root: Path = ROOT, readme: Path = README, package_readme: Path = PACKAGE_README) -> bool:
    a = fill_file(readme, {BLOCK: render(root)})
    b = fill_file(package_readme, {PACKAGE_BLOCK: render_package_summary(root)})
    return a and b


if __name__ == "__main__":
    print("written" if write() else f"{README}: no markers")
