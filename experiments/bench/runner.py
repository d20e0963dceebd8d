"""Drive a bench: check versions, make workloads, alternate variants, write results atomically.

Layout of one bench (results/bench/<bench_id>/):
    manifest.json     status, provenance, configuration, run order
    workloads/        the generated workloads (datasets dirs + JSONL + fingerprints)
    runs/NN-<variant>-r<k>-<mode>.json   one file per engine run
    runs/NN-.../      logs and raw `vllm bench serve` JSON of that run
    summary.json      aggregated table (median, spread, noise floor, verdict)
    summary.md, summary.png
While running the directory is named <bench_id>.partial; an interrupted or
failed bench is renamed <bench_id>.incomplete with status "incomplete" and
the reason. Readers (experiments.bench.store) refuse anything not "complete".
"""
from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from pathlib import Path

from experiments.bench import aggregate, capacity, machine, processes, serve, table, workloads
from experiments.common.provenance import provenance
from experiments.common.results import write_json_atomic
from experiments.sim import same_schedule
from tools import pins
from tools.patches import series_hash
from tools.vllm_source import check_installed_engine, check_source_tree

# 2: offline figure = median of `timed_passes` cold-cache passes
# 3: A B B A order, per-run machine load, CPU time per output token, scheduler counters, GPU memory
# 4: serve figure = median of `serve_passes` warm passes from an empty prefix cache, one client process;
#    greedy gate in serve runs too
BENCHMARK_VERSION = 4
DEFAULT_OUT = pins.REPO_ROOT / "results" / "bench"


class BenchInterrupted(Exception):
    pass


def _on_sigterm(signum, frame):
    raise BenchInterrupted(f"signal {signum}")


def preflight(cfg: dict) -> dict:
    """Refuse to start unless source tree, installed engine and patched copy match the pins."""
    check_source_tree(pins.SOURCE_DIR)
    dist, ver = check_installed_engine()
    info = {"engine_dist": dist, "engine_version": ver, "series_hash": series_hash()}
    if any(d["engine"] == "patched" for d in cfg["variant_defs"].values()):
        stamp = pins.PATCHED_ENGINE_DIR / ".llm-infra-series"
        if not stamp.exists():
            raise SystemExit("patched engine not built: run `make apply-patches` first")
        built = stamp.read_text().split()
        if built[0] != info["series_hash"] or built[1] != f"{dist}=={ver}":
            raise SystemExit(f"build/vllm-patched was built from series {built[0]} / {built[1]}, but the "
                             f"series is {info['series_hash']} / {dist}=={ver}: run `make apply-patches`")
    return info


def run_groups(cfg: dict) -> list[tuple[int, list[str], str]]:
    """(repeat, variants, mode) per engine start, in order: A B B A A B ... (every other repeat runs the
    variants in reverse, so a drift over the bench weighs on each variant equally instead of always
    favouring the one that runs first; modes run back to back per variant; `"order": "abab"` keeps the
    plain alternation). With `"interleave": "passes"` a repeat is one group: every variant's server
    up at once and their timed passes alternating (serve.client_plan), so each variant's pass k has
    the others' pass k beside it in time."""
    out = []
    for r in range(1, cfg["repeats"] + 1):
        vs = list(cfg["variants"])
        if cfg.get("order", "abba") == "abba" and r % 2 == 0:
            vs.reverse()
        if cfg.get("interleave") == "passes":
            out.append((r, vs, "serve"))
        else:
            out += [(r, [v], m) for v in vs for m in cfg["modes"]]
    return out


def run_order(cfg: dict) -> list[tuple[int, str, str]]:
    """One (repeat, variant, mode) per run record, in the order the runs start."""
    return [(r, v, m) for r, vs, m in run_groups(cfg) for v in vs]


def prepare_workloads(cfg: dict, out: Path) -> dict[str, dict]:
    metas = {}
    for name, overrides in cfg["workloads"].items():
        wl = workloads.generate(workloads.make_spec(name, **overrides), seed=cfg["seed"])
        metas[name] = workloads.save(wl, out)
    return metas


