"""The long-prefill comparison: every arm on long_docs, short-request p90 TTFT vs throughput.

    python -m experiments.patch0002.sweep [--quick] [--repeats N] [--rate R] [--out DIR]
    python -m experiments.patch0002.sweep --plot-only results/bench/<long-docs-sweep-...>

The arms are the long-docs preset's (experiments.bench.presets.LONG_DOCS_ARMS,
step budget 512 tokens, documents of 2048-3584 tokens among short turns):
the baseline engine as is, with `long_prefill_token_threshold` (plain and
adaptive), the count cap of patch 0003 (`max_long_partial_prefills`) and the
bounded mode of patch 0002 (`short_prefill_first`). Each arm runs
through the ordinary bench (experiments.bench.runner.run_bench: preflight,
variants interleaved per repeat, atomic result dir), by default on the
preset's two arrival patterns from one server start per arm and repeat
(Poisson below capacity, a burst at capacity). Then `sweep.json` (medians and spread per arm,
read from the run records, with where each arm loses: long-request p90 TTFT)
and `sweep.png` (a Pareto view: output tokens/s against short-request p90 TTFT)
are written into that bench directory. Nothing is typed by hand.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from experiments.bench import machine, presets, runner
from experiments.common.results import write_json_atomic

PRESET = "long-docs"
X_METRIC = "short_p90_ttft_ms"
Y_METRIC = "output_throughput"
LOSS_METRIC = "long_p90_ttft_ms"  # where a cap pays: long documents wait longer
QUICK_ARMS = ["baseline", "patched-token-cap"]


def sweep_config(arms: list[str], repeats: int, quick: bool, rate: str | None = None) -> dict:
    cfg = presets.resolve(PRESET, repeats=repeats, backend=presets_backend(), variants=arms)
    cfg["preset"] = "long-docs-sweep" + ("-quick" if quick else "")
    cfg["description"] = "long-prefill comparison on long_docs: short-request p90 TTFT vs throughput per arm"
    if quick:
        cfg["workloads"] = {name: {"num_requests": 24} for name in cfg["workloads"]}
    if rate:
        cfg["workloads"] = {"long_docs": cfg["workloads"]["long_docs"]}
        cfg["request_rate"] = {"long_docs": rate}
    return cfg


def presets_backend() -> str:
    from experiments.bench.presets import detect_backend
    return detect_backend()


def collect(bench_dir: Path) -> dict:
    """Per workload (arrival pattern) and arm: medians and every repeat of the x/y/loss metrics,
    from the bench's run records."""
    manifest = json.loads((bench_dir / "manifest.json").read_text())
    if manifest.get("status") != "complete":
        raise SystemExit(f"{bench_dir}: status {manifest.get('status')!r}, not complete")
    cfg = manifest["config"]
    defs = cfg["variant_defs"]
    metrics = (X_METRIC, Y_METRIC, LOSS_METRIC)
    values = {w: {v: {m: [] for m in metrics} for v in defs} for w in cfg["workloads"]}
    for path in sorted((bench_dir / "runs").glob("*.json")):
        run = json.loads(path.read_text())
        for workload, wl in run["result"].get("workloads", {}).items():
            for m in metrics:
                if workload in values and wl.get(m) is not None:
                    values[workload][run["variant"]][m].append(float(wl[m]))
    panels = []
    for workload, per_arm in values.items():
        points = []
        for name, d in defs.items():
            vals = per_arm[name]
            if not vals[X_METRIC] or not vals[Y_METRIC]:
                continue
            point = {"name": name, "engine": d["engine"], "engine_args": d["engine_args"],
                     "repeats": len(vals[Y_METRIC])}
            for m in metrics:
                if vals[m]:
                    point[m] = statistics.median(vals[m])
                    point[m + "_values"] = vals[m]
            points.append(point)
        panels.append({"workload": workload, "request_rate": cfg["request_rate"].get(workload, "inf"),
                       "points": points})
    return {"bench_id": manifest["bench_id"], "x": X_METRIC, "y": Y_METRIC, "loss": LOSS_METRIC,
            "panels": panels}


