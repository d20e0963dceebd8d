"""What patch 0001's ranges and 0001b's EngineCore profiler cost, in CPU time per call.

    python -m experiments.trace.overhead_micro [--rounds 6] [--schedule-steps 2000] [--step-steps 200]

One child process on the patched engine (build/vllm-patched) builds a real EngineCore
(`models/tiny-llama`, dummy weights, in-process executor) and times, with the process's CPU
clock (`time.process_time_ns`), thousands of calls of

- `Scheduler.schedule()`: the waiting-loop and block-pool ranges of 0001 and upstream's own;
  the model does not run (each scheduled request gets one fake token, untimed);
- `EngineCore.step()`: the step ranges of 0001 around a real forward pass of the tiny model,

under four variants, in blocks interleaved round by round (the order rotates and reverses every
other round): `off` (ranges are `nullcontext`, the default), `off_aa` (the same again: the A/A
pair whose spread is the floor), `upstream_on` (`record_function` for upstream's own ranges only),
`on` (`record_function` for every range, as VLLM_CUSTOM_SCOPES_FOR_PROFILING=1 does; no profiler
running) and `profiler` (ranges on and a CPU torch profiler without stacks recording, as 0001b's
EngineCore profiler does; in `step()` it also records the in-process worker, which with worker
processes it would not). The workload keeps 16 requests in flight (96-token prompts,
64 tokens shared by all, 48 output tokens), so requests are admitted throughout: prefix-cache
lookups, allocation and eviction run in every block.

Writes results/reference/overhead-micro/<backend>-<UTC>/result.json (config, per-block figures,
summary, provenance, machine load). A delta is read against the floor: the largest |off_aa/off - 1|
of any round. Run it under `flock /work/measure.lock` on a shared machine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments.bench import machine, processes
from experiments.common.provenance import provenance
from experiments.common.results import write_json_atomic
from tools import pins

VARIANTS = ("off", "off_aa", "upstream_on", "on", "profiler")
# The ranges patch 0001 adds; `upstream_on` records every other range (upstream's own scheduler
# and runner scopes), so `on` minus `upstream_on` is the patch's share of the cost.
PATCH_0001_RANGES = frozenset({
    "engine_core_step", "scheduler_step", "engine_core_execute_model_dispatch", "engine_core_grammar_bitmask",
    "engine_core_sample_tokens", "engine_core_execute_model_wait", "scheduler_update_from_output",
    "scheduler_waiting_get_computed_blocks", "scheduler_waiting_get_num_new_matched_tokens",
    "scheduler_waiting_allocate_slots", "block_pool_get_new_blocks"})
BENCHES = ("schedule", "step")
OUT_ROOT = pins.REPO_ROOT / "results" / "reference" / "overhead-micro"
MODEL = pins.REPO_ROOT / "models" / "tiny-llama"
WORKLOAD = {"in_flight": 16, "prompt_len": 96, "shared_prefix_len": 64, "max_tokens": 48}


def round_orders(rounds: int, variants: tuple[str, ...] = VARIANTS) -> list[list[str]]:
    """Round r runs the variants rotated by r, reversed on odd rounds: each variant takes each
    position, and follows and precedes each other variant, about equally often."""
    orders = []
    for r in range(rounds):
        order = list(variants[r % len(variants):] + variants[:r % len(variants)])
        orders.append(order[::-1] if r % 2 else order)
    return orders


# Second comparisons, per round as well: the patch's own ranges (every range vs upstream's only)
# and what recording costs beyond the ranges (profiler running vs ranges on).
PAIRS = {"on": "upstream_on", "profiler": "on"}


def _compare(per_round: dict, rounds: list[int], variant: str, against: str, floor: float | None) -> dict:
    deltas = [per_round[r][variant] / per_round[r][against] - 1 for r in rounds]
    d = statistics.median(deltas)
    return {"delta": d, "delta_min": min(deltas), "delta_max": max(deltas),
            "verdict": "beyond the floor" if floor is not None and abs(d) > floor else "within the floor"}


def summarize(blocks: list[dict]) -> dict:
    """Per bench: median CPU microseconds per call of each variant over the rounds, and each
    variant's per-round ratio to `off` in the same round (median, min, max), plus the PAIRS. The
    floor is the largest |off_aa/off - 1| of any round; a delta counts only when its median is
    beyond it."""
    out = {}
    for bench in sorted({b["bench"] for b in blocks}):
        mine = [b for b in blocks if b["bench"] == bench]
        per_round: dict[int, dict[str, float]] = {}
        for b in mine:
            per_round.setdefault(b["round"], {})[b["variant"]] = b["cpu_us_per_call"]
        rounds = sorted(r for r, v in per_round.items() if set(VARIANTS) <= set(v))
        aa = [per_round[r]["off_aa"] / per_round[r]["off"] - 1 for r in rounds]
        floor = max(abs(x) for x in aa) if aa else None
        variants = {}
        for v in VARIANTS:
            values = [per_round[r][v] for r in rounds]
            entry = {"median_us": statistics.median(values), "min_us": min(values), "max_us": max(values),
                     "n": len(values)}
            if v != "off":
                entry.update(_compare(per_round, rounds, v, "off", floor))
            if v in PAIRS:
                entry["vs_" + PAIRS[v]] = _compare(per_round, rounds, v, PAIRS[v], floor)
            variants[v] = entry
        out[bench] = {"rounds": len(rounds), "floor": floor, "variants": variants,
                      "calls_per_block": mine[0]["calls"]}
    return out


# ------------------------------------------------------------------ child (patched engine)

def _child(cfg: dict) -> list[dict]:
    import contextlib

    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    import vllm.v1.utils as v1_utils
    from vllm import SamplingParams
    from vllm.engine.arg_utils import EngineArgs
    from vllm.v1.engine import EngineCoreRequest
    from vllm.v1.engine.core import EngineCore
    from vllm.v1.executor.uniproc_executor import UniProcExecutor
    from vllm.v1.outputs import ModelRunnerOutput

    args = EngineArgs(model=cfg["model"], load_format="dummy", skip_tokenizer_init=True, dtype="float32",
                      max_model_len=512, max_num_seqs=32, enforce_eager=True, distributed_executor_backend="uni",
                      kv_cache_memory_bytes=64 << 20, seed=0)
    core = EngineCore(vllm_config=args.create_engine_config(), executor_class=UniProcExecutor, log_stats=False)
    wl = cfg["workload"]
    counter = iter(range(10**9))
    shared = list(range(100, 100 + wl["shared_prefix_len"]))

    def top_up() -> None:
        while len(core.scheduler.running) + len(core.scheduler.waiting) < wl["in_flight"]:
            i = next(counter)
            unique = [1000 + (i * 7919 + k) % 30000 for k in range(wl["prompt_len"] - wl["shared_prefix_len"])]
            req = EngineCoreRequest(
                request_id=f"r{i}", external_req_id=f"r{i}", prompt_token_ids=shared + unique, mm_features=None,
                sampling_params=SamplingParams(max_tokens=wl["max_tokens"], ignore_eos=True, temperature=0.0),
                pooling_params=None, arrival_time=time.time(), lora_request=None, cache_salt=None,
                data_parallel_rank=None)
            core.add_request(*core.preprocess_add_request(req))

    def schedule_call() -> int:
        top_up()
        t0 = time.process_time_ns()
        out = core.scheduler.schedule()
        dt = time.process_time_ns() - t0
        req_ids = list(out.num_scheduled_tokens)
        fake = ModelRunnerOutput(req_ids=req_ids, req_id_to_index={r: i for i, r in enumerate(req_ids)},
                                 sampled_token_ids=[[7] for _ in req_ids])
        core.scheduler.update_from_output(out, fake)
        return dt

    def step_call() -> int:
        top_up()
        t0 = time.process_time_ns()
        core.step()
        return time.process_time_ns() - t0

    def drain() -> None:  # every block starts from an empty engine
        for req_id in list(core.scheduler.requests):
            core.abort_requests([req_id])
        while core.scheduler.has_requests():
            core.step()

    def upstream_only(name: str):
        return contextlib.nullcontext() if name in PATCH_0001_RANGES else record_function(name)

    range_funcs = {"off": contextlib.nullcontext, "off_aa": contextlib.nullcontext, "upstream_on": upstream_only,
                   "on": record_function, "profiler": record_function}
    calls = {"schedule": (schedule_call, cfg["schedule_steps"]), "step": (step_call, cfg["step_steps"])}
    blocks = []
    for bench in BENCHES:
        fn, n = calls[bench]
        for rnd, order in enumerate([list(VARIANTS)] + cfg["orders"]):  # round 0: warm-up, not kept
            for pos, variant in enumerate(order):
                v1_utils._PROFILER_FUNC = range_funcs[variant]
                drain()
                prof = profile(activities=[ProfilerActivity.CPU], with_stack=False) if variant == "profiler" \
                    else contextlib.nullcontext()
                wall0 = time.perf_counter()
                with prof:
                    total = sum(fn() for _ in range(n))
                if rnd:
                    blocks.append({"bench": bench, "round": rnd, "position": pos, "variant": variant, "calls": n,
                                   "cpu_us_per_call": total / n / 1e3,
                                   "wall_s": time.perf_counter() - wall0})
                    if variant == "profiler":  # the profiler saw the patch's ranges (not an empty trace)
                        names = [e.name for e in prof.events() if e.name in PATCH_0001_RANGES]
                        blocks[-1]["patch_range_counts"] = {k: names.count(k) for k in sorted(set(names))}
                print(f"[overhead-micro] {bench} round {rnd} {variant}: {total / n / 1e3:.1f} us/call", flush=True)
    drain()
    core.shutdown()
    del torch
    return blocks


# ------------------------------------------------------------------ parent

def run(rounds: int, schedule_steps: int, step_steps: int, out_root: Path = OUT_ROOT) -> Path:
    cfg = {"model": str(MODEL), "workload": WORKLOAD, "schedule_steps": schedule_steps, "step_steps": step_steps,
           "orders": round_orders(rounds), "variants": list(VARIANTS)}
    before = machine.sample_idle_machine(2.0)
    with tempfile.TemporaryDirectory(prefix="overhead-micro-") as tmp:
        cfg_path, out_path = Path(tmp) / "cfg.json", Path(tmp) / "blocks.json"
        cfg_path.write_text(json.dumps(cfg))
        env = processes.variant_env("patched", {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "OMP_NUM_THREADS": "1"})
        env.pop("VLLM_CUSTOM_SCOPES_FOR_PROFILING", None)
        env.pop("VLLM_NVTX_SCOPES_FOR_PROFILING", None)
        with machine.RunLoad() as load:
            subprocess.run([sys.executable, "-m", "experiments.trace.overhead_micro", "--child", str(cfg_path),
                            "--child-out", str(out_path)], env=env, check=True, timeout=1800)
        blocks = json.loads(out_path.read_text())
    from tools.patches import series_hash

    utc = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    doc = {"kind": "overhead-micro", "provenance": provenance(argv=["python", "-m", "experiments.trace.overhead_micro",
                                                                   *sys.argv[1:]]),
           "series_hash": series_hash(), "engine": "patched (build/vllm-patched)", "config": cfg,
           "machine_before": before, "load": load.result, "summary": summarize(blocks), "blocks": blocks}
    path = write_json_atomic(out_root / f"cpu-{utc}" / "result.json", doc)
    print(f"[overhead-micro] wrote {path}")
    return path


def latest(root: Path = OUT_ROOT) -> Path | None:
    found = sorted(root.glob("*/result.json"))
    return found[-1] if found else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.trace.overhead_micro", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6, help="kept rounds (one warm-up round is added)")
    ap.add_argument("--schedule-steps", type=int, default=2000, help="Scheduler.schedule() calls per block")
    ap.add_argument("--step-steps", type=int, default=200, help="EngineCore.step() calls per block")
    ap.add_argument("--out", type=Path, default=OUT_ROOT)
    ap.add_argument("--resummarize", type=Path, metavar="RESULT_JSON",
                    help="recompute a result file's summary from its blocks (after a change to summarize)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        write_json_atomic(args.child_out, _child(json.loads(args.child.read_text())))
        return 0
    if args.resummarize:
        doc = json.loads(args.resummarize.read_text())
        write_json_atomic(args.resummarize, {**doc, "summary": summarize(doc["blocks"])})
        return 0
    run(args.rounds, args.schedule_steps, args.step_steps, args.out)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    raise SystemExit(main())
