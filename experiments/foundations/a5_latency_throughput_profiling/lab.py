"""Latency percentiles and throughput of the a4 service, a profile of its hot path, and a dynamic batcher sweep.

    python -m experiments.foundations.a5_latency_throughput_profiling [--quick] [--render-only]
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from experiments.common.fmt import machine_short as machine_line
from experiments.common.fmt import md_table
from experiments.common.fmt import sig as fmt
from experiments.common.lab import LabFiles, run_lab
from experiments.common.plots import plt, save_figure
from experiments.foundations.a4_mock_inference_service.service import ServiceConfig
from experiments.foundations.a5_latency_throughput_profiling.batcher import StepCost, run_open_loop
from experiments.foundations.a5_latency_throughput_profiling.timing_middleware import (
    create_profiled_app, create_timed_app,
)
from experiments.foundations.a_common.load import LoadSpec, run_load
from experiments.foundations.a_common.loopback import serve_in_process

LAB_DIR = Path(__file__).resolve().parent
BENCHMARK_VERSION = 1
RESULT = "a5_latency_throughput"  # results/a5_latency_throughput.json
# The profiler's reports are measurements, not drawings: they sit next to the JSON in results/.
PROFILE_HTML = "a5_profile_hot_path.html"
PROFILE_TEXT = "a5_profile_hot_path.txt"


@dataclass
class Config:
    load_levels_rps: list[float] = field(default_factory=lambda: [50, 100, 200, 400])
    load_duration_s: float = 3.0
    load_tokens: int = 16
    decode_ms_per_token: float = 2.0
    profile_rps: float = 200.0
    profile_duration_s: float = 3.0
    batch_sizes: list[int] = field(default_factory=lambda: [1, 4, 16, 64])
    batch_max_wait_ms: float = 10.0
    batch_rates_rps: list[float] = field(default_factory=lambda: [50, 150, 300, 600, 1200])
    batch_duration_s: float = 2.0
    step_fixed_ms: float = 5.0
    step_per_item_ms: float = 0.5
    seed: int = 0

    @classmethod
    def quick(cls) -> "Config":
        return cls(load_levels_rps=[50, 200], load_duration_s=1.0, profile_duration_s=1.0,
                   batch_sizes=[1, 16], batch_rates_rps=[50, 400], batch_duration_s=0.6)


def payload(cfg: Config, stream: bool = False) -> dict:
    return {"model": "mock", "prompt": "hello world", "max_tokens": cfg.load_tokens, "stream": stream}


def load_rows(cfg: Config, log=print) -> list[dict]:
    svc = ServiceConfig(decode_ms_per_token=cfg.decode_ms_per_token, rate_limit_rps=None)
    rows = []
    with serve_in_process(create_timed_app, {"cfg": svc}) as base:
        for rate in cfg.load_levels_rps:
            httpx.get(base + "/timings", params={"reset": True})
            res = run_load(base, LoadSpec(rate_rps=rate, duration_s=cfg.load_duration_s, payload=payload(cfg),
                                          seed=cfg.seed))
            res.pop("records")
            res["server"] = httpx.get(base + "/timings", params={"reset": True}).json()
            rows.append(res)
            log(f"load {rate:5.0f} req/s: {res['ok_per_s']:.0f} ok/s, client p50/p99 "
                f"{res['ok_latency']['p50_ms']:.1f}/{res['ok_latency']['p99_ms']:.1f} ms, server p50/p99 "
                f"{res['server']['total']['p50_ms']:.1f}/{res['server']['total']['p99_ms']:.1f} ms")
    return rows


def profile_hot_path(cfg: Config, out: Path, log=print) -> dict:
    """Profile the server under streaming load with a free model: what remains is the service's own CPU."""
    svc = ServiceConfig(decode_ms_per_token=0, prefill_ms_per_token=0, rate_limit_rps=None)
    html, text = out / PROFILE_HTML, out / PROFILE_TEXT
    with serve_in_process(create_profiled_app, {"cfg": svc, "html_path": str(html), "text_path": str(text)}) as base:
        res = run_load(base, LoadSpec(rate_rps=cfg.profile_rps, duration_s=cfg.profile_duration_s,
                                      payload=payload(cfg, stream=True), seed=cfg.seed))
        server = httpx.get(base + "/timings").json()
    session = json.loads(Path(str(text) + ".json").read_text())
    Path(str(text) + ".json").unlink()
    requests = server["n"]
    row = {"requests": requests, "statuses": res["statuses"], "server": server, "session": session,
           "cpu_ms_per_request": 1e3 * session["cpu_time_s"] / max(1, requests),
           "html": html.name, "text": text.name, "top_of_profile": top_frames(text.read_text())}
    log(f"profile: {requests} streamed requests, server CPU {row['cpu_ms_per_request']:.2f} ms/request")
    return row


