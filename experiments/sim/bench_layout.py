"""Simulated benches in the bench's own layout, so its aggregation, tables and plots read them unchanged.

    <out>/<preset>-sim-<cost model>-<UTC>/
        manifest.json   status complete, `simulated` label, cost model, config (variant_defs, workloads,
                        request_rate), seeds, provenance
        runs/NN-<variant>-r<k>-serve.json        the bench's run record (repeat k = arrival seed k-1)
        runs/NN-<variant>-r1-serve/bench-serve-<workload>.json   `vllm bench serve` JSON (first seed)
        runs/NN-<variant>-r1-serve/steps-<workload>.json         per-step batch composition (first seed)
        summary.json / summary.md / summary.png  (experiments.bench.runner.write_summary)
Per-request latency lists (`ttfts_s`, `itls_s`) are kept for the first seed only.
Repeats are arrival seeds: a simulated A/A pair is identical by construction, so
the "noise floor" the summary shows is the spread over arrival seeds.
Written under <id>.partial and renamed when complete; a failure leaves <id>.incomplete.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from experiments.common.provenance import provenance
from experiments.common.results import write_json_atomic
from experiments.sim import api
from tools.pins import REPO_ROOT

SIM_BENCHMARK_VERSION = 1


def sim_config(preset: str, points: dict[str, dict], workloads: dict[str, dict], rates: dict[str, str],
               seeds: list[int], cost_model: str, model: str | None = None) -> dict:
    return {"preset": preset, "backend": "sim", "mode": "simulated", "variants": list(points),
            "variant_defs": {k: api.resolve_variant(v) for k, v in points.items()},
            "modes": ["serve"], "workloads": workloads, "request_rate": rates, "seeds": list(seeds),
            "repeats": len(seeds), "seed": seeds[0], "cost_model": cost_model,
            "model": model or api.presets.EMBEDDED_MODEL, "engine_args": dict(api.BASE_ENGINE_ARGS)}


def run_records(cfg: dict) -> list[tuple[str, dict, dict]]:
    """Simulate every (repeat, variant, workload); [(run name, run record, {workload: (raw, steps)})]."""
    jobs, keys = [], []
    for rep, seed in enumerate(cfg["seeds"], 1):
        for variant in cfg["variants"]:
            for wl, overrides in cfg["workloads"].items():
                jobs.append(api.make_job(cfg["variant_defs"][variant], None, wl, cfg["request_rate"][wl], seed,
                                         cfg["cost_model"], model=cfg["model"], workload_overrides=overrides))
                keys.append((rep, variant, wl))
    results = api.run_jobs(jobs)
    runs: dict[tuple[int, str], dict] = {}
    for (rep, variant, wl), job, res in zip(keys, jobs, results):
        run = runs.setdefault((rep, variant), {"workloads": {}, "files": {}, "kv": 0.0, "label": res["label"],
                                               "scheduler": res["scheduler"], "seed": job["seed"],
                                               "series": res["series"]})
        summary = dict(res["summary"])
        if rep > 1:  # per-request latency lists (CDFs) of the first seed only: size
            summary.pop("ttfts_s", None)
            summary.pop("itls_s", None)
        run["workloads"][wl] = summary
        run["files"][wl] = (res["bench_serve"], res["steps"])
        run["kv"] = max([run["kv"]] + [s["kv_usage"] for s in res["steps"]])
    out = []
    order = sorted(runs, key=lambda k: (k[0], cfg["variants"].index(k[1])))  # A B C per repeat, as the bench
    for i, (rep, variant) in enumerate(order, 1):
        run = runs[(rep, variant)]
        name = f"{i:02d}-{variant}-r{rep}-serve"
        record = {"index": i, "variant": variant, "repeat": rep, "mode": "serve", "workload": None,
                  "engine": cfg["variant_defs"][variant]["engine"], "simulated": run["label"],
                  "result": {"mode": "serve", "simulated": run["label"], "arrival_seed": run["seed"],
                             "patch_series": run["series"],
                             "scheduler": run["scheduler"], "workloads": run["workloads"],
                             "kv_cache_usage_max": run["kv"]}}
        out.append((name, record, run["files"]))
    return out


def simulate_bench(cfg: dict, out_root: Path, argv: list[str] | None = None, stable_id: bool = False) -> Path:
    """`stable_id`: the directory has no timestamp and replaces an older one of the same name
    (committed reference sets that `make sim` regenerates); otherwise <id>-<UTC> as the bench does."""
    from experiments.bench import runner

    tag = cfg["cost_model"].split(":")[0] + ("-" + Path(cfg["cost_model"].split(":", 1)[1]).stem
                                            if ":" in cfg["cost_model"] else "")
    bench_id = f"{cfg['preset']}-sim-{tag}"
    if not stable_id:
        bench_id += "-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    partial = Path(out_root) / f"{bench_id}.partial"
    if stable_id:
        shutil.rmtree(partial, ignore_errors=True)  # left by a killed run of the same set
    partial.mkdir(parents=True)
    manifest = {"bench_id": bench_id, "status": "running", "benchmark_version": SIM_BENCHMARK_VERSION,
                "provenance": provenance(extra_packages=["transformers", "datasets"], argv=argv),
                "backend": "sim", "config": cfg, "seed": cfg["seed"], "repeats": cfg["repeats"]}
    write_json_atomic(partial / "manifest.json", manifest)
    try:
        t0 = time.time()
        records = run_records(cfg)
        runs = []
        for name, record, files in records:
            if record["repeat"] == 1:  # raw client JSON and per-step records of the first seed (size)
                for wl, (raw, steps) in files.items():
                    write_json_atomic(partial / "runs" / name / f"bench-serve-{wl}.json", raw, compact=True)
                    write_json_atomic(partial / "runs" / name / f"steps-{wl}.json", steps, compact=True)
            write_json_atomic(partial / "runs" / f"{name}.json", record)
            runs.append(record)
        label = records[0][1]["simulated"]
        src = str((Path(out_root) / bench_id / "summary.json").resolve().relative_to(REPO_ROOT)) \
            if Path(out_root).resolve().is_relative_to(REPO_ROOT) else f"{bench_id}/summary.json"
        runner.write_summary(partial, runs, cfg, source=f"{src} ({label})")
        manifest.update(status="complete", simulated=label, wall_s=time.time() - t0,
                        gate="not run: simulated runs produce no model outputs",
                        aggregation_version=runner.aggregate.AGGREGATION_VERSION,
                        finished_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        write_json_atomic(partial / "manifest.json", manifest)
        final = Path(out_root) / bench_id
        if stable_id and final.exists():
            shutil.rmtree(final)
        partial.rename(final)
        return final
    except BaseException as exc:
        manifest.update(status="incomplete", reason=f"{type(exc).__name__}: {exc}"[:4000])
        write_json_atomic(partial / "manifest.json", manifest)
        dead = Path(out_root) / f"{bench_id}.incomplete"
        shutil.rmtree(dead, ignore_errors=True)
        partial.rename(dead)
        raise
