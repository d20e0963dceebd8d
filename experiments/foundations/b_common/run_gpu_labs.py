"""Run the GPU half of every week-2 lab (b1-b5), one after the other, and re-render their READMEs.

    python -m experiments.foundations.b_common.run_gpu_labs [--quick]

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick", action="store_true", help="small sizes; results go under build/, not the lab folders"
    )
    p.add_argument("--labs", nargs="*", default=LABS, choices=LABS, help="which labs")
    args = p.parse_args(argv)
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