def top_frames(profile_text: str, n: int = 25) -> list[str]:
    lines = [ln.rstrip() for ln in profile_text.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("Profile at")), 0) + 1
    return lines[start:start + n]


def batcher_rows(cfg: Config, log=print) -> list[dict]:
    cost = StepCost(cfg.step_fixed_ms, cfg.step_per_item_ms)
    rows = []
    for b in cfg.batch_sizes:
        for rate in cfg.batch_rates_rps:
            r = run_open_loop(rate, cfg.batch_duration_s, b, cfg.batch_max_wait_ms / 1e3, cost, cfg.seed)
            rows.append(r)
            log(f"batch<= {b:3d} offered {rate:5.0f}: {r['throughput_rps']:6.0f} req/s, mean batch "
                f"{r['mean_batch']:5.1f}, p50 {r['latency']['p50_ms']:7.1f} ms, p99 {r['latency']['p99_ms']:7.1f} ms")
    return rows


def measure(cfg: Config, out: Path, log=print) -> dict:
    return {"load": load_rows(cfg, log), "profile": profile_hot_path(cfg, out, log),
            "batcher": batcher_rows(cfg, log)}


def plot(doc: dict, path: Path, source: str) -> None:
    res, cfg = doc["results"], doc["config"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.3))
    ax = axes[0]
    x = [r["offered_rps"] for r in res["load"]]
    for key, style in (("p50_ms", "o-"), ("p90_ms", "s-"), ("p99_ms", "^-")):
        ax.plot(x, [r["ok_latency"][key] for r in res["load"]], style, label=f"client {key[:-3]}")
    ax.plot(x, [r["server"]["total"]["p99_ms"] for r in res["load"]], "k--", label="server p99 (middleware)")
    ax.axhline(cfg["load_tokens"] * cfg["decode_ms_per_token"], color="grey", ls=":", lw=1,
               label="model time alone")
    ax.set_xlabel("offered load, req/s")
    ax.set_ylabel("latency ms")
    ax.set_title("a4 service: latency percentiles vs load")
    ax.legend(fontsize=8)
    ax = axes[1]
    for b in cfg["batch_sizes"]:
        sel = [r for r in res["batcher"] if r["max_batch_size"] == b]
        ax.plot([r["throughput_rps"] for r in sel], [r["latency"]["p99_ms"] for r in sel], "o-",
                label=f"max batch {b}")
        for r in sel:
            ax.annotate(f"{r['offered_rps']:.0f}", (r["throughput_rps"], r["latency"]["p99_ms"]), fontsize=6,
                        xytext=(2, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("achieved throughput, req/s (labels: offered req/s)")
    ax.set_ylabel("p99 latency ms")
    ax.set_title(f"dynamic batcher, max wait {cfg['batch_max_wait_ms']:g} ms, step "
                 f"{cfg['step_fixed_ms']:g} + {cfg['step_per_item_ms']:g} ms/item")
    ax.legend(fontsize=8)
    save_figure(fig, path, source=source)


def _wall_clock_note(pr: dict) -> str:
    """Say what the tree's times are: pyinstrument samples wall time, and the root's own frame is the idle loop."""
    root = pr["top_of_profile"][0].split()
    idle = next((line.split()[1] for line in pr["top_of_profile"][1:3] if "[self]" in line), None)
    note = (f"\n\nThis tree is pyinstrument's **wall-clock** view of the event-loop thread, not a CPU profile: "
            f"of the root's {fmt(float(root[0]))} s")
    if idle is not None:
        note += (f", {fmt(float(idle))} s is `{root[1]}` [self], the loop waiting in `epoll` for the next I/O "
                 f"(idle, no CPU)")
    return note + (f"; the whole process used {fmt(pr['session']['cpu_time_s'])} s of CPU. The frames below the root "
                   "say where the busy time went; the CPU cost per request is the figure above.")


def readme_tables(doc: dict) -> str:
    res, cfg = doc["results"], doc["config"]
    load = md_table(
        ["offered req/s", "ok req/s", "client p50 / p90 / p99 ms", "server p50 / p99 ms (middleware)",
         "client - server p50 ms", "lost", "5xx"],
        [[fmt(r["offered_rps"]), fmt(r["ok_per_s"]),
          " / ".join(fmt(r["ok_latency"][k]) for k in ("p50_ms", "p90_ms", "p99_ms")),
          f"{fmt(r['server']['total']['p50_ms'])} / {fmt(r['server']['total']['p99_ms'])}",
          fmt(r["ok_latency"]["p50_ms"] - r["server"]["total"]["p50_ms"]), r["lost"], r["server_errors"]]
         for r in res["load"]])
    pr = res["profile"]
    profile = (f"{pr['requests']} streamed requests of {cfg['load_tokens']} tokens at {fmt(cfg['profile_rps'])} "
               f"req/s with a zero-cost model: the server process used {fmt(pr['session']['cpu_time_s'])} s of CPU "
               f"in {fmt(pr['session']['duration_s'])} s, **{fmt(pr['cpu_ms_per_request'])} ms of CPU per request**; "
               f"server-side p50 {fmt(pr['server']['total']['p50_ms'])} ms. Top of the call tree "
               f"([full HTML]({'results/' + pr['html']}), [text]({'results/' + pr['text']})):\n\n```text\n"
               + "\n".join(pr["top_of_profile"]) + "\n```" + _wall_clock_note(pr))
    batch = md_table(
        ["max batch", "offered req/s", "achieved req/s", "mean batch", "p50 ms", "p99 ms"],
        [[r["max_batch_size"], fmt(r["offered_rps"]), fmt(r["throughput_rps"]), fmt(r["mean_batch"]),
          fmt(r["latency"]["p50_ms"]), fmt(r["latency"]["p99_ms"])] for r in res["batcher"]])
    return (f"Measured on: {machine_line(doc)}.\n\n**Load** ({cfg['load_tokens']} tokens x "
            f"{fmt(cfg['decode_ms_per_token'])} ms per request, {fmt(cfg['load_duration_s'])} s per level, "
            f"open-loop Poisson):\n\n{load}\n\n**Profile of the hot path**: {profile}\n\n**Dynamic batcher** "
            f"(step = {fmt(cfg['step_fixed_ms'])} ms + {fmt(cfg['step_per_item_ms'])} ms per item, max wait "
            f"{fmt(cfg['batch_max_wait_ms'])} ms, {fmt(cfg['batch_duration_s'])} s of arrivals per point):\n\n{batch}")


def run_cpu(files: LabFiles, args: argparse.Namespace) -> None:
    cfg = Config.quick() if args.quick else Config()
    print(f"a5: config {cfg}", file=sys.stderr)
    files.results.mkdir(parents=True, exist_ok=True)  # the profiler writes its reports there while measuring
    files.write(RESULT, measure(cfg, files.results), config=asdict(cfg), benchmark_version=BENCHMARK_VERSION,
                extra_packages=["fastapi", "uvicorn", "httpx", "pyinstrument"])


def render(files: LabFiles) -> dict[str, str]:
    """Plots and tables read the result file, not the in-memory results: the README shows what the JSON holds."""
    doc = files.require(RESULT)
    plot(doc, files.plot_path("a5_latency_and_batching"), files.rel(files.result_path(RESULT)))
    return {"a5-results": readme_tables(doc)}


def main(argv: list[str] | None = None) -> int:
    return run_lab(argv, doc=__doc__, lab_dir=LAB_DIR, run_cpu=run_cpu, render=render)
