"""Simulated vs real: the same points, workloads, arrival rate and arrival seed as the committed real runs.

For every real bench (the plain servers of the served benches under results/reference/sim/served/,
made by `python -m experiments.sim served`, and older sets), the simulator runs the same variant
defs, workloads and rate with arrival seed 0, which reproduces `vllm bench serve --seed 0`'s
arrival times (checked: `arrival_check`). Per (point, workload, metric): the real values (one per
timed client pass), their median and [min, max], the simulated value, the error against the real
median and the real passes' own spread ((max - min) / median). A row passes when
|error| <= max(10%, real spread); failures are listed, not hidden. Beside each row of a served
bench: the real median over the same point's hooked twin's (its calibration runs, alternating with
these; the baseline points' twins are the ones fitted on): a ratio far from 1 says the compared runs
themselves ran apart from the calibration's, which a cost model calibrated there cannot follow.
The tally counts the real runs measured in the same window as the served calibration (the plain
twins of its hooked servers, passes alternating with theirs): a cost model is fitted on one machine
at one time, and this VM's speed drifts between windows minutes apart by more than the tolerance.
Older sets (another window, or another CPU) are compared and shown with the reason, not counted.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from experiments.sim import api
from experiments.sim.arrivals import arrival_times
from experiments.sim.served import HOOKED_SUFFIX, is_hooked

METRICS = ("median_ttft_ms", "p90_ttft_ms", "median_tpot_ms", "output_throughput", "short_p90_ttft_ms")
TOLERANCE = 0.10
# cost model -> file stem under results/reference/sim/validation/: the in-process fit (before issue 11's
# served calibration) and the served one, compared on the same real sets
COMPARISONS = {"cpu": "comparison", "cpu-served": "comparison-cpu-served"}


def run_values(bench_dir: Path, metrics=METRICS) -> dict:
    """{(variant, workload, metric): [one value per timed client pass]} from a bench's run records (real
    or simulated; a record without per-pass values counts as one pass)."""
    out: dict = {}
    for path in sorted((bench_dir / "runs").glob("*.json")):
        run = json.loads(path.read_text())
        for wl, res in run["result"]["workloads"].items():
            for one in res.get("passes") or [res]:
                for m in metrics:
                    if one.get(m) is not None:
                        out.setdefault((run["variant"], wl, m), []).append(float(one[m]))
    return out


def arrival_check(bench_dir: Path, cfg: dict) -> dict:
    """Largest gap between the simulator's seed-0 arrivals and the real client's start times."""
    gaps = {}
    for path in sorted((bench_dir / "runs").glob("*/bench-serve-*.json")):
        raw = json.loads(path.read_text())
        wl = path.stem.removeprefix("bench-serve-")
        if raw.get("request_rate") in (None, "inf"):
            continue
        t0 = min(raw["start_times"])
        sim = arrival_times(len(raw["start_times"]), raw["request_rate"], cfg["seed"], raw.get("burstiness", 1.0))
        gap = max(abs((s - t0) - (a - sim[0])) for s, a in zip(raw["start_times"], sim))
        gaps[wl] = max(gaps.get(wl, 0.0), gap)
    return {"max_abs_gap_s": gaps}


def calibration_cpu(cost_model: str) -> str | None:
    """The CPU model a calibrated cost model was fitted on (None for modeled ones)."""
    from experiments.sim.cost_models import CPU_MODEL_PATH, CPU_SERVED_MODEL_PATH

    path = {"cpu": CPU_MODEL_PATH, "cpu-served": CPU_SERVED_MODEL_PATH}.get(cost_model)
    if path is None or not path.is_file():
        return None
    return (json.loads(path.read_text())["fit"].get("machine") or {}).get("cpu_model")


def served_window(bench_name: str) -> dict | None:
    """The served calibration's record of this bench's window (`served_fit.windows`), if it is one."""
    from experiments.sim.cost_models import CPU_SERVED_MODEL_PATH

    if not CPU_SERVED_MODEL_PATH.is_file():
        return None
    fit = json.loads(CPU_SERVED_MODEL_PATH.read_text())["fit"]
    return next((w for w in fit.get("windows") or [] if w["bench"] == bench_name), None)


def window_note(window: dict | None) -> str:
    """One clause on how steady the machine was over a served bench's window."""
    if window is None:
        return ""
    worst = max(window["repeats_apart"], key=window["repeats_apart"].get)
    steal = window["steal_share_max"]
    return (f"the same point's hooked repeats ran up to {window['repeats_apart'][worst]:.2f}x apart in engine speed "
            f"({worst})" + (f", the hypervisor stole up to {steal:.1%} of the CPU time in a run" if steal is not None
                            else "")
            + (f"; **the window drifted**: the machine's speed moved by more than the {TOLERANCE:.0%} tolerance between "
               "repeats, so its rows test the simulator weakly" if window["drifted"] else ""))


