"""`make trace`: baseline and patched vLLM under a profiler, traces + summaries in nsys_traces/<run>/.

Where Nsight Systems (`nsys`) is on PATH (an NVIDIA machine with the CUDA
toolkit) the runs go under nsys with vLLM's CUDA profiler driving the capture
range and NVTX scopes on; everywhere else vLLM's own torch profiler
(`--profiler-config torch`) writes Chrome-trace JSON that Perfetto opens.
Either way each variant runs the bench's offline workload once, in a fresh
process, with VLLM_CUSTOM_SCOPES_FOR_PROFILING=1 (torch) or
VLLM_NVTX_SCOPES_FOR_PROFILING=1 (nsys).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from experiments.bench import presets, processes, runner
from experiments.common.results import write_json_atomic
from tools import pins

TRACE_ROOT = pins.REPO_ROOT / "nsys_traces"


def profiler_choice() -> tuple[str, str]:
    if shutil.which("nsys"):
        return "nsys", "nsys found on PATH: Nsight Systems with NVTX scopes and a cudaProfilerApi capture range"
    return "torch", ("no nsys on this machine (it ships with the CUDA toolkit, not PyPI/Debian): "
                     "vLLM's torch profiler, Chrome-trace JSON (open in https://ui.perfetto.dev)")


def trace_config(model: str | None, backend: str) -> dict:
    cfg = presets.resolve("smoke", model=model, backend=backend)
    cfg["workloads"] = {"shared_prefix_chat": {"num_requests": 32, "output_tokens": 32}}
    scopes = {"VLLM_CUSTOM_SCOPES_FOR_PROFILING": "1"}
    cfg["variant_defs"] = {"baseline": {"engine": "baseline", "env": scopes, "engine_args": {}},
                           "patched": {"engine": "patched", "env": scopes, "engine_args": {}}}
    return cfg


def run_torch(cfg: dict, out: Path) -> dict[str, Path]:
    metas = runner.prepare_workloads(cfg, out / "workloads")
    dirs = {}
    for variant in cfg["variants"]:
        run_dir = out / "runs" / variant
        run_dir.mkdir(parents=True)
        cfg["profile_dir"] = str(out / "traces")
        print(f"[trace] {variant}: offline run under the torch profiler", flush=True)
        result = runner.offline_run(cfg, variant, metas[cfg["offline_workload"]], run_dir)
        write_json_atomic(run_dir / "result.json", {k: v for k, v in result.items() if k != "gate_tokens"})
        dirs[variant] = out / "traces" / run_dir.name
    return dirs


def run_nsys(cfg: dict, out: Path) -> dict[str, Path]:
    """nsys around one offline run per variant; capture range = vLLM's start/stop_profile."""
    metas = runner.prepare_workloads(cfg, out / "workloads")
    dirs = {}
    for variant in cfg["variants"]:
        vdef = cfg["variant_defs"][variant]
        run_dir = out / "runs" / variant
        run_dir.mkdir(parents=True)
        run_cfg = {"model": cfg["model"], "seed": cfg["seed"], "engine": vdef["engine"],
                   "engine_args": {**cfg["engine_args"], "profiler_config": {"profiler": "cuda"}},
                   "gate": cfg["gate"], "warmup_requests": cfg["warmup_requests"],
                   "workload": metas[cfg["offline_workload"]], "profile": True}
        write_json_atomic(run_dir / "offline-config.json", run_cfg)
        env = processes.variant_env(vdef["engine"], {"VLLM_NVTX_SCOPES_FOR_PROFILING": "1"})
        rep = run_dir / f"{variant}"
        cmd = ["nsys", "profile", "-o", str(rep), "--trace-fork-before-exec=true", "--cuda-graph-trace=node",
               "--capture-range=cudaProfilerApi", "--capture-range-end=stop", "--trace=cuda,nvtx,osrt",
               sys.executable, "-m", "experiments.bench.engine_offline",
               str(run_dir / "offline-config.json"), str(run_dir / "result.json")]
        subprocess.run(cmd, env=env, check=True, cwd=pins.REPO_ROOT)
        subprocess.run(["nsys", "export", "--type", "sqlite", "-o", str(rep) + ".sqlite", str(rep) + ".nsys-rep"],
                       check=True)
        subprocess.run(["nsys", "stats", "--format", "csv", "--output", str(run_dir / "stats"),
                        str(rep) + ".nsys-rep"], check=False)
        dirs[variant] = run_dir
    return dirs


