"""python -m experiments.trace: baseline and patched, one offline run each under a profiler.

The recipe is picked by backend (`recipes.choose`): nsys with NVTX + OS runtime on CPU, vLLM's
CUDA recipe on CUDA, vLLM's torch profiler where there is no nsys. Each variant runs the bench's
offline workload once, in a fresh process. The run is written to `<run_id>.partial/` and renamed
to `<run_id>/` only when every variant's trace is good (nsys: its export has NVTX ranges), so a
failed or interrupted trace never lands where `make report` looks. Exit status: 0 good, 1 a trace
step failed (the cause is printed), 130 interrupted.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

from experiments.bench import presets, processes, runner
from experiments.common.results import write_json_atomic
from experiments.trace import nsys_run, recipes, summaries
from tools import pins

TRACE_ROOT = pins.REPO_ROOT / "nsys_traces"
DEFAULT_TIMEOUT_S = 600  # per variant: engine start-up ~30 s + a short workload; a hang ends here
TRACE_WORKLOAD = {"shared_prefix_chat": {"num_requests": 16, "output_tokens": 16}}


def trace_config(model: str | None, backend: str, recipe: recipes.Recipe) -> dict:
    """The smoke preset's small offline workload, one timed pass, the recipe's env on every variant."""
    cfg = presets.resolve("smoke", model=model, backend=backend)
    cfg["workloads"] = json.loads(json.dumps(TRACE_WORKLOAD))
    cfg["timed_passes"] = 1
    # The gate only checks greedy outputs here (the bench compares them); keep its steps few.
    cfg["gate"] = {"num_prompts": 2, "prompt_len": 16, "max_tokens": 4}
    cfg["warmup_requests"] = 2
    cfg["variant_defs"] = {v: {"engine": v, "env": dict(recipe.env), "engine_args": {}}
                           for v in ("baseline", "patched")}
    cfg["variants"] = ["baseline", "patched"]
    return cfg


def rel(p: Path) -> str:
    p = Path(p).resolve()
    return str(p.relative_to(pins.REPO_ROOT)) if pins.REPO_ROOT in p.parents else str(p)


def offline_run_config(cfg: dict, variant: str, meta: dict, recipe: recipes.Recipe) -> dict:
    vdef = cfg["variant_defs"][variant]
    engine_args = {**cfg["engine_args"], **vdef["engine_args"]}
    if recipe.vllm_profiler == "cuda":
        engine_args["profiler_config"] = {"profiler": "cuda"}
    return {"model": cfg["model"], "seed": cfg["seed"], "engine": vdef["engine"], "engine_args": engine_args,
            "gate": cfg["gate"], "warmup_requests": cfg["warmup_requests"], "workload": meta,
            "timed_passes": cfg["timed_passes"], "profile": recipe.vllm_profiler == "cuda"}


def run_nsys_variant(recipe: recipes.Recipe, cfg: dict, variant: str, meta: dict, out: Path,
                     timeout_s: float) -> dict:
    """One variant under nsys -> <out>/<variant>.nsys-rep + .sqlite; raises TraceError with the cause."""
    run_dir = out / "runs" / variant
    run_dir.mkdir(parents=True)
    cfg_path, result_path, log = run_dir / "offline-config.json", run_dir / "result.json", run_dir / "nsys.log"
    write_json_atomic(cfg_path, offline_run_config(cfg, variant, meta, recipe))
    env = processes.variant_env(cfg["variant_defs"][variant]["engine"], cfg["variant_defs"][variant]["env"])
    base = out / variant
    cmd = recipes.nsys_command(recipe, str(base), [sys.executable, "-m", "experiments.bench.engine_offline",
                                                   str(cfg_path), str(result_path)])
    print(f"[trace] {variant}: {' '.join(cmd)}", flush=True)
    ran = nsys_run.run_profiled(cmd, env, log, timeout_s=timeout_s, done_file=result_path)
    if ran["stragglers_ended"]:
        print(f"[trace] {variant}: result written; ended the run's lingering processes {ran['stragglers_ended']} "
              "so nsys could finish", flush=True)
    if ran["killed_pids"]:
        print(f"[trace] {variant}: ended leftover processes {ran['killed_pids']}", flush=True)
    if ran["left_running"]:
        raise nsys_run.TraceError(f"{variant}: processes of the run outlived SIGKILL: {ran['left_running']}")
    if ran["timed_out"]:
        raise nsys_run.TraceError(f"{variant}: nsys run timed out after {timeout_s:.0f} s (see {log})")
    # nsys exits with its target's status; lingering processes ended by us (after the result was
    # written) make that 143, which is not a failure of the run.
    if not result_path.exists() or (ran["rc"] != 0 and not ran["stragglers_ended"]):
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise nsys_run.TraceError(f"{variant}: profiled run failed (rc={ran['rc']}); log tail:\n{tail}")
    t0 = time.time()
    rep = nsys_run.import_report(base, log)
    sqlite = nsys_run.export_sqlite(rep, log)
    n = nsys_run.check_nvtx(sqlite)
    result = json.loads(result_path.read_text())
    return {"report": rep.name, "sqlite": sqlite.name, "nvtx_ranges": n, "profiled_run_wall_s": ran["wall_s"],
            "import_export_s": time.time() - t0, "output_throughput": result.get("output_throughput"),
            "report_bytes": rep.stat().st_size, "sqlite_bytes": sqlite.stat().st_size,
            "command": " ".join(cmd).replace(str(out), str(out.with_name(out.name.removesuffix(".partial")))),
            "stragglers_ended": ran["stragglers_ended"],
            "leftover_pids_killed": ran["killed_pids"]}


def run_torch_variant(cfg: dict, variant: str, meta: dict, out: Path) -> dict:
    run_dir = out / "runs" / variant
    run_dir.mkdir(parents=True)
    cfg = {**cfg, "profile_dir": str(out / "traces")}
    print(f"[trace] {variant}: offline run under the torch profiler", flush=True)
    result = runner.offline_run(cfg, variant, meta, run_dir)
    write_json_atomic(run_dir / "result.json", {k: v for k, v in result.items() if k != "gate_tokens"})
    tdir = out / "traces" / run_dir.name
    from analysis import chrome_trace
    return {"trace_dir": str(tdir.relative_to(out)), "output_throughput": result.get("output_throughput"),
            "trace_files": sorted(p.name for p in chrome_trace.trace_files(tdir))}


def load_ranges(recipe: recipes.Recipe, out: Path, variant: str, info: dict):
    if recipe.profiler == "nsys":
        from analysis import nsys_sqlite
        return nsys_sqlite.nvtx_ranges(out / info["sqlite"]), rel(out / info["sqlite"])
    from analysis import chrome_trace
    d = out / info["trace_dir"]
    return chrome_trace.load_profiler_dir(d, categories=(chrome_trace.USER_ANNOTATION,)), rel(d)


README = """# Traces: {run_id}

