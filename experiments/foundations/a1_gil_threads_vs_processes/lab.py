"""Measure threads vs processes on four kinds of work; plot throughput and per-core CPU use.

    python -m experiments.foundations.a1_gil_threads_vs_processes [--quick] [--render-only] [--workers N ...] [--repeats N]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from experiments.common.fmt import machine_short as machine_line
from experiments.common.fmt import md_table
from experiments.common.fmt import sig as fmt
from experiments.common.lab import LabFiles, run_lab
from experiments.common.plots import plt, save_figure
from experiments.common.stats import summarize
from experiments.foundations.a1_gil_threads_vs_processes.workloads import WORKLOADS, warm_up_worker
from experiments.foundations.a_common.cpu_sampler import CpuSampler, tree_cpu_seconds

LAB_DIR = Path(__file__).resolve().parent
BENCHMARK_VERSION = 1
RESULT = "a1_threads_vs_processes"  # results/a1_threads_vs_processes.json
EXECUTORS = ("threads", "processes")


@dataclass
class Config:
    workloads: list[str] = field(default_factory=lambda: list(WORKLOADS))
    workers: list[int] = field(default_factory=lambda: [1, 2, 4])
    tasks: int = 8            # total tasks per run, split over the workers
    scale: float = 1.0        # task size; 1.0 is ~0.1 s on one core
    repeats: int = 5
    sample_interval_s: float = 0.05
    timeline_workload: str = "python_loop"  # whose per-core timeline gets plotted

    @classmethod
    def quick(cls) -> "Config":
        return cls(workers=[1, 2], tasks=4, scale=0.5, repeats=2)


def make_executor(kind: str, workers: int) -> Executor:
    if kind == "threads":
        return ThreadPoolExecutor(max_workers=workers)
    # spawn, as vLLM does for its workers: a fresh interpreter per process, no forked locks.
    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))


def start_executor(kind: str, workers: int) -> tuple[Executor, float]:
    """Create the pool and make every worker exist; return it with its start-up time."""
    t0 = time.perf_counter()
    ex = make_executor(kind, workers)
    list(ex.map(warm_up_worker, range(workers)))
    return ex, time.perf_counter() - t0


def run_once(ex: Executor, workload: str, cfg: Config, sample: bool) -> dict:
    fn = WORKLOADS[workload]
    cpu0 = tree_cpu_seconds()
    with CpuSampler(cfg.sample_interval_s) as sampler:
        t0 = time.perf_counter()
        list(ex.map(fn, [cfg.scale] * cfg.tasks))
        wall = time.perf_counter() - t0
    cpu = tree_cpu_seconds() - cpu0
    out = {"wall_s": wall, "tasks_per_s": cfg.tasks / wall, "cpu_s": cpu,
           # CPU seconds of our own process tree per wall second: unaffected by other users.
           "cores_used": cpu / wall,
           "per_core_util_pct": sampler.mean_per_core()}
    if sample:
        out["timeline"] = sampler.samples
    return out


def measure(cfg: Config, log=print) -> dict:
    configs = [(w, k, n) for w in cfg.workloads for k in EXECUTORS for n in cfg.workers]
    runs: dict[tuple, list[dict]] = {c: [] for c in configs}
    startups: dict[tuple, list[float]] = {c: [] for c in configs}
    # Round-robin over configurations, one repeat at a time: a burst of load from another job
    # then hits one repeat of every configuration instead of all repeats of one.
    for rep in range(cfg.repeats):
        for c in configs:
            workload, kind, workers = c
            ex, startup = start_executor(kind, workers)
            try:
                runs[c].append(run_once(ex, workload, cfg, sample=(rep == 0)))
            finally:
                ex.shutdown()
            startups[c].append(startup)
        log(f"repeat {rep + 1}/{cfg.repeats} done")
    rows = []
    for c in configs:
        workload, kind, workers = c
        wall = summarize([r["wall_s"] for r in runs[c]])
        row = {
            "workload": workload, "executor": kind, "workers": workers,
            "startup_s": statistics.median(startups[c]),
            "wall_s": wall,
            "tasks_per_s": summarize([r["tasks_per_s"] for r in runs[c]]),
            "cores_used": summarize([r["cores_used"] for r in runs[c]]),
            "per_core_util_pct": [statistics.median(x) for x in zip(*(r["per_core_util_pct"] for r in runs[c]))],
            "timeline": runs[c][0].get("timeline", []),
        }
        rows.append(row)
        log(f"{workload:15s} {kind:9s} x{workers}: wall {wall['median']:.3f} s (spread {wall['rel_spread']:.0%}), "
            f"cores used {row['cores_used']['median']:.2f}, start-up {row['startup_s']:.3f} s")
    # Speed-up against one worker of the same executor, from medians.
    for row in rows:
        base = next(r for r in rows if r["workload"] == row["workload"]
                    and r["executor"] == row["executor"] and r["workers"] == min(cfg.workers))
        row["speedup_vs_1"] = base["wall_s"]["median"] / row["wall_s"]["median"]
    return {"rows": rows}


def find(rows: list[dict], workload: str, executor: str, workers: int) -> dict:
    return next(r for r in rows if r["workload"] == workload and r["executor"] == executor
                and r["workers"] == workers)


def plot_throughput(doc: dict, path: Path, source: str) -> None:
    rows, cfg = doc["results"]["rows"], doc["config"]
    fig, axes = plt.subplots(2, len(cfg["workloads"]), figsize=(3.4 * len(cfg["workloads"]), 6), squeeze=False)
    for j, workload in enumerate(cfg["workloads"]):
        for kind, style in zip(EXECUTORS, ("o-", "s--")):
            sel = [find(rows, workload, kind, w) for w in cfg["workers"]]
            med = [r["tasks_per_s"]["median"] for r in sel]
            err = [[m - r["tasks_per_s"]["min"] for m, r in zip(med, sel)],
                   [r["tasks_per_s"]["max"] - m for m, r in zip(med, sel)]]
            axes[0][j].errorbar(cfg["workers"], med, yerr=err, fmt=style, capsize=3, label=kind)
            axes[1][j].plot(cfg["workers"], [r["cores_used"]["median"] for r in sel], style, label=kind)
        axes[0][j].set_title(workload)
        if j == 0:
            axes[0][j].set_ylabel("tasks / s (median, min-max)")
            axes[1][j].set_ylabel("cores used (own CPU s / wall s)")
        axes[1][j].axhline(doc["provenance"]["machine"]["cpu_count"], color="grey", lw=0.8, ls=":")
        for ax in (axes[0][j], axes[1][j]):
            ax.set_xlabel("workers")
            ax.set_xticks(cfg["workers"])
            ax.set_ylim(bottom=0)
        axes[0][j].legend(fontsize=8)
    fig.suptitle("Threads vs processes: throughput and CPU actually used")
    save_figure(fig, path, source=source)


def plot_timeline(doc: dict, path: Path, source: str) -> None:
    rows, cfg = doc["results"]["rows"], doc["config"]
    workers = min(2, max(cfg["workers"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for ax, kind in zip(axes, EXECUTORS):
        row = find(rows, cfg["timeline_workload"], kind, workers)
        ts = [s["t_s"] for s in row["timeline"]]
        for core in range(len(row["timeline"][0]["percpu"]) if row["timeline"] else 0):
            ax.plot(ts, [s["percpu"][core] for s in row["timeline"]], label=f"core {core}")
        ax.set_title(f"{cfg['timeline_workload']}, {kind} x{workers}")
        ax.set_xlabel("time since start of run (s)")
        ax.set_ylim(0, 105)
        if row["timeline"]:
            ax.legend(fontsize=8)
    axes[0].set_ylabel("CPU utilisation % (whole machine, per core)")
    save_figure(fig, path, source=source)


def io_wait_line(rows: list[dict], w: int) -> str:
    """Sleeping workers use next to no CPU, and the kernel counts CPU time in clock ticks: their "cores used" is
    a tick or two over the run, so the line gives the tick's size instead of reading the figure as a measurement."""
    t, p = find(rows, "io_wait", "threads", w), find(rows, "io_wait", "processes", w)
    tick_s = 1 / os.sysconf("SC_CLK_TCK")
    tick_cores = tick_s / min(t["wall_s"]["median"], p["wall_s"]["median"])
    return (f"- I/O wait: threads {fmt(t['speedup_vs_1'])}x, processes {fmt(p['speedup_vs_1'])}x; cores used "
            f"{fmt(t['cores_used']['median'])} and {fmt(p['cores_used']['median'])}: a few ticks of CPU-time accounting at "
            f"most (one {fmt(tick_s * 1e3)} ms clock tick over a {fmt(t['wall_s']['median'])} s run is "
            f"{fmt(tick_cores)} cores): read them as \"almost none\", not as figures.")


