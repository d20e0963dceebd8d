"""Patch 0002 trade-off sweep: throughput vs short-request p90 TTFT on mixed_long_short.

    python -m experiments.patch0002.sweep [--quick] [--repeats N] [--out DIR]
    python -m experiments.patch0002.sweep --plot-only results/bench/<patch0002-sweep-...>

Each sweep point is one bench variant (serve mode, the prefill-cap preset's
settings): the baseline engine at several `max_num_batched_tokens` /
`long_prefill_token_threshold` values (what upstream already offers), and the
patched engine with `max_long_prefill_tokens_per_step` at several caps. The
points run through the ordinary bench (experiments.bench.runner.run_bench:
preflight, variants interleaved per repeat, atomic result dir), then
`sweep.json` (medians per point, read from the run records) and `sweep.png`
(output tokens/s against short-request p90 TTFT) are written into that bench
directory. Nothing is typed by hand: every number comes from runs/*.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from experiments.bench import presets, runner
from experiments.common.results import write_json_atomic

WORKLOAD = "mixed_long_short"
X_METRIC = "short_p90_ttft_ms"
Y_METRIC = "output_throughput"


def point(engine: str, **engine_args) -> dict:
    return {"engine": engine, "env": {}, "engine_args": engine_args}


# name -> variant. "baseline" (upstream defaults) is the bench's reference.
# Serve budget on CPU defaults to 2048 tokens per step; long prompts are ~1536 tokens.
FULL_POINTS = {
    "baseline": point("baseline"),
    "base-mbt1024": point("baseline", max_num_batched_tokens=1024),
    "base-mbt4096": point("baseline", max_num_batched_tokens=4096),
    "base-lpt512": point("baseline", long_prefill_token_threshold=512),
    "base-lpt256": point("baseline", long_prefill_token_threshold=256),
    "cap256": point("patched", max_long_prefill_tokens_per_step=256),
    "cap512": point("patched", max_long_prefill_tokens_per_step=512),
    "cap1024": point("patched", max_long_prefill_tokens_per_step=1024),
    "cap512-lpt256": point("patched", max_long_prefill_tokens_per_step=512, long_prefill_token_threshold=256),
    "cap512-mbt4096": point("patched", max_long_prefill_tokens_per_step=512, max_num_batched_tokens=4096),
}
QUICK_POINTS = {k: FULL_POINTS[k] for k in ("baseline", "cap512")}


def sweep_config(points: dict[str, dict], repeats: int, quick: bool, rate: str | None = None) -> dict:
    cfg = presets.resolve("prefill-cap", repeats=repeats, backend=presets_backend())
    cfg["preset"] = "patch0002-sweep" + ("-quick" if quick else "")
    cfg["description"] = "patch 0002 sweep: throughput vs short-request p90 TTFT"
    cfg["variants"] = list(points)
    cfg["variant_defs"] = points
    cfg["modes"] = ["serve"]
    cfg["workloads"] = {WORKLOAD: {"num_requests": 32} if quick else cfg["workloads"][WORKLOAD]}
    cfg["request_rate"] = {WORKLOAD: rate or cfg["request_rate"].get(WORKLOAD, 16)}
    return cfg


def presets_backend() -> str:
    from experiments.bench.__main__ import detect_backend
    return detect_backend()


def collect(bench_dir: Path) -> dict:
    """Median per sweep point of the x/y metrics, from the bench's run records."""
    manifest = json.loads((bench_dir / "manifest.json").read_text())
    if manifest.get("status") != "complete":
        raise SystemExit(f"{bench_dir}: status {manifest.get('status')!r}, not complete")
    defs = manifest["config"]["variant_defs"]
    values: dict[str, dict[str, list[float]]] = {v: {X_METRIC: [], Y_METRIC: []} for v in defs}
    for path in sorted((bench_dir / "runs").glob("*.json")):
        run = json.loads(path.read_text())
        wl = run["result"].get("workloads", {}).get(WORKLOAD)
        if not wl:
            continue
        for m in (X_METRIC, Y_METRIC):
            if wl.get(m) is not None:
                values[run["variant"]][m].append(float(wl[m]))
    points = []
    for name, d in defs.items():
        vals = values[name]
        if not vals[X_METRIC] or not vals[Y_METRIC]:
            continue
        points.append({"name": name, "engine": d["engine"], "engine_args": d["engine_args"],
                       "repeats": len(vals[Y_METRIC]),
                       X_METRIC: statistics.median(vals[X_METRIC]), Y_METRIC: statistics.median(vals[Y_METRIC]),
                       X_METRIC + "_values": vals[X_METRIC], Y_METRIC + "_values": vals[Y_METRIC]})
    return {"bench_id": manifest["bench_id"], "workload": WORKLOAD, "x": X_METRIC, "y": Y_METRIC,
            "request_rate": manifest["config"]["request_rate"].get(WORKLOAD), "points": points}


