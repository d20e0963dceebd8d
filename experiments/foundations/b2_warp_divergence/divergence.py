"""b2: an if/else kernel under five branch patterns: correctness, the warp model, GPU timings.

    python -m experiments.foundations.b2_warp_divergence [--quick] [--gpu] [--render-only]

CPU half: runs the kernel under numba's CUDA simulator on a small grid and
checks it against the NumPy spec (the simulator has no warps, so its timing
says nothing about divergence), then asks the analytic warp model how many
paths each warp issues and what lane utilisation that leaves. GPU half
(--gpu): the same kernel on a large grid, CUDA-event timings per pattern next
to the model's predicted slowdown.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from experiments.common.lab import LabFiles, run_lab
from experiments.common.plots import plt, save_figure
from experiments.foundations.b2_warp_divergence import kernels as K
from experiments.foundations.b_common import lab
from experiments.foundations.b_common.cuda_env import (
    numba_backend_name,
    numba_cuda_skip_reason,
    simulator_active,
    time_cuda_ms,
)
from experiments.foundations.b_common.warp_model import divergence, expected_paths_random_branch

LAB_DIR = Path(__file__).resolve().parent
BENCHMARK_VERSION = 1

PATTERNS = [
    {"name": "warp-uniform", "condition": K.WARP_UNIFORM, "fraction": None, "sorted": False},
    {"name": "tid % 2", "condition": K.LANE_PARITY, "fraction": None, "sorted": False},
    {"name": "data, p=0.5", "condition": K.DATA_DEPENDENT, "fraction": 0.5, "sorted": False},
    {"name": "data, p=0.05", "condition": K.DATA_DEPENDENT, "fraction": 0.05, "sorted": False},
    {"name": "data, p=0.5, sorted input", "condition": K.DATA_DEPENDENT, "fraction": 0.5, "sorted": True},
]


def pattern_input(pattern: dict, n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).random(n, dtype=np.float32)
    return np.sort(x) if pattern["sorted"] else x


def threshold_of(pattern: dict) -> float:
    return pattern["fraction"] if pattern["fraction"] is not None else 0.5


def model_pattern(pattern: dict, n: int) -> dict:
    x = pattern_input(pattern, n)
    takes_if = K.spec_takes_if(pattern["condition"], x, threshold_of(pattern))
    out = divergence(takes_if.astype(np.int8))
    out["fraction_taking_if"] = float(takes_if.mean())
    return out


def check_kernel(cuda, pattern: dict, n: int, work: int, *, threads_per_block: int = 128) -> dict:
    """Run the kernel on n threads and compare every output with the NumPy spec."""
    x = pattern_input(pattern, n)
    out = np.zeros_like(x)
    d_x, d_out = cuda.to_device(x), cuda.to_device(out)
    t0 = time.perf_counter()
    K.launch(
        d_x, d_out, pattern["condition"], threshold_of(pattern), work, threads_per_block=threads_per_block
    )
    cuda.synchronize()
    wall = time.perf_counter() - t0
    got = d_out.copy_to_host()
    want = K.spec_output(x, K.spec_takes_if(pattern["condition"], x, threshold_of(pattern)), work)
    err = float(np.max(np.abs(got - want)))
    return {
        "threads": n,
        "work": work,
        "max_abs_error": err,
        "ok": bool(np.allclose(got, want, rtol=1e-5, atol=1e-6)),
        "backend": numba_backend_name(),
        "wall_s": wall,
    }


def run_cpu(files: LabFiles, args: argparse.Namespace) -> None:
    quick = args.quick
    cuda = K.cuda
    sim_threads, sim_work = (256, 3) if quick else (1024, 8)
    model_threads = 2**12 if quick else 2**18
    rows = []
    for pattern in PATTERNS:
        check = check_kernel(cuda, pattern, sim_threads, sim_work)
        model = model_pattern(pattern, model_threads)
        print(
            f"  {pattern['name']:<28} {check['backend']}: ok={check['ok']} | model: "
            f"{model['mean_paths_per_warp']:.3f} paths/warp, lane utilisation {model['lane_utilisation']:.3f}"
        )
        rows.append({**pattern, "simulator_check": check, "model": model})
    fractions = [0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5]
    curve = [
        {
            "fraction": p,
            "expected_paths_formula": expected_paths_random_branch(p),
            "paths_model_on_random_flags": model_pattern(
                {"condition": K.DATA_DEPENDENT, "fraction": p, "sorted": False}, model_threads
            )["mean_paths_per_warp"],
        }
        for p in fractions
    ]
    files.write(
        "cpu_simulator_and_model",
        {"patterns": rows, "fraction_curve": curve},
        config={
            "simulator_threads": sim_threads,
            "simulator_work": sim_work,
            "model_threads": model_threads,
            "threads_per_block": 128,
            "simulated": simulator_active(),
            "conditions": K.CONDITIONS,
        },
        benchmark_version=BENCHMARK_VERSION,
    )


def run_gpu(files: LabFiles, args: argparse.Namespace) -> bool:
    quick = args.quick
    reason = numba_cuda_skip_reason()
    if reason:
        lab.skip(reason, "b2 GPU half (divergence timings)")
        return False
    import torch

    cuda = K.cuda
    n, work, repeats = (2**20, 256, 5) if quick else (2**24, 1024, 30)
    stream = cuda.external_stream(torch.cuda.current_stream().cuda_stream)
    rows = []
    for pattern in PATTERNS:
        x = pattern_input(pattern, n)
        t_x = torch.from_numpy(x).cuda()
        t_out = torch.empty_like(t_x)
        d_x, d_out = cuda.as_cuda_array(t_x), cuda.as_cuda_array(t_out)
        thr = threshold_of(pattern)
        timing = time_cuda_ms(
            lambda: K.launch(d_x, d_out, pattern["condition"], thr, work, stream=stream),
            warmup=3,
            repeats=repeats,
            flush_l2=False,
        )
        # Spot-check the real kernel against the spec on a sample of threads.
        idx = np.random.default_rng(1).choice(n, 4096, replace=False)
        takes_if = K.spec_takes_if(pattern["condition"], x, thr)[idx]
        want = K.spec_output(x[idx], takes_if, work)
        got = t_out.cpu().numpy()[idx]
        ok = bool(np.allclose(got, want, rtol=1e-4, atol=1e-5))
        model = model_pattern(pattern, n)
        print(
            f"  {pattern['name']:<28} {timing['median']:.3f} ms (ok={ok}); model paths/warp "
            f"{model['mean_paths_per_warp']:.3f}"
        )
        rows.append(
            {**pattern, "time_ms": {k: v for k, v in timing.items()}, "spot_check_ok": ok, "model": model}
        )
    base = rows[0]["time_ms"]["median"]
    for r in rows:
        r["measured_relative_time"] = r["time_ms"]["median"] / base
        r["model_relative_time"] = r["model"]["relative_issue_cost"] / rows[0]["model"]["relative_issue_cost"]
    files.write(
        "gpu_divergence_timings",
        {"patterns": rows},
        config={
            "threads": n,
            "work": work,
            "threads_per_block": 128,
            "repeats": repeats,
            "timing": "CUDA events, 3 warm-up launches, L2 not flushed (compute-bound)",
        },
        benchmark_version=BENCHMARK_VERSION,
    )
    return True


# ---------------------------------------------------------------- plots and README
def plot_model(doc: dict, path: Path, source: str) -> Path:
    rows, curve = doc["results"]["patterns"], doc["results"]["fraction_curve"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    names = [r["name"] for r in rows]
    util = [r["model"]["lane_utilisation"] for r in rows]
    a.barh(names[::-1], util[::-1], color="#4c72b0")
    for i, u in enumerate(util[::-1]):
        a.text(u + 0.01, i, f"{u:.3f}", va="center", fontsize=8)
    a.set_xlim(0, 1.15)
    a.set_xlabel("lane utilisation (model): useful lanes / issued lanes")
    a.set_title("analytic warp model, per branch pattern", fontsize=10)
    p = [c["fraction"] for c in curve]
    b.plot(p, [c["expected_paths_formula"] for c in curve], "-", label="formula 2 - p^32 - (1-p)^32")
    b.plot(p, [c["paths_model_on_random_flags"] for c in curve], "o", label="model on random flags")
    b.set_xlabel("fraction p of threads taking the `if` (random, unsorted)")
    b.set_ylabel("paths issued per warp")
    b.set_title("a rare branch still splits most warps", fontsize=10)
    b.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, source=source)


def plot_gpu(doc: dict, path: Path, source: str) -> Path:
    rows = doc["results"]["patterns"]
    fig, ax = plt.subplots(figsize=(8, 4))
    idx = np.arange(len(rows))
    meas = [r["measured_relative_time"] for r in rows]
    err_lo = [(r["time_ms"]["median"] - r["time_ms"]["min"]) / rows[0]["time_ms"]["median"] for r in rows]
    err_hi = [(r["time_ms"]["max"] - r["time_ms"]["median"]) / rows[0]["time_ms"]["median"] for r in rows]
    ax.bar(idx - 0.2, meas, 0.4, yerr=[err_lo, err_hi], capsize=3, label="measured (CUDA events)")
    ax.bar(idx + 0.2, [r["model_relative_time"] for r in rows], 0.4, label="model: paths issued per warp")
    ax.set_xticks(idx, [r["name"] for r in rows], rotation=15, fontsize=8)
    ax.set_ylabel("time relative to warp-uniform")
    ax.set_title(f"{doc['provenance']['machine']['gpu_model']}: divergence cost", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, source=source)


def render(files: LabFiles) -> dict[str, str]:
    blocks = {}
    cpu_doc = files.read("cpu_simulator_and_model")
    if cpu_doc:
        src = files.rel(files.result_path("cpu_simulator_and_model"))
        plot_model(cpu_doc, files.plot_path("model_lane_utilisation"), src)
        cfg = cpu_doc["config"]
        rows = cpu_doc["results"]["patterns"]
        blocks["cpu"] = "\n".join(
            [
                "![lane utilisation per pattern (model)](plots/model_lane_utilisation.png)",
                "",
                f"Kernel checked on {cfg['simulator_threads']} threads under the "
                f"{rows[0]['simulator_check']['backend']} against the NumPy spec; model over "
                f"{cfg['model_threads']:,} threads:",
                "",
                lab.md_table(
                    [
                        "pattern",
                        "simulator = spec",
                        "max abs error",
                        "fraction taking `if`",
                        "paths / warp (model)",
                        "lane utilisation (model)",
                    ],
                    [
                        [
                            r["name"],
                            "yes" if r["simulator_check"]["ok"] else "NO",
                            f"{r['simulator_check']['max_abs_error']:.1e}",
                            r["model"]["fraction_taking_if"],
                            r["model"]["mean_paths_per_warp"],
                            r["model"]["lane_utilisation"],
                        ]
                        for r in rows
                    ],
                ),
                "",
                lab.machine_line(cpu_doc) + f" Source: `{src}`.",
            ]
        )
    gpu_doc = files.read("gpu_divergence_timings")
    if gpu_doc:
        src = files.rel(files.result_path("gpu_divergence_timings"))
        plot_gpu(gpu_doc, files.plot_path("gpu_divergence_vs_model"), src)
        rows = gpu_doc["results"]["patterns"]
        blocks["gpu"] = "\n".join(
            [
                "![measured vs model](plots/gpu_divergence_vs_model.png)",
                "",
                lab.md_table(
                    [
                        "pattern",
                        "time ms median (min-max, n)",
                        "measured / uniform",
                        "model / uniform",
                        "spot check",
                    ],
                    [
                        [
                            r["name"],
                            lab.spread(r["time_ms"]),
                            r["measured_relative_time"],
                            r["model_relative_time"],
                            "ok" if r["spot_check_ok"] else "FAILED",
                        ]
                        for r in rows
                    ],
                ),
                "",
                lab.machine_line(gpu_doc) + f" Source: `{src}`.",
            ]
        )
    else:
        blocks["gpu"] = lab.gpu_not_measured(files.module)
    return blocks


GPU_HELP = "run the GPU half instead (real kernel timings per pattern); skips with a reason without CUDA"


def main(argv: list[str] | None = None) -> int:
    return run_lab(argv, doc=__doc__, lab_dir=LAB_DIR, run_cpu=run_cpu, run_gpu=run_gpu, render=render,
                   gpu_help=GPU_HELP, extra_packages=lab.EXTRA_PACKAGES)


if __name__ == "__main__":
    raise SystemExit(main())