def readme_tables(doc: dict) -> str:
    rows = doc["results"]["rows"]
    table = md_table(
        ["workload", "executor", "workers", "wall s median (min-max)", "tasks/s", "speed-up vs 1",
         "cores used", "pool start-up s"],
        [[r["workload"], r["executor"], r["workers"],
          f"{fmt(r['wall_s']['median'])} ({fmt(r['wall_s']['min'])}-{fmt(r['wall_s']['max'])})",
          fmt(r["tasks_per_s"]["median"]), fmt(r["speedup_vs_1"]), fmt(r["cores_used"]["median"]),
          fmt(r["startup_s"])] for r in rows])
    w = 2 if any(r["workers"] == 2 for r in rows) else max(r["workers"] for r in rows)

    def speed(workload: str, kind: str) -> str:
        r = find(rows, workload, kind, w)
        return f"{fmt(r['speedup_vs_1'])}x, {fmt(r['cores_used']['median'])} cores"

    key = "\n".join([
        f"- pure Python, {w} workers vs 1: threads {speed('python_loop', 'threads')}; "
        f"processes {speed('python_loop', 'processes')}.",
        f"- hashlib (releases the GIL): threads {speed('sha256_hashlib', 'threads')}; "
        f"processes {speed('sha256_hashlib', 'processes')}.",
        f"- numpy ufunc (releases the GIL): threads {speed('numpy_exp', 'threads')}; "
        f"processes {speed('numpy_exp', 'processes')}.",
        io_wait_line(rows, w),
        f"- price of a process: starting a pool of {w} spawned workers took "
        f"{fmt(find(rows, 'python_loop', 'processes', w)['startup_s'])} s vs "
        f"{fmt(find(rows, 'python_loop', 'threads', w)['startup_s'])} s for threads "
        f"(both include one 0.05 s warm-up task per worker).",
    ])
    return f"Measured on: {machine_line(doc)}.\n\nKey figures (speed-up of the median wall time, and cores used):\n\n{key}\n\n{table}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, nargs="+", help="worker counts to sweep")
    parser.add_argument("--repeats", type=int)


def run_cpu(files: LabFiles, args: argparse.Namespace) -> None:
    cfg = Config.quick() if args.quick else Config()
    if args.workers:
        cfg.workers = sorted(args.workers)
    if args.repeats:
        cfg.repeats = args.repeats
    print(f"a1: {os.cpu_count()} CPUs, config {cfg}", file=sys.stderr)
    files.write(RESULT, measure(cfg), config=asdict(cfg), benchmark_version=BENCHMARK_VERSION,
                extra_packages=["psutil"])


def render(files: LabFiles) -> dict[str, str]:
    """Plots and tables read the result file, not the in-memory results: the README shows what the JSON holds."""
    doc = files.require(RESULT)
    source = files.rel(files.result_path(RESULT))
    plot_throughput(doc, files.plot_path("a1_throughput_and_cores"), source)
    plot_timeline(doc, files.plot_path("a1_cpu_timeline"), source)
    return {"a1-results": readme_tables(doc)}


def main(argv: list[str] | None = None) -> int:
    return run_lab(argv, doc=__doc__, lab_dir=LAB_DIR, run_cpu=run_cpu, render=render, add_arguments=add_arguments)