def compare_bench(bench_dir: Path, cost_model: str = "cpu", same_window: bool = False) -> dict:
    """Simulate every plain variant of a real bench (hooked servers are the calibration, not compared).
    same_window: the bench holds the served calibration's own runs (see the module doc)."""
    manifest = json.loads((bench_dir / "manifest.json").read_text())
    if manifest.get("status") != "complete":
        raise SystemExit(f"{bench_dir}: status {manifest.get('status')!r}, not complete")
    cfg = manifest["config"]
    real = run_values(bench_dir)
    jobs, keys = [], []
    for variant, vdef in cfg["variant_defs"].items():
        if is_hooked(vdef):
            continue
        for wl, overrides in cfg["workloads"].items():
            jobs.append(api.make_job(vdef, None, wl, cfg["request_rate"][wl], cfg["seed"], cost_model,
                                     workload_overrides=overrides))
            keys.append((variant, wl))
    sims = api.run_jobs(jobs)
    calib_cpu = calibration_cpu(cost_model)
    rows = []
    for (variant, wl), sim in zip(keys, sims):
        # a patched point is only comparable when both sides ran the same patch series
        same_series = sim["series"] is None or sim["series"] == manifest["series_hash"]
        for m in METRICS:
            vals = real.get((variant, wl, m))
            if not vals or sim["summary"].get(m) is None:
                continue
            med = statistics.median(vals)
            s = float(sim["summary"][m])
            spread = (max(vals) - min(vals)) / med if med else None
            err = (s - med) / med if med else None
            allowed = max(TOLERANCE, spread or 0.0)
            # the same point's hooked server (its calibration runs, alternating with these): how far the
            # compared runs themselves sat from the calibration's
            twin = real.get((variant + HOOKED_SUFFIX, wl, m))
            rows.append({"point": variant, "workload": wl, "rate": str(cfg["request_rate"][wl]), "metric": m,
                         "real_median": med, "real_min": min(vals), "real_max": max(vals), "real_passes": len(vals),
                         "real_spread": spread, "sim": s, "error": err, "allowed": allowed,
                         "within": err is not None and abs(err) <= allowed, "same_series": same_series,
                         "plain_over_hooked_twin": med / statistics.median(twin) if twin else None})
    return {"real_bench": bench_dir.name, "cost_model": cost_model, "label": sims[0]["label"],
            "real_series": manifest["series_hash"], "sim_series": sorted({s["series"] for s in sims if s["series"]}),
            "real_machine": manifest["provenance"]["machine"], "arrivals": arrival_check(bench_dir, cfg),
            "calibration_cpu": calib_cpu, "same_window": same_window, "window": served_window(bench_dir.name),
            "not_counted": not_counted_reason(calib_cpu, manifest["provenance"]["machine"]["cpu_model"], same_window),
            "rows": rows}


def counted_benches(comparison: dict, counted: bool = True) -> list[dict]:
    """The benches of a comparison that are in its tally (or, counted=False, those shown apart)."""
    return [b for b in comparison["benches"] if bool(b.get("not_counted")) != counted]


def not_counted_reason(calib_cpu: str | None, real_cpu: str, same_window: bool) -> str | None:
    """Why a real set is shown but not in the tally (None: counted)."""
    if calib_cpu not in (None, real_cpu):
        return f"another CPU than the cost model's calibration ({calib_cpu})"
    if not same_window:
        return "measured in another window than the served calibration"
    return None


# Older real sets of the same kind of configuration, made on another 2-core machine (Intel Xeon, load
# average 1-2 at start) with an earlier patch series: compared and shown, not counted (another CPU and
# another window than the calibration).
REFERENCE_REAL = ("results/reference/cpu/prefill-cap-cpu-20261125T171158Z",
                  "results/reference/cpu/patch0002-sweep-cpu-20261125T172544Z",
                  "results/reference/cpu/patch0002-sweep-cpu-20261125T173935Z")


def markdown(comparison: dict) -> str:
    out = []
    for b in comparison["benches"]:
        m = b["real_machine"]
        out.append(f"\n**`{b['real_bench']}`**: real runs on {m['cpu_model']} ({m['cpu_count']} cores, load average "
                   f"{m['loadavg_1m']:.2f} at start), patch series {b['real_series']}; simulated patched engine: "
                   f"series {', '.join(b['sim_series']) or '-'}"
                   + (f"; **not counted**: {b['not_counted']}" if b.get("not_counted") else "")
                   + (f"; window: {window_note(b.get('window'))}" if b.get("window") else "") + "\n")
        lines = ["| rate | workload | point | metric | real median [min, max] (passes) | real spread | simulated | "
                 "error | within max(10%, spread) | real / hooked twin |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in b["rows"]:
            twin = r.get("plain_over_hooked_twin")
            lines.append(f"| {r['rate']} | {r['workload']} | {r['point']} | {r['metric']} | "
                         f"{r['real_median']:,.1f} [{r['real_min']:,.1f}, {r['real_max']:,.1f}] ({r['real_passes']}) | "
                         f"{r['real_spread']:.1%} | {r['sim']:,.1f} | {r['error']:+.1%} | "
                         f"{'yes' if r['within'] else '**no**'} | {f'{twin:.2f}x' if twin else '-'} |")
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def plot(comparison: dict, path: Path, source: str) -> None:
    from experiments.common.plots import plt, save_figure

    rows = [r for b in comparison["benches"] for r in b["rows"]]
    metrics = [m for m in METRICS if any(r["metric"] == m for r in rows)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4))
    for ax, m in zip(axes, metrics):
        sel = [r for r in rows if r["metric"] == m]
        for r in sel:
            color = "tab:blue" if r["within"] else "tab:red"
            ax.errorbar([r["real_median"]], [r["sim"]], xerr=[[r["real_median"] - r["real_min"]],
                                                             [r["real_max"] - r["real_median"]]],
                        fmt="o", color=color, ms=4, lw=0.8)
        lo = min(min(r["real_min"], r["sim"]) for r in sel) * 0.8
        hi = max(max(r["real_max"], r["sim"]) for r in sel) * 1.25
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
        ax.fill_between([lo, hi], [lo * (1 - TOLERANCE), hi * (1 - TOLERANCE)],
                        [lo * (1 + TOLERANCE), hi * (1 + TOLERANCE)], color="grey", alpha=0.15)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(m, fontsize=8)
        ax.set_xlabel("real (median, bar = min..max)", fontsize=7)
        ax.set_ylabel("simulated", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(f"{comparison['label']} vs real CPU runs (log axes); band = +-10%; "
                 "red = outside max(10%, real spread)",
                 fontsize=8)
    save_figure(fig, path, source=source)
