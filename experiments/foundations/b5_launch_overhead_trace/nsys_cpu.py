"""b5 under Nsight Systems on a CPU: the tiny transformer's forwards with NVTX ranges per forward and per layer.

    python -m experiments.foundations.b5_launch_overhead_trace --nsys-cpu

Runs `--nsys-cpu-workload` (one intra-op thread; warm-up, then N_FORWARDS forwards of each path, each forward an NVTX
range `<path> forward[i]` holding `embed`, `layer[j]`, `head`) under the same nsys CPU recipe as
`make trace` (NVTX + OS runtime, experiments.trace.recipes), imports and exports the report, checks
it holds NVTX ranges, and keeps the `.nsys-rep` (opens in nsys-ui), a JSON of what the ranges say
(forward and layer times, the white space between ranges inside a forward) and a timeline drawn from
the export. Without nsys it says so and writes nothing.
"""
from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from experiments.common.plots import plt, save_figure
from experiments.common.stats import summarize

WORKLOAD_FLAG = "--nsys-cpu-workload"
N_FORWARDS = 50
THREADS = 1  # one intra-op thread: on 2 shared cores a parallel op waits for a descheduled worker
WARMUP = 5
PATHS = {"small_ops": False, "fused": True}
REPORT_NAME = "cpu_nsys_forwards.nsys-rep"


def workload() -> int:
    """What runs under nsys (no profiler of its own): both paths, NVTX per forward and per layer."""
    import nvtx
    import torch

    from experiments.foundations.b5_launch_overhead_trace.tiny_model import TinyConfig, make_model, make_tokens

    cfg = TinyConfig()
    tokens = make_tokens(cfg)
    torch.set_num_threads(THREADS)
    with torch.inference_mode():
        for name, fused in PATHS.items():
            model = make_model(cfg, fused=fused)
            for _ in range(WARMUP):
                model(tokens)
            model.range_factory = nvtx.annotate
            for i in range(N_FORWARDS):
                with nvtx.annotate(f"{name} forward[{i}]"):
                    model(tokens)
    return 0


def capture(out_dir: Path, timeout_s: float = 300) -> tuple[Path, Path]:
    """(report, sqlite) of one nsys run of the workload, in out_dir; raises TraceError with the cause."""
    from experiments.bench import processes
    from experiments.trace import nsys_run, recipes

    recipe = recipes.choose("cpu")
    base = out_dir / Path(REPORT_NAME).stem
    cmd = recipes.nsys_command(recipe, str(base), [sys.executable, "-m", "experiments.foundations."
                                                   "b5_launch_overhead_trace", WORKLOAD_FLAG])
    log = out_dir / "nsys.log"
    ran = nsys_run.run_profiled(cmd, processes.variant_env("baseline"), log, timeout_s=timeout_s)
    if ran["timed_out"] or ran["rc"] != 0:
        raise nsys_run.TraceError(f"nsys run failed (rc={ran['rc']}, timed out: {ran['timed_out']}): "
                                  f"{log.read_text(errors='replace')[-1500:]}")
    rep = nsys_run.import_report(base, log)
    sqlite = nsys_run.export_sqlite(rep, log)
    nsys_run.check_nvtx(sqlite)
    return rep, sqlite


def analyse(ranges) -> dict:
    """Per path and forward: duration, time inside its child ranges, the white space between them."""
    from analysis import phases

    df = phases.self_times(ranges)
    out = {}
    for name in PATHS:
        fwd = df[df["name"].str.startswith(f"{name} forward[")].sort_values("ts_us")
        rows = []
        for idx, f in fwd.iterrows():
            kids = df[df["parent"] == idx].sort_values("ts_us")
            gaps = (kids["ts_us"].to_numpy()[1:] - kids["end_us"].to_numpy()[:-1]).tolist()
            layers = kids[kids["name"].str.startswith("layer[")]
            rows.append({"forward": f["name"], "dur_us": f["dur_us"], "children": len(kids),
                         "inside_children_us": float(kids["dur_us"].sum()),
                         "white_space_us": float(f["self_us"]), "gaps_between_children_us": gaps,
                         "layer_us": layers["dur_us"].tolist()})
        between = (fwd["ts_us"].to_numpy()[1:] - fwd["end_us"].to_numpy()[:-1]).tolist()
        out[name] = {
            "forwards": rows,
            "forward_us": summarize([r["dur_us"] for r in rows]),
            "layer_us": summarize([x for r in rows for x in r["layer_us"]]),
            "white_space_us": summarize([r["white_space_us"] for r in rows]),
            "white_space_fraction": statistics.median(r["white_space_us"] / r["dur_us"] for r in rows),
            "gap_between_forwards_us": summarize(between) if between else None,
        }
    return out