def offline_run(cfg: dict, variant: str, wl_meta: dict, run_dir: Path) -> dict:
    vdef = cfg["variant_defs"][variant]
    run_cfg = {"model": cfg["model"], "seed": cfg["seed"], "engine": vdef["engine"],
               "engine_args": {**cfg["engine_args"], **vdef["engine_args"]},
               "gate": cfg["gate"], "warmup_requests": cfg["warmup_requests"], "workload": wl_meta,
               "timed_passes": cfg.get("timed_passes", 1),
               "profile": False}
    if cfg.get("profile_dir"):
        pdir = Path(cfg["profile_dir"]) / run_dir.name
        run_cfg["profile"] = True
        run_cfg["engine_args"]["profiler_config"] = processes.torch_profiler_config(pdir, vdef["engine"])
    cfg_path = run_dir / "offline-config.json"
    write_json_atomic(cfg_path, run_cfg)
    out_path = run_dir / "offline-result.json"
    env = processes.variant_env(vdef["engine"], vdef["env"])
    # vLLM waits 5 s for workers to exit by themselves before SIGTERM; the CPU workers never do.
    env.setdefault("VLLM_WORKER_SHUTDOWN_TIMEOUT_SECONDS", "1")
    proc = processes.start([sys.executable, "-m", "experiments.bench.engine_offline", str(cfg_path), str(out_path)],
                           env, run_dir / "offline.log")
    try:
        with processes.TreeMemorySampler(proc.pid) as mem, processes.GpuMemorySampler(proc.pid) as gpu, \
                processes.TreeCpuSampler(proc.pid) as cpu:
            rc = wait_offline_child(proc, run_dir / "offline.log", timeout_s=1800)
    finally:
        processes.kill_tree(proc, grace_s=5)
    if rc != 0 or not out_path.exists():
        tail = (run_dir / "offline.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"offline run failed (rc={rc}); log tail:\n{tail}")
    result = json.loads(out_path.read_text())
    result["peak_rss_bytes"] = mem.peak_bytes
    result["run_cpu_s"] = cpu.cpu_s
    result.update(gpu.result())
    return result


# What vLLM's frontend logs when its EngineCore process died; the frontend can then hang in
# clean-up (seen: a segfault at profiler stop left it waiting), so the bench stops it.
ENGINE_DEAD_MARKERS = ("engine core exited unexpectedly", "EngineCore encountered a fatal error",
                       "Segfault encountered")


def wait_offline_child(proc, log_path: Path, timeout_s: float, grace_s: float = 15.0) -> int:
    """Exit code of the offline child; fails fast, naming the cause, if its EngineCore died."""
    deadline, dead_since = time.time() + timeout_s, None
    while time.time() < deadline:
        rc = proc.poll()
        if rc is not None:
            return rc
        if dead_since is None and any(m in log_path.read_text(errors="replace")[-20000:]
                                      for m in ENGINE_DEAD_MARKERS):
            dead_since = time.time()
        if dead_since is not None and time.time() - dead_since > grace_s:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the EngineCore process died during the offline run and the frontend did not "
                               f"exit within {grace_s:.0f} s; log tail:\n{tail}")
        time.sleep(0.5)
    raise RuntimeError(f"offline run did not finish within {timeout_s:.0f} s; see {log_path}")


def gate_statement(runs: list[dict]) -> str:
    """What the correctness gate checked in this bench."""
    gated = [r for r in runs if "gate_tokens" in r["result"]]
    if not gated:
        return "not run: no run in this bench recorded greedy outputs"
    variants = sorted({r["variant"] for r in gated})
    modes = " and ".join(sorted({r["mode"] for r in gated}))
    return (f"greedy outputs identical across all {len(gated)} {modes} runs ({', '.join(variants)}), "
            "compared within each mode")


def busy_warning(cfg: dict) -> str:
    """A bench measured with --allow-busy says so above its table: its verdicts are not evidence."""
    if not cfg.get("busy_machine"):
        return ""
    m = cfg.get("machine_before") or {}
    return (f"> BUSY MACHINE: before the start other processes kept {m.get('busy_share', 0):.0%} of "
            f"{m.get('cpu_count')} CPUs busy (load average {m.get('loadavg_1m', 0):.2f}); measured with "
            "--allow-busy. Verdicts below are not evidence; see each run's `machine` block.\n\n")


