"""Bench result directories (written by experiments.bench.runner) -> pandas DataFrames.

Only complete benches are read: a directory whose manifest says anything but
"complete", or whose name ends in .partial/.incomplete, is refused, so an
interrupted run can never leak into a report.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from experiments.bench.aggregate import metric_rows


class IncompleteBench(ValueError):
    pass


def load_manifest(bench_dir: str | os.PathLike) -> dict:
    bench_dir = Path(bench_dir)
    if bench_dir.name.endswith((".partial", ".incomplete")):
        raise IncompleteBench(f"{bench_dir}: an interrupted or running bench; not read")
    mpath = bench_dir / "manifest.json"
    if not mpath.exists():
        raise IncompleteBench(f"{bench_dir}: no manifest.json; not a bench result directory")
    manifest = json.loads(mpath.read_text())
    if manifest.get("status") != "complete":
        raise IncompleteBench(f"{bench_dir}: status {manifest.get('status')!r} "
                              f"({manifest.get('reason', 'no reason recorded')}); not read")
    for f in ("summary.json",):
        if not (bench_dir / f).exists():
            raise IncompleteBench(f"{bench_dir}: {f} missing although status is complete")
    return manifest


def load_runs(bench_dir: str | os.PathLike) -> list[dict]:
    bench_dir = Path(bench_dir)
    manifest = load_manifest(bench_dir)
    runs = [json.loads(p.read_text()) for p in sorted((bench_dir / "runs").glob("*.json"))]
    if len(runs) != len(manifest.get("run_order", runs)):
        raise IncompleteBench(f"{bench_dir}: {len(runs)} run files, manifest lists {len(manifest['run_order'])}")
    return runs


def runs_frame(bench_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per (variant, repeat, mode, workload, metric) value."""
    return pd.DataFrame([r for run in load_runs(bench_dir) for r in metric_rows(run)])


def summary(bench_dir: str | os.PathLike) -> list[dict]:
    load_manifest(bench_dir)
    return json.loads((Path(bench_dir) / "summary.json").read_text())


def summary_frame(bench_dir: str | os.PathLike) -> pd.DataFrame:
    """Columns variant, mode, workload, metric, median, min, max, n, noise_floor, delta, verdict
    (the input analysis.plots.metric_bars expects)."""
    rows = []
    for row in summary(bench_dir):
        cmp = row["vs_baseline"]
        for v, s in row["variants"].items():
            rows.append({"variant": v, "mode": row["mode"], "workload": row["workload"], "metric": row["metric"],
                         "median": s["median"], "min": s["min"], "max": s["max"], "n": s["n"],
                         "noise_floor": row["noise_floor"], "delta": cmp.get(v, {}).get("delta"),
                         "verdict": cmp.get(v, {}).get("verdict", "reference")})
    return pd.DataFrame(rows)


def latency_frame(bench_dir: str | os.PathLike) -> pd.DataFrame:
    """Per-request TTFT and per-token ITL (ms) of serve runs: variant, repeat, workload, kind, value."""
    rows = []
    for run in load_runs(bench_dir):
        if run["mode"] != "serve":
            continue
        for wl, w in run["result"]["workloads"].items():
            for kind, key in (("ttft_ms", "ttfts_s"), ("itl_ms", "itls_s")):
                rows += [{"variant": run["variant"], "repeat": run["repeat"], "workload": wl, "kind": kind,
                          "value": x * 1e3} for x in w.get(key, [])]
    return pd.DataFrame(rows, columns=["variant", "repeat", "workload", "kind", "value"])


def complete_benches(root: str | os.PathLike) -> list[Path]:
    """Complete bench dirs anywhere under root (e.g. results/reference/cpu/...), sorted by bench id
    (preset, backend, UTC time: oldest first within a preset); incomplete ones are skipped."""
    out = []
    for d in {m.parent for m in Path(root).rglob("manifest.json")}:
        try:
            load_manifest(d)
        except IncompleteBench:
            continue
        out.append(d)
    return sorted(out, key=lambda d: (d.name, str(d)))