def plot(sweep: dict, path: Path, source: str) -> Path:
    from experiments.common.plots import plt, save_figure

    panels = sweep["panels"]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, panel in zip(axes[0], panels):
        for i, p in enumerate(panel["points"]):
            marker = "o" if p["engine"] == "baseline" else "s"
            ax.scatter(p[X_METRIC + "_values"], p[Y_METRIC + "_values"], marker=marker, color=colors(i),
                       alpha=0.3, s=14)
            ax.scatter([p[X_METRIC]], [p[Y_METRIC]], marker=marker, color=colors(i), s=60,
                       label=f"{p['name']} ({p['engine']} engine)")
        ax.set_xlabel("short-request p90 TTFT (ms), lower is better")
        ax.set_ylabel("output tokens/s, higher is better")
        ax.set_title(f"{panel['workload']} at rate {panel['request_rate']} req/s\n"
                     "big marker = median, small = repeats", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    return save_figure(fig, path, source=source)


def write_outputs(bench_dir: Path) -> dict:
    sweep = collect(bench_dir)
    write_json_atomic(bench_dir / "sweep.json", sweep)
    plot(sweep, bench_dir / "sweep.png", source=f"{bench_dir.name}/sweep.json")
    return sweep


# Simulated arms (experiments.sim: vLLM's real Scheduler of each engine on a virtual clock). The CPU
# cost model is calibrated on in-process engine steps and runs faster than real serving here
# (results/reference/sim/README.md), so only the order of the arms is read from it, never a figure as a
# measurement; the H100 roofline uses a Llama-3.1-8B shape and is modeled.
SIM_OUT = Path("results/reference/sim/long-docs")
SIM_COST_MODELS = ("cpu", "roofline-h100:experiments/sim/shapes/llama-3.1-8b.json")
SIM_SEEDS = (0, 1, 2, 3, 4)


def simulate(out: Path = SIM_OUT, cost_models=SIM_COST_MODELS, seeds=SIM_SEEDS) -> dict:
    """Every long-docs arm on every arrival pattern of the preset, for each cost model and seed."""
    from experiments.common.provenance import provenance
    from experiments.sim import api

    cfg = presets.resolve(PRESET)
    points = {arm: {**presets.VARIANTS[arm], "engine_args": {**presets.LONG_DOCS_ENGINE_ARGS,
                                                              **presets.VARIANTS[arm]["engine_args"]}}
              for arm in presets.LONG_DOCS_ARMS}
    panels = []
    for cost_model in cost_models:
        for workload, rate in cfg["request_rate"].items():
            rows = api.sweep(points, workload, [rate], list(seeds), cost_model)
            arms = []
            for arm in points:
                mine = [r for r in rows if r["point"] == arm]
                point = {"name": arm, "engine": points[arm]["engine"],
                         "engine_args": presets.VARIANTS[arm]["engine_args"], "seeds": [r["seed"] for r in mine]}
                for metric in (X_METRIC, Y_METRIC, LOSS_METRIC):
                    vals = [float({**r["summary"], **r["bench_serve"]}[metric]) for r in mine]
                    point[metric] = statistics.median(vals)
                    point[metric + "_values"] = vals
                arms.append(point)
            panels.append({"workload": workload, "request_rate": rate, "cost_model": cost_model,
                           "label": rows[0]["label"], "series": rows[0].get("series"), "points": arms})
    result = {"what": "simulated long-docs arms (not measured)", "x": X_METRIC, "y": Y_METRIC,
              "loss": LOSS_METRIC, "seeds": list(seeds), "panels": panels,
              "provenance": provenance(argv=["python", "-m", "experiments.patch0002.sweep", "--sim"])}
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "sweep_sim.json", result)
    plot({"panels": [{**p, "workload": f"{p['workload']} [{p['label']}]"} for p in panels]},
         out / "sweep_sim.png", source=f"{out}/sweep_sim.json")
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m experiments.patch0002.sweep", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help=f"{len(QUICK_ARMS)} arms ({', '.join(QUICK_ARMS)}), 1 repeat, 24 requests: a pipeline check")
    ap.add_argument("--repeats", type=int, help="repeats per arm (default: the preset's, --quick: 1)")
    ap.add_argument("--arms", help=f"comma-separated subset of: {', '.join(presets.LONG_DOCS_ARMS)}")
    ap.add_argument("--rate", help="only long_docs at this request rate (default: the preset's two arrival "
                    "patterns, Poisson below capacity and a burst at capacity, from one server start)")
    ap.add_argument("--allow-busy", action="store_true",
                    help="run even if other processes keep the CPUs busy (the manifest marks it busy)")
    ap.add_argument("--out", type=Path, default=runner.DEFAULT_OUT, help="results root")
    ap.add_argument("--plot-only", type=Path, metavar="BENCH_DIR", help="re-plot a finished sweep")
    ap.add_argument("--sim", action="store_true",
                    help=f"simulate every arm instead (vLLM's real Scheduler on a virtual clock, seeds "
                         f"{SIM_SEEDS[0]}-{SIM_SEEDS[-1]}, CPU cost model and an H100 roofline) -> {SIM_OUT}/")
    args = ap.parse_args(argv)
    if args.sim:
        for panel in simulate()["panels"]:
            print(f"  {panel['workload']} at {panel['request_rate']} [{panel['label']}]:")
            for p in panel["points"]:
                print(f"  {p['name']:>28}: {Y_METRIC} {p[Y_METRIC]:9.1f}  {X_METRIC} {p[X_METRIC]:9.1f}  "
                      f"{LOSS_METRIC} {p[LOSS_METRIC]:9.1f}")
        return 0
    if args.plot_only:
        sweep = write_outputs(args.plot_only)
    else:
        arms = QUICK_ARMS if args.quick else list(presets.LONG_DOCS_ARMS)
        if args.arms:
            arms = args.arms.split(",")
            unknown = [a for a in arms if a not in presets.LONG_DOCS_ARMS]
            if unknown:
                raise SystemExit(f"unknown arm(s) {unknown}; known: {', '.join(presets.LONG_DOCS_ARMS)}")
        if "baseline" not in arms:
            arms = ["baseline", *arms]  # the bench's reference
        cfg = sweep_config(arms, args.repeats or (1 if args.quick else None), args.quick, args.rate)
        cfg["machine_before"] = machine.sample_idle_machine()
        cfg["busy_machine"] = machine.check_quiet(cfg["machine_before"], allow_busy=args.allow_busy)
        print(f"[sweep] {len(arms)} arm(s) x {cfg['repeats']} repeat(s): {', '.join(arms)}", flush=True)
        final = runner.run_bench(cfg, args.out, argv=["python", "-m", "experiments.patch0002.sweep", *argv])
        sweep = write_outputs(final)
        args.plot_only = final
    for panel in sweep["panels"]:
        print(f"  {panel['workload']} at rate {panel['request_rate']}:")
        for p in panel["points"]:
            print(f"  {p['name']:>28}: {Y_METRIC} {p[Y_METRIC]:8.1f}  {X_METRIC} {p[X_METRIC]:8.1f}  "
                  f"{LOSS_METRIC} {p.get(LOSS_METRIC, float('nan')):8.1f}  (n={p['repeats']})")
    print(f"[sweep] {args.plot_only}/sweep.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
