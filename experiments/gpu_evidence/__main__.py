"""make gpu-evidence: what the repo needs from a real GPU, in one PyTorch-only run (< 8 min on an H200).

    python -m experiments.gpu_evidence --out $OUT            # on the lent GPU (no vLLM there)
    python -m experiments.gpu_evidence --dry-run --out DIR   # any machine: validates the plan

Measures the per-step forward time of a Llama-3-8B shape over a grid of (prefill tokens,
decode sequences, context length): experiments/gpu_evidence/forward_grid.py says what is
and is not modelled. Writes, atomically (a `.partial` directory renamed when complete):

    <out>/forward_grid-<gpu>-<utc>/forward_grid.csv   prefill_tokens, decode_seqs, context_tokens, seconds, ...
    <out>/forward_grid-<gpu>-<utc>/metadata.json      provenance, GPU, torch/CUDA versions, plan, label

`--dry-run` needs no GPU: it checks that every grid point fits the target GPU's memory next
to the weights, that the estimated time (public roofline + launch overhead) fits the budget,
and runs the same code end to end on CPU with a tiny shape; it writes `plan.json` and
`dry_run_tiny_cpu.csv` (never `forward_grid.csv`, so no reader mistakes it for a GPU result).
The week-2 GPU labs (b1-b5, c4's CUDA Graphs) are run by their own owners, not from here.
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import sys
import time
from pathlib import Path

from experiments.common.results import write_json_atomic
from experiments.gpu_evidence import forward_grid as fg

BENCHMARK_VERSION = 1
TIME_BUDGET_S = 8 * 60
# The measuring loop stops taking new points past this, leaving time for set-up and writing.
MEASURE_BUDGET_S = 6 * 60
CSV_COLUMNS = ["prefill_tokens", "decode_seqs", "context_tokens", "seconds", "context_len",
               "min_s", "max_s", "repeats", "achieved_tflops"]
LABEL = "PyTorch forward (random bf16 weights, SDPA, eager) on {gpu}, not vLLM's kernels"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def write_csv(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def torch_info(torch) -> dict:
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if info["cuda_available"]:
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_bytes=props.total_memory, capability=f"{props.major}.{props.minor}",
                    flash_sdp=torch.backends.cuda.flash_sdp_enabled())
    return info


def measure(shape: fg.Shape, points: list[dict], device: str, warmup: int, repeats: int,
            budget_s: float) -> tuple[list[dict], list[dict]]:
    import torch

    model = fg.DecoderStack(shape, torch.device(device), torch.bfloat16)
    rows, skipped = [], []
    t0 = time.time()
    for i, p in enumerate(points, 1):
        pt = fg.Point(p["prefill_tokens"], p["decode_seqs"], p["context_len"])
        if time.time() - t0 > budget_s:
            skipped.append({**p, "reason": f"time budget {budget_s:.0f} s spent"})
            continue
        row = fg.measure_point(model, pt, warmup, repeats)
        rows.append(row)
        print(f"[gpu-evidence] {i}/{len(points)} prefill {pt.prefill_tokens:5d} decode {pt.decode_seqs:4d} "
              f"x ctx {pt.context_len:5d}: {row['seconds'] * 1e3:8.2f} ms", flush=True)
    return rows, skipped


def run(args) -> Path:
    import torch

    info = torch_info(torch)
    if args.dry_run:
        gpu = fg.H200
    else:
        if not info["cuda_available"]:
            raise SystemExit("gpu-evidence: no CUDA device visible to PyTorch; on a CPU machine run "
                             "`make gpu-evidence DRY_RUN=1` (validates the plan, measures nothing)")
        gpu = fg.GpuTarget(info["gpu"], info["gpu_memory_bytes"], fg.H200.peak_flops, fg.H200.peak_bytes_s)
    the_plan = fg.plan(fg.LLAMA3_8B, fg.default_grid(), gpu, args.warmup, args.repeats)
    if the_plan["estimated_measure_s"] > MEASURE_BUDGET_S:
        raise SystemExit(f"gpu-evidence: plan estimated at {the_plan['estimated_measure_s']:.0f} s, over the "
                         f"{MEASURE_BUDGET_S} s measuring budget: trim the grid or the repeats")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = f"{'dry-run' if args.dry_run else 'forward_grid'}-{slug(gpu.name)}-{stamp}"
    final = args.out / name
    partial = args.out / f"{name}.partial"
    partial.mkdir(parents=True)
    try:
        meta = {"benchmark_version": BENCHMARK_VERSION, "dry_run": args.dry_run, "torch_env": info,
                "label": LABEL.format(gpu=gpu.name), "plan": the_plan, "warmup": args.warmup,
                "repeats": args.repeats, "timing": "CUDA events around each step, synchronised before and after",
                "csv_columns": {"context_tokens": "decode_seqs * context_len (all cached tokens attended)",
                                "context_len": "cached tokens per decoding sequence",
                                "seconds": "median step time over the repeats"}}
        if args.dry_run:
            # The same code on CPU, tiny shape: proves the forward, timing and CSV path run.
            tiny = [{**vars(p), "context_tokens": p.context_tokens} for p in fg.tiny_grid()]
            rows, _ = measure(fg.TINY, tiny, "cpu", warmup=1, repeats=1, budget_s=120)
            write_csv(partial / "dry_run_tiny_cpu.csv", rows)
            write_json_atomic(partial / "plan.json", {**meta, "tiny_cpu_rows": len(rows)})
        else:
            t0 = time.time()
            rows, over_time = measure(fg.LLAMA3_8B, the_plan["points"], "cuda", args.warmup, args.repeats,
                                      budget_s=MEASURE_BUDGET_S)
            write_csv(partial / "forward_grid.csv", rows)
            write_json_atomic(partial / "metadata.json", {**meta, "measure_s": time.time() - t0,
                                                          "skipped_for_time": over_time, "rows": len(rows)})
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.gpu_evidence", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="validate the plan on any machine; measure nothing")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "results/gpu_evidence"),
                    help="results root (default: $OUT, else results/gpu_evidence)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    if args.warmup < 0 or args.repeats < 1:
        ap.error("--warmup must be >= 0 and --repeats >= 1")
    t0 = time.time()
    final = run(args)
    print(f"[gpu-evidence] {'plan validated' if args.dry_run else 'done'}: {final} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