def rel(p: Path) -> str:
    p = Path(p).resolve()
    return str(p.relative_to(pins.REPO_ROOT)) if pins.REPO_ROOT in p.parents else str(p)


def summarize_torch(dirs: dict[str, Path], out: Path) -> dict:
    from analysis import chrome_trace, phases, plots

    shares, files = {}, {}
    for variant, d in dirs.items():
        ranges = chrome_trace.load_profiler_dir(d, categories=(chrome_trace.USER_ANNOTATION,))
        share = phases.phase_shares(ranges)
        share.to_csv(out / f"phase_shares_{variant}.csv", index=False)
        steps = phases.step_table(ranges)
        steps.to_csv(out / f"steps_{variant}.csv", index=False)
        counts = ranges.groupby(["process", "name"]).size().rename("count").reset_index()
        counts.to_csv(out / f"scope_counts_{variant}.csv", index=False)
        plots.step_timeline(ranges, out / f"step_timeline_{variant}.png", max_steps=4,
                            source=rel(d))
        shares[variant] = share
        files[variant] = sorted(p.name for p in chrome_trace.trace_files(d))
    plots.phase_share_bars(shares, out / "phase_shares.png", source=rel(out))
    return {"trace_files": files}


README = """# Traces: {run_id}

Profiler: **{profiler}**. {why}

Made by `make trace` ({command}) at {utc}; git {git_sha} (dirty: {git_dirty}); series {series_hash}.

| variant | files |
|---|---|
{rows}

## How to open
- Chrome-trace JSON (`*.pt.trace.json.gz`): drag onto https://ui.perfetto.dev (or `chrome://tracing`).
  One file per process: `*engine_core*` is the EngineCore process (scheduler, KV-cache manager;
  only the patched engine writes it), `rank0*` is the model worker.
- `*.nsys-rep`: open in Nsight Systems; `*.sqlite` is its export (read by `analysis.nsys_sqlite`).

## Summaries here
- `phase_shares_<variant>.csv` / `phase_shares.png`: self time per engine phase and process.
- `steps_<variant>.csv`, `step_timeline_<variant>.png`: per-step phases and gaps between steps.
- `scope_counts_<variant>.csv`: how many times each scope ran (the patched EngineCore scopes are absent in baseline).
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.trace", description=__doc__)
    ap.add_argument("--model", help="model dir or hub id (default: MODEL env or the embedded tiny Llama)")
    ap.add_argument("--out", type=Path, default=TRACE_ROOT)
    ap.add_argument("--run-id", default=None)
    args = ap.parse_args(argv)
    from experiments.bench.__main__ import detect_backend
    from experiments.common.provenance import provenance

    cfg = trace_config(args.model, detect_backend())
    info = runner.preflight(cfg)
    profiler, why = profiler_choice()
    print(f"[trace] profiler: {profiler} ({why})", flush=True)
    run_id = args.run_id or f"{profiler}-{cfg['backend']}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    out = args.out / run_id
    if out.exists():
        raise SystemExit(f"{out} exists; pick another --run-id")
    out.mkdir(parents=True)
    dirs = run_nsys(cfg, out) if profiler == "nsys" else run_torch(cfg, out)
    summary = summarize_torch(dirs, out) if profiler == "torch" else {}
    prov = provenance(argv=["python", "-m", "experiments.trace", *(argv or sys.argv[1:])])
    write_json_atomic(out / "trace_manifest.json", {"run_id": run_id, "profiler": profiler, "why": why,
                                                    **info, "provenance": prov, **summary,
                                                    "dirs": {k: str(v.relative_to(out)) for k, v in dirs.items()}})
    rows = "\n".join(f"| {v} | {', '.join(f'`{d.relative_to(out)}/{n}`' for n in summary.get('trace_files', {}).get(v, []))} |"
                     for v, d in dirs.items())
    (out / "README.md").write_text(README.format(run_id=run_id, profiler=profiler, why=why, command=prov["command"],
                                                 utc=prov["utc"], git_sha=prov["git_sha"], git_dirty=prov["git_dirty"],
                                                 series_hash=info["series_hash"], rows=rows))
    print(f"[trace] done: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
