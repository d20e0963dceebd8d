"""Small example inputs, so tests and notebooks run without a GPU, nsys or a bench run.

- write_example_torch_traces: a real torch.profiler profiler directory (CPU), two
  processes named like vLLM's files, ranges named like vLLM's scopes, and the
  self time that was put into each phase (measured while writing) to check against.
- write_example_nsys: a small synthetic nsys SQLite export (analysis.synthetic_nsys).
- example_bench_frames: synthetic bench frames in the shape the plots take.
Every example is labelled as such; none of it is a measurement of vLLM.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import phases

# (range name, own milliseconds, children): one step per process. Own time runs before children.
ENGINE_CORE_STEP = ("engine_core_step", 0.5, [
    ("scheduler_step", 1.0, [
        ("scheduler_waiting_get_computed_blocks", 1.0, []),
        ("scheduler_waiting_allocate_slots", 0.5, [("block_pool_get_new_blocks", 0.5, [])]),
    ]),
    ("engine_core_execute_model_dispatch", 0.5, []),
    ("engine_core_execute_model_wait", 3.5, []),
    ("engine_core_sample_tokens", 1.0, []),
    ("scheduler_update_from_output", 1.5, []),
])
WORKER_STEP = ("execute_context_1(64)_generation_3(3)", 0.5, [
    ("gpu_model_runner: preprocess", 1.0, []),
    ("gpu_model_runner: forward", 5.0, []),
    ("gpu_model_runner: postprocess", 0.5, []),
    ("gpu_model_runner: sample", 1.5, []),
    ("gpu_model_runner: bookkeep", 1.0, []),
    ("gpu_model_runner: ModelRunnerOutput", 0.5, []),
])
EXAMPLE_PROCESSES = {"EngineCore_DP0": ENGINE_CORE_STEP, "dp0_pp0_tp0_rank0": WORKER_STEP}


def _run_plan(node, record_function, own: dict[str, float], scale: float) -> None:
    """Enter the node's range, spend its own time (sleep), then run its children."""
    import torch

    name, own_ms, children = node
    with record_function(name):
        t0 = time.perf_counter()
        time.sleep(own_ms * scale / 1e3)
        if name == "gpu_model_runner: forward":
            # a real cpu_op inside the forward scope; big enough to stay the largest op under load
            torch.mm(torch.ones(128, 128), torch.ones(128, 128))
        own[name] = own.get(name, 0.0) + (time.perf_counter() - t0) * 1e6
        for child in children:
            _run_plan(child, record_function, own, scale)


def write_example_torch_traces(out_dir: str | os.PathLike, *, steps: int = 5, scale: float = 1.0,
                               gap_ms: float = 1.0, gzip_files: tuple[str, ...] = ("EngineCore_DP0",)) -> dict:
    """Profile `steps` fake engine steps per process with torch.profiler on CPU.

    Files are written by torch's tensorboard_trace_handler, as vLLM does
    (`<name>.<time_ns>.pt.trace.json[.gz]`). Returns {"dir", "files",
    "expected_self_us": {process: {range name: us}}, "expected_shares": {process: {phase: share}}}:
    the time actually slept inside each range (its own work), the ground truth that
    the trace's self times should match up to profiler overhead.
    """
    from torch.profiler import ProfilerActivity, profile, record_function, tensorboard_trace_handler

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    expected_self: dict[str, dict[str, float]] = {}
    for label, plan in EXAMPLE_PROCESSES.items():
        own: dict[str, float] = {}
        handler = tensorboard_trace_handler(str(out), worker_name=label, use_gzip=label in gzip_files)
        with profile(activities=[ProfilerActivity.CPU], on_trace_ready=handler):
            for _ in range(steps):
                _run_plan(plan, record_function, own, scale)
                time.sleep(gap_ms / 1e3)  # idle time between steps: outside every range
        expected_self[label] = own
    shares = {}
    for label, own in expected_self.items():
        s = pd.Series(own)
        by_phase = s.groupby(phases.phase_of(pd.Series(s.index)).to_numpy()).sum()
        shares[label] = (by_phase / by_phase.sum()).to_dict()
    return {"dir": str(out), "files": [str(p) for p in sorted(out.iterdir())],
            "expected_self_us": expected_self, "expected_shares": shares}


