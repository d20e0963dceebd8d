"""EngineCore's trace next to both workers' traces: vLLM served with TP=2 (`mp`, CPU), torch profiler.

    python -m experiments.trace.tp_serve [--out nsys_traces]

Baseline and patched `vllm serve` on `models/tiny-llama` (4 heads, dummy weights) with
tensor_parallel_size=2 and the `mp` executor (VLLM_CPU_SIM_MULTI_NUMA=1: one simulated NUMA node
per rank), VLLM_CUSTOM_SCOPES_FOR_PROFILING=1 and `--profiler-config` torch (no Python stacks; the
patched server also `profile_engine_core`, patch 0001b). The bench's serve mode drives it: one
timed pass of 16 requests, run by `vllm bench serve --profile`, which calls /start_profile before
the pass and /stop_profile after it. Each variant's trace directory then holds one Chrome trace
per profiled process: the two workers (`..._tp0_...`, `..._tp1_...`), the API server's frontend and,
patched only, `<host>_<pid>.engine_core.*` with patch 0001's ranges.

Writes nsys_traces/torch-tp2-cpu-<UTC>/ (`.partial` until done): traces/, the bench's result
directory, per-variant scope counts and summaries, trace_manifest.json, README.md. Run it under
`flock /work/measure.lock` on a shared machine (its throughput figures are under the profiler).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from experiments.bench import distributed, presets, runner, store
from experiments.common.provenance import provenance
from experiments.common.results import write_json_atomic
from experiments.trace import summaries
from tools import pins
from tools.patches import series_hash

TRACE_ROOT = pins.REPO_ROOT / "nsys_traces"
MODEL = str(pins.REPO_ROOT / "models" / "tiny-llama")
TP = 2
WORKLOAD = {"shared_prefix_chat": {"num_requests": 16, "output_tokens": 16}}


def bench_config() -> dict:
    cfg = presets.resolve("smoke", model=MODEL, distributed=distributed.engine_args(MODEL, tp=TP, backend="mp"))
    cfg.update(modes=["serve"], serve_passes=1, request_rate={"shared_prefix_chat": "inf"},
               workloads=json.loads(json.dumps(WORKLOAD)))
    for v in cfg["variant_defs"].values():
        v["env"] = {**v["env"], "VLLM_CUSTOM_SCOPES_FOR_PROFILING": "1"}
    return cfg


def trace_dirs(traces: Path) -> dict[str, Path]:
    """variant -> its profiler directory (the bench names run dirs `<NN>-<variant>-r<k>-serve`)."""
    return {d.name.split("-")[1]: d for d in sorted(traces.iterdir()) if d.is_dir()}


def file_role(name: str) -> str:
    """Which process wrote a trace file: `<host>_<pid>.engine_core.*` (patch 0001b), a worker
    (`rank<k>.*`, vLLM's rank suffix), or the API server's frontend (`<host>_<pid>.async_llm.*`)."""
    if ".engine_core." in name:
        return "engine_core"
    if ".async_llm." in name:
        return "frontend"
    head = name.split(".", 1)[0]
    return f"worker {head}" if "rank" in head else "unknown"


def describe(run_dir: Path, run_id: str) -> tuple[dict, dict, dict]:
    """Per variant: its trace files with their process and range counts; the ranges and their source."""
    from analysis import chrome_trace
    from experiments.trace.overhead_micro import PATCH_0001_RANGES

    ranges, sources, variants = {}, {}, {}
    for variant, tdir in trace_dirs(run_dir / "traces").items():
        r = chrome_trace.load_profiler_dir(tdir, categories=(chrome_trace.USER_ANNOTATION,))
        ranges[variant], sources[variant] = r, f"{run_id}/traces/{tdir.name}"
        files = {}
        for f in chrome_trace.trace_files(tdir):
            mine = r[r["file"] == f.name] if "file" in r.columns else r.iloc[0:0]
            files[f.name] = {"role": file_role(f.name), "ranges": len(mine),
                             "patch_0001_ranges": int(mine["name"].isin(PATCH_0001_RANGES).sum())}
        variants[variant] = {"trace_dir": f"traces/{tdir.name}", "files": files}
    return variants, ranges, sources


README = """# TP=2 serve trace: {run_id}

vLLM served with tensor_parallel_size=2 (`mp` executor, CPU, VLLM_CPU_SIM_MULTI_NUMA=1) on
`models/tiny-llama` (dummy weights), VLLM_CUSTOM_SCOPES_FOR_PROFILING=1, vLLM's torch profiler
started and stopped through `/start_profile` and `/stop_profile` (`vllm bench serve --profile`)
around one pass of {workload}. The patched server also sets `profile_engine_core` (patch 0001b).

Made by `{command}` at {utc} in {wall_s:.0f} s; git {git_sha} (dirty: {git_dirty}); series
{series_hash}; machine: {machine}. Output tokens/s under the profiler: {tput}.

| variant | process | trace file | patch 0001 ranges | all ranges |
|---|---|---|---|---|
{rows}

The baseline engine has no EngineCore trace (vLLM 0.32 does not profile that process); the
patched one writes `*.engine_core.*` next to both workers' traces, on the same clock.
Open the `.pt.trace.json.gz` files together in https://ui.perfetto.dev.

Summaries (experiments/trace/summaries.py): `scope_counts_<variant>.csv`, `phase_shares_<variant>.csv`,
`phase_shares.png`, `steps_<variant>.csv`, `step_timeline_<variant>.png`, `threads_<variant>.csv`.
"""


def write_readme(run_dir: Path, manifest: dict) -> None:
    prov = manifest["provenance"]
    rows = [f"| {v} | {info['role']} | `{vi['trace_dir']}/{f}` | {info['patch_0001_ranges']} | {info['ranges']} |"
            for v, vi in manifest["variants"].items() for f, info in vi["files"].items()]
    machine = prov["machine"]
    (run_dir / "README.md").write_text(README.format(
        run_id=manifest["run_id"], workload="16 requests x 16 output tokens", command=prov["command"],
        utc=manifest["finished_utc"], wall_s=manifest["wall_s"], git_sha=prov["git_sha"],
        git_dirty=prov["git_dirty"], series_hash=manifest["series_hash"],
        machine=f"{machine['cpu_model']}, {machine['cpu_count']} cores, load average at start "
                f"{machine['loadavg_1m']:.2f}",
        tput=", ".join(f"{v} {x:,.1f}" for v, x in manifest.get("output_throughput", {}).items()),
        rows="\n".join(rows)))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m experiments.trace.tp_serve", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=TRACE_ROOT)
    ap.add_argument("--redescribe", type=Path, metavar="RUN_DIR",
                    help="recompute a finished run's file table, summaries and README from its traces")
    args = ap.parse_args(argv)
    if args.redescribe:
        run_dir = args.redescribe
        manifest = json.loads((run_dir / "trace_manifest.json").read_text())
        manifest["variants"], ranges, sources = describe(run_dir, run_dir.name)
        summaries.write_all(ranges, sources, run_dir)
        write_readme(run_dir, manifest)
        write_json_atomic(run_dir / "trace_manifest.json", manifest)
        return 0

    t0 = time.time()
    run_id = f"torch-tp{TP}-cpu-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    final, partial = args.out / run_id, args.out / f"{run_id}.partial"
    partial.mkdir(parents=True)
    cfg = bench_config()
    cfg["profile_dir"] = str((partial / "traces").resolve())
    try:
        bench = runner.run_bench(cfg, partial / "bench", argv=["python", "-m", "experiments.trace.tp_serve", *argv])
        variants, ranges, sources = describe(partial, run_id)
        summaries.write_all(ranges, sources, partial)
    except Exception as exc:  # noqa: BLE001 - keep the evidence apart, say why
        dead = args.out / f"{run_id}.incomplete"
        partial.rename(dead)
        print(f"[tp-serve] FAILED: {type(exc).__name__}: {exc}; kept in {dead}", file=sys.stderr)
        return 1
    runs = {r["variant"]: r["result"] for r in store.load_runs(bench)}
    prov = provenance(argv=["python", "-m", "experiments.trace.tp_serve", *argv])
    manifest = {"run_id": run_id, "profiler": "torch", "recipe": f"torch-tp{TP}-serve", "backend": "cpu",
                "why": f"vLLM's torch profiler through /start_profile and /stop_profile, TP={TP} mp on CPU",
                "series_hash": series_hash(), "provenance": prov, "bench": str(bench.relative_to(partial)),
                "variants": variants, "wall_s": time.time() - t0,
                "output_throughput": {v: r["workloads"]["shared_prefix_chat"]["output_throughput"]
                                      for v, r in runs.items()},
                "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_readme(partial, manifest)
    write_json_atomic(partial / "trace_manifest.json", manifest)
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    print(f"[tp-serve] done in {manifest['wall_s']:.0f} s: {final}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