def write_summary(bench_dir: Path, runs: list[dict], cfg: dict, source: str) -> list[dict]:
    """summary.json / .md / .png of a bench from its run records (medians, noise floor, verdicts)."""
    summary = aggregate.summarize_runs(runs, cfg["variant_defs"], pairs=cfg.get("pairs"),
                                       same_schedule=(cfg.get("same_schedule") or {}).get("workloads"))
    write_json_atomic(bench_dir / "summary.json", summary)
    (bench_dir / "summary.md").write_text(busy_warning(cfg) + table.markdown_table(summary))
    table.plot_summary(summary, bench_dir / "summary.png", source=source)
    return summary


def phase_breakdown(runs: list[dict], setup_s: float, summary_s: float, total_s: float) -> dict:
    """Where a bench's wall time went: engine start-ups, measured work, the rest of each run."""
    startup = sum(r["result"].get("startup_s") or 0 for r in runs)
    measured = 0.0
    for r in runs:
        res = r["result"]
        if r["mode"] == "offline":
            measured += sum(res.get("pass_elapsed_s") or [])
        else:
            measured += sum(sum(w.get("pass_duration_s") or [w.get("duration") or 0])
                            for w in res.get("workloads", {}).values())
    in_runs = sum({r.get("start", r["index"]): r["wall_s"] for r in runs}.values())  # once per engine start
    phases = {"preflight + workloads": setup_s, "engine start-up": startup, "measured (timed passes, clients)": measured,
              "rest of runs (imports, gate, warm-up, shutdown)": max(0.0, in_runs - startup - measured),
              "summary + plots": summary_s}
    phases["other"] = max(0.0, total_s - sum(phases.values()))
    return {"total_s": total_s, "engine_starts": len(runs), "groups": len({r.get("start", r["index"]) for r in runs}),
            "phases_s": phases}


def print_phases(breakdown: dict) -> None:
    total = breakdown["total_s"] or 1.0
    print(f"[bench] wall time {breakdown['total_s']:.0f} s, {breakdown['engine_starts']} engine starts "
          f"in {breakdown.get('groups', breakdown['engine_starts'])} group(s):")
    for name, sec in breakdown["phases_s"].items():
        print(f"    {name:<50} {sec:7.1f} s  {sec / total:6.1%}")


