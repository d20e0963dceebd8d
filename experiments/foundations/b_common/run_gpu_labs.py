"""Run the GPU half of every week-2 lab (b1-b5), one after the other, and re-render their READMEs.

    python -m experiments.foundations.b_common.run_gpu_labs [--quick]
    python -m experiments.foundations.b_common.run_gpu_labs --dry-run   # anywhere: imports, entry points, skips

On an NVIDIA machine this writes results/gpu_*.json and plots/gpu_*.png in each
lab folder; without CUDA each lab prints its one-line skip reason. Each lab
runs in its own process (numba decides simulator vs GPU once per process).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

LABS = [
    "b1_gpu_structure",
    "b2_warp_divergence",
    "b3_memory_bandwidth_coalescing",
    "b4_streams_async_copy",
    "b5_launch_overhead_trace",
]


# lab -> (module with the GPU entry point, entry point, what it needs)
GPU_ENTRY = {
    "b1_gpu_structure": ("structure", "run_gpu", "torch"),
    "b2_warp_divergence": ("divergence", "run_gpu", "numba"),
    "b3_memory_bandwidth_coalescing": ("bandwidth", "run_gpu", "numba"),
    "b4_streams_async_copy": ("streams", "run_gpu", "torch"),
    "b5_launch_overhead_trace": ("trace", "run_gpu", "torch"),
}
# the week-3 lab with a GPU half, checked by --dry-run too (it runs with `make labs-week3`)
EXTRA_GPU_ENTRY = {"experiments.vllm.c4_attention_graphs_quant": ("cuda_graphs", "measure_cuda_graph", "torch")}

DRY_RUN_CHILD = r"""
import importlib, sys
from experiments.foundations.b_common import cuda_env
module, entry, needs = sys.argv[1:4]
fn = getattr(importlib.import_module(module), entry)
assert callable(fn), f"{module}.{entry} is not callable"
reason = cuda_env.torch_cuda_skip_reason() if needs == "torch" else cuda_env.numba_cuda_skip_reason()
print(f"ok   {module}.{entry} imports; " + (f"would SKIP: {reason}" if reason else "would RUN on this GPU"))
"""


def dry_run(labs: list[str]) -> int:
    """Each GPU half in its own process: it imports, its entry point exists, and it would run or skip (why)."""
    targets = [(f"experiments.foundations.{lab}.{GPU_ENTRY[lab][0]}", *GPU_ENTRY[lab][1:]) for lab in labs]
    targets += [(f"{pkg}.{mod}", entry, needs) for pkg, (mod, entry, needs) in EXTRA_GPU_ENTRY.items()]
    failed = []
    for module, entry, needs in targets:
        p = subprocess.run([sys.executable, "-c", DRY_RUN_CHILD, module, entry, needs], capture_output=True, text=True)
        if p.returncode:
            failed.append(module)
            print(f"FAIL {module}.{entry}: {(p.stderr.strip().splitlines() or ['no output'])[-1]}")
        else:
            print(p.stdout.strip())
    print(f"dry run: {len(targets) - len(failed)} of {len(targets)} GPU halves import and would run or skip cleanly")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick", action="store_true", help="small sizes; results go under build/, not the lab folders"
    )
    p.add_argument("--labs", nargs="*", default=LABS, choices=LABS, help="which labs")
    p.add_argument("--dry-run", action="store_true",
                   help="measure nothing: check each GPU half imports and would run (or say why it would skip)")
    args = p.parse_args(argv)
    if args.dry_run:
        return dry_run(args.labs)
    failed = []
    for name in args.labs:
        cmd = [sys.executable, "-m", f"experiments.foundations.{name}", "--gpu"] + (
            ["--quick"] if args.quick else []
        )
        print(f"== {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"== {name}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