def median_forward_rows(ranges) -> dict[str, list[dict]]:
    """Per path, the ranges of its median-length forward relative to its start (what the timeline draws).

    The median one, not the last: on a shared machine any single forward may have been preempted."""
    out = {}
    for name in PATHS:
        fwds = ranges[ranges["name"].str.startswith(f"{name} forward[")].sort_values("dur_us")
        fwd = fwds.iloc[(len(fwds) - 1) // 2]
        inside = ranges[(ranges["ts_us"] >= fwd["ts_us"]) & (ranges["end_us"] <= fwd["end_us"])]
        out[name] = [{"name": r["name"], "start_us": float(r["ts_us"] - fwd["ts_us"]), "dur_us": float(r["dur_us"])}
                     for _, r in inside.sort_values("ts_us").iterrows()]
    return out


def plot_timeline(rows: dict[str, list[dict]], path: Path, source: str) -> Path:
    """The median forward of each path: forward row, embed/layer/head row; white is time in no range."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(11, 1.6 * len(rows) + 0.8), sharex=True)
    for ax, (name, rs) in zip(axes, rows.items()):
        for r in rs:
            top = " forward[" in r["name"]
            y, color = (1.1, "#4c72b0") if top else (0.1, "#8c8c8c" if r["name"] in ("embed", "head") else "#dd8452")
            ax.broken_barh([(r["start_us"] / 1e3, r["dur_us"] / 1e3)], (y, 0.8), facecolors=color,
                           edgecolor="white", linewidth=0.5)
            label = f"  {r['name']}: {r['dur_us'] / 1e3:.2f} ms" if top else (
                r["name"] if r["name"].startswith("layer[") else "")
            ax.text(r["start_us"] / 1e3 + (0 if top else r["dur_us"] / 2e3), y + 0.4, label,
                    ha="left" if top else "center", va="center", fontsize=7, color="white" if top else "black")
        ax.set_yticks([0.5, 1.5], ["NVTX: embed / layer[j] / head", "NVTX: forward"], fontsize=8)
        ax.set_ylim(0, 2)
    axes[-1].set_xlabel("ms since the forward began (Nsight Systems 2022.4 on CPU; drawn from its SQLite export)")
    fig.tight_layout()
    return save_figure(fig, path, source=source)


def run(files) -> bool:
    """Capture, analyse, keep report + JSON + timeline in the lab's results/plots; False when skipped."""
    from analysis import nsys_sqlite
    from experiments.foundations.b_common import lab

    if shutil.which("nsys") is None:
        lab.skip("nsys not installed (`make nsys` installs Debian's nsight-systems as root)",
                 "b5 nsys trace of the CPU forwards")
        return False
    with tempfile.TemporaryDirectory() as tmp:
        rep, sqlite = capture(Path(tmp))
        ranges = nsys_sqlite.nvtx_ranges(sqlite)
        info = nsys_sqlite.export_info(sqlite)
        kept = files.results / REPORT_NAME
        shutil.copy(rep, kept)
        result = {"nsys_version": info.get("EXPORT_PRODUCT_VERSION"), "report": files.rel(kept),
                  "report_bytes": kept.stat().st_size, "nvtx_ranges": int(len(ranges)),
                  "paths": analyse(ranges), "median_forward_ranges": median_forward_rows(ranges)}
    files.write("cpu_nsys_trace", result,
                config={"forwards_per_path": N_FORWARDS, "warmup": WARMUP, "torch_threads": THREADS,
                        "nsys_recipe": "experiments.trace.recipes CPU recipe (NVTX + OS runtime)"})
    return True