Profiler: **{profiler}** ({recipe}). {why}

Made by `make trace` (`{command}`) at {utc} in {wall_s:.0f} s; git {git_sha} (dirty: {git_dirty});
series {series_hash}; {engine}; machine: {machine}.
Workload: the bench's `shared_prefix_chat`, {workload}, one offline pass after the correctness gate
and warm-up, whole run traced.

| variant | files | NVTX ranges | output tok/s under the profiler |
|---|---|---|---|
{rows}

## How to open
- `<variant>.nsys-rep`: Nsight Systems (`nsys-ui <file>`; `make nsys` installs it on Debian 12).
  Each process has its own row: the frontend (`python`), `VLLM::EngineCor` (EngineCore: scheduler,
  KV-cache manager; patch 0001's `engine_core_*`, `scheduler_*` and `block_pool_*` ranges next to
  upstream's `schedule: ...` ones) and the worker, each with its NVTX and OS-runtime rows.
- `<variant>.sqlite`: its SQLite export, read by `analysis.nsys_sqlite` (`nvtx_ranges`, `nvtx_summary`).
- Chrome-trace JSON (`*.pt.trace.json.gz`, torch profiler runs): https://ui.perfetto.dev.

## Summaries here (made by `experiments/trace/summaries.py`)
- `phase_shares_<variant>.csv`, `phase_shares.png`: self time per engine phase, per process.
- `steps_<variant>.csv`, `step_gaps_<variant>.csv`, `step_timeline_<variant>.png`: per-step phases,
  gaps between steps per process/thread, four steps from the middle of the run drawn with every
  process on the same clock. A variant without step ranges (the unpatched EngineCore has no
  `engine_core_step`) has an empty step table and its timeline shows the whole run.
- `threads_<variant>.csv`: per process/thread: ranges, scopes, time inside its outermost ranges.
- `scope_counts_<variant>.csv`: occurrences and inclusive time of each scope per process.
"""


def write_readme(out: Path, run_id: str, recipe: recipes.Recipe, manifest: dict) -> None:
    prov = manifest["provenance"]
    rows = []
    for v, info in manifest["variants"].items():
        files = [info["report"], info["sqlite"]] if recipe.profiler == "nsys" else [
            f"{info['trace_dir']}/{n}" for n in info["trace_files"]]
        tput = info.get("output_throughput")
        rows.append(f"| {v} | {', '.join(f'`{f}`' for f in files)} | {info.get('nvtx_ranges', '-')} | "
                    f"{'-' if tput is None else f'{tput:,.1f}'} |")
    wl = TRACE_WORKLOAD["shared_prefix_chat"]
    machine = prov.get("machine", {})
    (out / "README.md").write_text(README.format(
        run_id=run_id, profiler=recipe.profiler, recipe=recipe.name, why=recipe.why, command=prov["command"],
        utc=manifest["finished_utc"], wall_s=manifest["wall_s"], git_sha=prov["git_sha"],
        git_dirty=prov["git_dirty"], series_hash=manifest["series_hash"],
        engine=f"{manifest['engine_dist']}=={manifest['engine_version']}",
        machine=f"{machine.get('cpu_model', '?')}, {machine.get('cpu_count', '?')} cores, load average at start "
                f"{manifest['load_average_start']:.2f}",
        workload=f"{wl['num_requests']} requests x {wl['output_tokens']} output tokens", rows="\n".join(rows)))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m experiments.trace", description=__doc__)
    ap.add_argument("--model", help="model dir or hub id (default: MODEL env or the embedded tiny Llama)")
    ap.add_argument("--out", type=Path, default=TRACE_ROOT)
    ap.add_argument("--run-id", default=None)
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per variant run")
    ap.add_argument("--profiler", choices=("auto", "torch"), default="auto",
                    help="auto: by backend (nsys where installed); torch: force vLLM's torch profiler")
    args = ap.parse_args(argv)
    from experiments.bench.presets import detect_backend
    from experiments.common.provenance import provenance

    t_start = time.time()
    backend = detect_backend()
    recipe = recipes.choose(backend, nsys="" if args.profiler == "torch" else None)
    if args.profiler == "torch":
        recipe = dataclasses.replace(recipe, why="--profiler torch: vLLM's torch profiler, Chrome-trace JSON "
                                                 "(open in https://ui.perfetto.dev)")
    cfg = trace_config(args.model, backend, recipe)
    info = runner.preflight(cfg)
    print(f"[trace] recipe {recipe.name}: {recipe.why}", flush=True)
    run_id = args.run_id or f"{recipe.name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    final, partial = args.out / run_id, args.out / f"{run_id}.partial"
    if final.exists():
        raise SystemExit(f"{final} exists; pick another --run-id")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    load_start = os.getloadavg()[0]
    try:
        metas = runner.prepare_workloads(cfg, partial / "workloads")
        meta = metas[cfg["offline_workload"]]
        variants = {}
        for v in cfg["variants"]:
            variants[v] = (run_nsys_variant(recipe, cfg, v, meta, partial, args.timeout)
                           if recipe.profiler == "nsys" else run_torch_variant(cfg, v, meta, partial))
        ranges, sources = {}, {}
        for v, vinfo in variants.items():
            ranges[v], sources[v] = load_ranges(recipe, partial, v, vinfo)
            sources[v] = sources[v].replace(f"{run_id}.partial", run_id)
        summaries.write_all(ranges, sources, partial)
    except Exception as exc:  # noqa: BLE001 - any failure: keep the evidence apart, say why, exit 1
        dead = args.out / f"{run_id}.incomplete"
        shutil.rmtree(dead, ignore_errors=True)
        partial.rename(dead)
        print(f"[trace] FAILED: {type(exc).__name__}: {exc}\n[trace] kept for inspection (no report reads it): {dead}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        dead = args.out / f"{run_id}.incomplete"
        shutil.rmtree(dead, ignore_errors=True)
        partial.rename(dead)
        return 130
    prov = provenance(argv=["python", "-m", "experiments.trace", *argv])
    manifest = {"run_id": run_id, "profiler": recipe.profiler, "recipe": recipe.name, "why": recipe.why,
                "backend": backend, **info, "provenance": prov, "load_average_start": load_start,
                "workload": TRACE_WORKLOAD, "variants": variants, "wall_s": time.time() - t_start,
                "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "dirs": {v: (vi.get("trace_dir") or ".") for v, vi in variants.items()}}
    write_readme(partial, run_id, recipe, manifest)
    write_json_atomic(partial / "trace_manifest.json", manifest)
    partial.rename(final)
    print(f"[trace] done in {manifest['wall_s']:.0f} s: {final}")
    return 0