def write_example_nsys(path: str | os.PathLike, *, steps: int = 50) -> Path:
    from analysis import synthetic_nsys

    return Path(synthetic_nsys.write_export(path, steps=steps)["path"])


def example_bench_frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, latencies) shaped like the plots' inputs; synthetic, for layout only.

    summary: variant, workload, metric, median, min, max.
    latencies: variant, workload, kind (ttft_ms | itl_ms), value.
    """
    rng = np.random.default_rng(seed)
    rows, lat = [], []
    for variant, speed in (("baseline (example)", 1.0), ("patched (example)", 1.15)):
        for workload, base_tps, ttft in (("shared-prefix", 2500, 180.0), ("random", 1500, 120.0)):
            reps = base_tps * speed * (1 + 0.03 * rng.standard_normal(5))
            rows.append({"variant": variant, "workload": workload, "metric": "output_tok_per_s",
                         "median": float(np.median(reps)), "min": float(reps.min()), "max": float(reps.max())})
            t = ttft / speed * rng.lognormal(0, 0.35, (5, 40))  # 5 runs of 40 requests
            i = 14.0 / speed * rng.lognormal(0, 0.2, 2000)
            run_p50 = np.median(t, axis=1)
            rows.append({"variant": variant, "workload": workload, "metric": "ttft_p50_ms",
                         "median": float(np.median(run_p50)), "min": float(run_p50.min()),
                         "max": float(run_p50.max())})
            t = t.ravel()
            for kind, values in (("ttft_ms", t), ("itl_ms", i)):
                lat.append(pd.DataFrame({"variant": variant, "workload": workload, "kind": kind, "value": values}))
    return pd.DataFrame(rows), pd.concat(lat, ignore_index=True)


# ---------------------------------------------------------------------------
# Notebook parameters: a given path, or an example written to a scratch folder.

def scratch_dir(name: str) -> Path:
    d = Path(tempfile.gettempdir()) / "llm-infra-analysis-examples" / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def profiler_dir_or_example(path: str | None) -> tuple[Path, bool]:
    """(profiler directory, is_example)."""
    if path:
        return Path(path), False
    d = scratch_dir("torch_traces")
    for f in d.iterdir():
        f.unlink()
    return Path(write_example_torch_traces(d, steps=3)["dir"]), True


def nsys_export_or_example(path: str | None) -> tuple[Path, bool]:
    """(nsys SQLite export, is_example)."""
    if path:
        return Path(path), False
    return write_example_nsys(scratch_dir("nsys") / "example.sqlite"), True


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A tidy table from .csv, .json (records) or .parquet."""
    p = Path(path)
    if p.suffix == ".csv":
        return pd.read_csv(p)
    if p.suffix == ".parquet":
        return pd.read_parquet(p)
    return pd.read_json(p)


def bench_frames_or_example(summary_path: str | None, latency_path: str | None
                            ) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """(summary, latencies, is_example); either path may be missing (then that frame is empty)."""
    if not summary_path and not latency_path:
        return (*example_bench_frames(), True)
    empty_lat = pd.DataFrame(columns=["variant", "workload", "kind", "value"])
    empty_sum = pd.DataFrame(columns=["variant", "workload", "metric", "median", "min", "max"])
    summary = read_table(summary_path) if summary_path else empty_sum
    latencies = read_table(latency_path) if latency_path else empty_lat
    return summary, latencies, False


def output_dir(path: str | None) -> Path:
    d = Path(path) if path else scratch_dir("figures")
    d.mkdir(parents=True, exist_ok=True)
    return d