def run_bench(cfg: dict, out_root: Path = DEFAULT_OUT, argv: list[str] | None = None) -> Path:
    t_bench = time.time()
    info = preflight(cfg)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    bench_id = f"{cfg['preset']}-{cfg['backend']}-{stamp}"
    partial = out_root / f"{bench_id}.partial"
    partial.mkdir(parents=True)
    prov = provenance(extra_packages=["transformers", "datasets"], argv=argv)
    manifest = {"bench_id": bench_id, "status": "running", "benchmark_version": BENCHMARK_VERSION,
                "provenance": prov, **info, "backend": cfg["backend"], "config": cfg,
                "seed": cfg["seed"], "repeats": cfg["repeats"], "started_utc": prov["utc"],
                "distributed": cfg.get("distributed", {}), "order": cfg.get("order", "abba"),
                "machine_before": cfg.get("machine_before"), "busy_machine": cfg.get("busy_machine", False)}
    write_json_atomic(partial / "manifest.json", manifest)
    old_handler = signal.signal(signal.SIGTERM, _on_sigterm)
    runs: list[dict] = []
    try:
        metas = prepare_workloads(cfg, partial / "workloads")
        if cfg.get("rate_from_capacity") and "capacity" not in cfg:
            cfg["capacity"] = capacity.probe(cfg, metas, partial / "capacity", cfg["variants"][0])
            cfg["request_rate"].update({wl: c["rate"] for wl, c in cfg["capacity"].items()})
            print("[bench] rates from capacity: " + ", ".join(
                f"{wl} {c['rate']} req/s ({c['share']:.0%} of {c['request_throughput']:.2f})"
                for wl, c in cfg["capacity"].items()), flush=True)
        if len(cfg["variants"]) > 1 and "same_schedule" not in cfg:
            # Before the compared runs: which arms make identical decisions (their gaps are noise, pooled
            # into the floor), replayed through each arm's real Scheduler on the virtual clock.
            cfg["same_schedule"] = same_schedule.for_bench(cfg)
            print(f"[bench] same schedule: {same_schedule.describe(cfg['same_schedule'])}", flush=True)
        manifest["workloads"] = {k: {kk: v[kk] for kk in ("fingerprint", "num_requests", "spec", "seed")}
                                 for k, v in metas.items()}
        order = run_order(cfg)
        manifest["run_order"] = [f"{v}/r{r}/{m}" for r, v, m in order]
        write_json_atomic(partial / "manifest.json", manifest)
        t_start = time.time()
        setup_s = t_start - t_bench
        groups = run_groups(cfg)
        i = 0
        for g, (rep, variants, mode) in enumerate(groups, 1):
            names = {v: f"{i + k:02d}-{v}-r{rep}-{mode}" for k, v in enumerate(variants, 1)}
            run_dirs = {v: partial / "runs" / n for v, n in names.items()}
            for d in run_dirs.values():
                d.mkdir(parents=True)
            elapsed = time.time() - t_start
            print(f"[bench {bench_id}] start {g}/{len(groups)}: {' + '.join(variants)} repeat {rep} {mode} "
                  f"(elapsed {elapsed:.0f} s)", flush=True)
            if preflight(cfg) != info:  # the series or the engine changed under a running bench
                raise RuntimeError("the patch series or the installed engine changed during the bench; "
                                   "re-run `make apply-patches` and start again")
            t0 = time.time()
            with machine.RunLoad() as load:
                if mode == "offline":
                    wl = cfg["offline_workload"]
                    results = {variants[0]: offline_run(cfg, variants[0], metas[wl], run_dirs[variants[0]])}
                else:
                    wl = None
                    results = serve.run_serve_group(cfg, variants, metas, run_dirs)
            own_cpu = [r.get("run_cpu_s") for r in results.values()]
            load.result["others_share"] = machine.others_share(load.result, None if None in own_cpu else sum(own_cpu))
            for variant in variants:
                i += 1
                record = {"index": i, "start": g, "variant": variant, "repeat": rep, "mode": mode, "workload": wl,
                          "engine": cfg["variant_defs"][variant]["engine"], "wall_s": time.time() - t0,
                          "machine": load.result, "result": results[variant]}
                write_json_atomic(partial / "runs" / f"{names[variant]}.json", record)
                runs.append(record)
            bad = aggregate.gate_mismatches(runs)
            if bad:
                raise RuntimeError("CORRECTNESS GATE FAILED, speed numbers are meaningless:\n  " + "\n  ".join(bad))
        t_summary = time.time()
        summary = write_summary(partial, runs, cfg, source=f"results/bench/{bench_id}/summary.json")
        breakdown = phase_breakdown(runs, setup_s, time.time() - t_summary, time.time() - t_bench)
        manifest.update(status="complete", aggregation_version=aggregate.AGGREGATION_VERSION, finished_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        wall_s=time.time() - t_start, gate=gate_statement(runs), time_breakdown=breakdown)
        write_json_atomic(partial / "manifest.json", manifest)
        final = out_root / bench_id
        partial.rename(final)
        (out_root / "LATEST").write_text(bench_id + "\n")  # for `make report` after `make bench`
        print(busy_warning(cfg) + table.text_table(summary))
        print_phases(breakdown)
        print(f"[bench] complete: {final} ({manifest['wall_s']:.0f} s)")
        return final
    except (KeyboardInterrupt, BenchInterrupted, Exception) as exc:
        manifest.update(status="incomplete", reason=f"{type(exc).__name__}: {exc}"[:4000],
                        runs_completed=len(runs))
        write_json_atomic(partial / "manifest.json", manifest)
        dead = out_root / f"{bench_id}.incomplete"
        shutil.rmtree(dead, ignore_errors=True)
        partial.rename(dead)
        print(f"[bench] INCOMPLETE ({type(exc).__name__}): {dead}; no report will read it.", file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGTERM, old_handler)