def plot(sweep: dict, path: Path, source: str) -> Path:
    from experiments.common.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"baseline": ("o", "tab:grey", "baseline engine (upstream knobs)"),
              "patched": ("s", "tab:blue", "patched: max_long_prefill_tokens_per_step")}
    seen = set()
    for p in sweep["points"]:
        marker, color, label = styles[p["engine"]]
        ax.scatter(p[X_METRIC + "_values"], p[Y_METRIC + "_values"], marker=marker, color=color, alpha=0.25, s=14)
        ax.scatter([p[X_METRIC]], [p[Y_METRIC]], marker=marker, color=color, s=50,
                   label=None if p["engine"] in seen else label)
        seen.add(p["engine"])
        ax.annotate(p["name"], (p[X_METRIC], p[Y_METRIC]), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.set_xlabel("short-request p90 TTFT (ms), lower is better")
    ax.set_ylabel("output tokens/s, higher is better")
    ax.set_title(f"patch 0002 trade-off on {sweep['workload']} (rate {sweep['request_rate']} req/s); "
                 "big marker = median, small = repeats", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path, source=source)


def write_outputs(bench_dir: Path) -> dict:
    sweep = collect(bench_dir)
    write_json_atomic(bench_dir / "sweep.json", sweep)
    plot(sweep, bench_dir / "sweep.png", source=f"{bench_dir.name}/sweep.json")
    return sweep


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m experiments.patch0002.sweep", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="2 points (baseline, cap512), 1 repeat, 32 requests: checks the pipeline (~3 min)")
    ap.add_argument("--repeats", type=int, help="repeats per point (default: 3, --quick: 1)")
    ap.add_argument("--points", help=f"comma-separated subset of: {', '.join(FULL_POINTS)}")
    ap.add_argument("--rate", help="request rate for mixed_long_short (default: the prefill-cap preset's, 16); "
                    "at a fixed rate output tokens/s mostly follows the arrival rate, `inf` measures capacity")
    ap.add_argument("--out", type=Path, default=runner.DEFAULT_OUT, help="results root")
    ap.add_argument("--plot-only", type=Path, metavar="BENCH_DIR", help="re-plot a finished sweep")
    args = ap.parse_args(argv)
    if args.plot_only:
        sweep = write_outputs(args.plot_only)
    else:
        points = QUICK_POINTS if args.quick else FULL_POINTS
        if args.points:
            unknown = [p for p in args.points.split(",") if p not in FULL_POINTS]
            if unknown:
                raise SystemExit(f"unknown point(s) {unknown}; known: {', '.join(FULL_POINTS)}")
            points = {p: FULL_POINTS[p] for p in args.points.split(",")}
        if "baseline" not in points:
            points = {"baseline": FULL_POINTS["baseline"], **points}  # the bench's reference
        repeats = args.repeats or (1 if args.quick else 3)
        cfg = sweep_config(points, repeats, args.quick, args.rate)
        print(f"[sweep] {len(points)} point(s) x {repeats} repeat(s): {', '.join(points)}", flush=True)
        final = runner.run_bench(cfg, args.out, argv=["python", "-m", "experiments.patch0002.sweep", *argv])
        sweep = write_outputs(final)
        args.plot_only = final
    for p in sweep["points"]:
        print(f"  {p['name']:>16}: {Y_METRIC} {p[Y_METRIC]:8.1f}  {X_METRIC} {p[X_METRIC]:8.1f}  (n={p['repeats']})")
    print(f"[sweep] {args.plot_only}/sweep.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
