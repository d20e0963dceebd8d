"""Run the streaming request queue in threading, multiprocessing and asyncio; compare latency and accounting.

    python -m experiments.foundations.a2_producer_consumer_queues [--quick] [--render-only] [--models M ...] [--duration S]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from experiments.common.fmt import machine_short as machine_line
from experiments.common.fmt import md_table
from experiments.common.fmt import sig as fmt
from experiments.common.lab import LabFiles, run_lab
from experiments.common.plots import plt, save_figure
from experiments.foundations.a2_producer_consumer_queues.scenario import Scenario
from experiments.foundations.a2_producer_consumer_queues.service_models import MODELS

LAB_DIR = Path(__file__).resolve().parent
BENCHMARK_VERSION = 2  # 2: cpu_step spins on thread CPU time (was a wall-clock deadline); Little's law
RESULT = "a2_producer_consumer"  # results/a2_producer_consumer.json


@dataclass
class Config:
    duration_s: float = 4.0
    workers: int = 4
    queue_size: int = 8
    tokens: int = 16
    # gpu_wait: prefill 10 ms + 16 x 5 ms of waiting = 90 ms per request -> 4 workers serve ~44 req/s.
    # cpu_step: prefill 4 ms + 16 x 1 ms of Python = 20 ms of CPU -> one core serves ~50 req/s.
    steady_load: float = 0.6       # arrival rate as a fraction of that nominal capacity
    overload_load: float = 2.0
    overload_shutdown_frac: float = 0.6  # shutdown begins this far into the arrival window
    overload_drain_deadline_s: float = 0.1
    models: list[str] = field(default_factory=lambda: list(MODELS))
    work_kinds: list[str] = field(default_factory=lambda: ["gpu_wait", "cpu_step"])
    seed: int = 0

    @classmethod
    def quick(cls) -> "Config":
        return cls(duration_s=1.2)


def scenarios(cfg: Config) -> list[Scenario]:
    out = []
    for kind in cfg.work_kinds:
        if kind == "gpu_wait":
            base = Scenario(work_kind=kind, prefill_ms=10, token_ms=5)
            capacity = cfg.workers / ((10 + cfg.tokens * 5) / 1e3)
        else:
            base = Scenario(work_kind=kind, prefill_ms=4, token_ms=1)
            capacity = 1 / ((4 + cfg.tokens * 1) / 1e3)
        base = dataclasses.replace(base, duration_s=cfg.duration_s, workers=cfg.workers,
                                   queue_size=cfg.queue_size, tokens=cfg.tokens, seed=cfg.seed)
        out.append(dataclasses.replace(base, name="steady", rate_rps=cfg.steady_load * capacity))
        out.append(dataclasses.replace(
            base, name="overload+shutdown", rate_rps=cfg.overload_load * capacity,
            shutdown_at_s=cfg.overload_shutdown_frac * cfg.duration_s,
            drain_deadline_s=cfg.overload_drain_deadline_s))
    return out


def measure(cfg: Config, log=print) -> dict:
    rows = []
    for sc in scenarios(cfg):
        for model in cfg.models:
            summary = MODELS[model](sc).summary(sc)
            rows.append({"model": model, "scenario": sc.name, "work_kind": sc.work_kind,
                         "rate_rps": sc.rate_rps, "scenario_config": asdict(sc), **summary})
            c = summary["counts"]
            lat = summary.get("e2e", {})
            log(f"{sc.work_kind:8s} {sc.name:17s} {model:15s} submitted {c['submitted']:4d} "
                f"completed {c['completed']:4d} rejected {c['submitted'] - c['completed']:4d} lost {c['lost']} "
                f"e2e p99 {lat.get('p99_ms', float('nan')):7.1f} ms")
    return {"rows": rows}


def plot(doc: dict, path: Path, source: str) -> None:
    rows = doc["results"]["rows"]
    kinds = doc["config"]["work_kinds"]
    models = doc["config"]["models"]
    metrics = [("ttft", "time to first token"), ("stream_lag", "token emitted -> seen"), ("e2e", "end to end")]
    fig, axes = plt.subplots(len(kinds), len(metrics), figsize=(12, 3.3 * len(kinds)), squeeze=False)
    width = 0.38
    for i, kind in enumerate(kinds):
        for j, (metric, title) in enumerate(metrics):
            ax = axes[i][j]
            for k, scen in enumerate(("steady", "overload+shutdown")):
                sel = [next(r for r in rows if r["model"] == m and r["work_kind"] == kind and r["scenario"] == scen)
                       for m in models]
                p50 = [r.get(metric, {}).get("p50_ms", 0) for r in sel]
                p99 = [r.get(metric, {}).get("p99_ms", 0) for r in sel]
                xs = [x + (k - 0.5) * width for x in range(len(models))]
                ax.bar(xs, p99, width, alpha=0.35, color=f"C{k}")
                ax.bar(xs, p50, width, color=f"C{k}", label=f"{scen} (solid p50, pale p99)")
            ax.set_xticks(range(len(models)), models)
            ax.set_yscale("log")
            ax.set_title(f"{kind}: {title}")
            ax.set_ylabel("ms")
        axes[i][0].legend(fontsize=7)
    fig.suptitle("One streaming request queue, three concurrency models")
    save_figure(fig, path, source=source)


def readme_tables(doc: dict) -> str:
    rows = doc["results"]["rows"]

    def lat(r: dict, key: str) -> str:
        s = r.get(key)
        return f"{fmt(s['p50_ms'])} / {fmt(s['p99_ms'])}" if s else "-"

    table = md_table(
        ["work", "scenario", "model", "offered req/s", "submitted", "completed", "rejected: full / shutdown / drain",
         "lost", "TTFT p50 / p99 ms", "stream lag p50 / p99 ms", "e2e p50 / p99 ms", "tokens/s"],
        [[r["work_kind"], r["scenario"], r["model"], fmt(r["rate_rps"]), r["counts"]["submitted"],
          r["counts"]["completed"],
          f"{r['counts']['rejected_queue_full']} / {r['counts']['rejected_shutting_down']} / "
          f"{r['counts']['rejected_drain_deadline']}",
          r["counts"]["lost"], lat(r, "ttft"), lat(r, "stream_lag"), lat(r, "e2e"),
          fmt(r.get("tokens_per_s"))] for r in rows])
    little = md_table(
        ["work", "scenario", "model", "completed req/s (λ)", "mean e2e ms (W)", "λ·W: requests in system",
         "λ·S: busy workers at nominal S", "workers + queue"],
        [[r["work_kind"], r["scenario"], r["model"], fmt(r["requests_per_s"]), fmt(r["e2e"]["mean_ms"]),
          fmt(r["littles_law"]["in_system"]), fmt(r["littles_law"]["in_service_nominal"]),
          r["littles_law"]["server_capacity"]] for r in rows if "littles_law" in r])
    return (f"Measured on: {machine_line(doc)}.\n\n{table}\n\n"
            f"Little's law over each run (λ = completed / span from first arrival to last token, "
            f"S = nominal service time of one request):\n\n{little}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", choices=list(MODELS))
    parser.add_argument("--duration", type=float, help="arrival window per run, seconds")


def run_cpu(files: LabFiles, args: argparse.Namespace) -> None:
    cfg = Config.quick() if args.quick else Config()
    if args.models:
        cfg.models = args.models
    if args.duration:
        cfg.duration_s = args.duration
    print(f"a2: config {cfg}", file=sys.stderr)
    files.write(RESULT, measure(cfg), config=asdict(cfg), benchmark_version=BENCHMARK_VERSION)


def render(files: LabFiles) -> dict[str, str]:
    """Plots and tables read the result file, not the in-memory results: the README shows what the JSON holds."""
    doc = files.require(RESULT)
    plot(doc, files.plot_path("a2_latency_by_model"), files.rel(files.result_path(RESULT)))
    return {"a2-results": readme_tables(doc)}


def main(argv: list[str] | None = None) -> int:
    return run_lab(argv, doc=__doc__, lab_dir=LAB_DIR, run_cpu=run_cpu, render=render, add_arguments=add_arguments)
