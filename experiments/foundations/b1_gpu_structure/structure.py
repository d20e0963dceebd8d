"""b1: draw the GPU's memory hierarchy with real sizes, and measure a hierarchy's steps.

    python -m experiments.foundations.b1_gpu_structure [--quick] [--gpu] [--render-only]

CPU half: the diagram from the cited H100 SXM spec table (labelled as such), and
the same physics on this CPU: read bandwidth against working-set size steps
down at each cache level. GPU half (--gpu): the diagram from
torch.cuda.get_device_properties and CUDA attributes, and the working-set sweep
on the device, whose step sits at the L2 size.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from experiments.common.lab import LabFiles, run_lab
from experiments.common.plots import plt, save_figure
from experiments.common.stats import summarize
from experiments.foundations.b_common import lab
from experiments.foundations.b_common.cuda_env import gpu_device_info, torch_cuda_skip_reason
from experiments.foundations.b_common.specs import KiB, MiB, spec_for

LAB_DIR = Path(__file__).resolve().parent
BENCHMARK_VERSION = 2  # 2: the sweep reads only the buffer (v1 summed into an output as large as it)


# ---------------------------------------------------------------- structure
def structure_from_spec(device_name: str | None = None) -> dict:
    spec = dict(spec_for(device_name))
    return {"source": "spec sheet (not measured)", "measured_keys": [], **spec}


def structure_from_device() -> dict:
    """Device-reported sizes, with the spec table filling what CUDA does not report."""
    info = gpu_device_info()
    spec = spec_for(info["name"])
    merged = {**spec, **info}
    merged["source"] = f"torch.cuda.get_device_properties / CUDA attributes on {info['name']}"
    merged["measured_keys"] = sorted(info)
    if "theoretical_bandwidth_GBps" in info:
        merged["hbm_bandwidth_GBps"] = info["theoretical_bandwidth_GBps"]
    return merged


def derived_sizes(s: dict) -> dict:
    """The totals the answer argues from."""
    sms = s["sm_count"]
    l1_shared = s.get("l1_shared_per_sm_bytes") or s["shared_memory_per_multiprocessor"]
    return {
        "register_file_per_sm_bytes": s["regs_per_multiprocessor"] * 4,
        "register_file_total_bytes": s["regs_per_multiprocessor"] * 4 * sms,
        "l1_shared_total_bytes": l1_shared * sms,
        "l2_bytes": s["L2_cache_size"],
        "max_warps_per_sm": s["max_threads_per_multi_processor"] // s["warp_size"],
        "max_resident_threads": s["max_threads_per_multi_processor"] * sms,
        "registers_per_thread_at_full_occupancy": s["regs_per_multiprocessor"]
        // s["max_threads_per_multi_processor"],
        "l2_over_all_l1_shared": s["L2_cache_size"] / (l1_shared * sms),
    }


def human_bytes(n: float) -> str:
    for unit, size in (("GB", 10**9), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if abs(v - round(v)) < 0.05 else f"{v:.1f} {unit}"
    return f"{n:.0f} B"


def draw_structure(s: dict, path: Path, source_note: str) -> Path:
    """SM detail on the left, the chip (SMs -> L2 -> HBM) on the right, sizes from `s`."""
    from matplotlib.patches import FancyBboxPatch

    d = derived_sizes(s)
    fig, ax = plt.subplots(figsize=(13, 7.5))
    ax.set_xlim(0, 13)
    ax.set_ylim(0, 7.5)
    ax.axis("off")

    def box(x, y, w, h, text, color, fs=8.5, weight="normal"):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", fc=color, ec="black", lw=0.8))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fs, weight=weight, wrap=True)

    parts = s.get("sm_subpartitions", 4)
    regs_part = s["regs_per_multiprocessor"] // parts
    # One SM, enlarged.
    box(0.2, 0.9, 6.4, 5.9, "", "#f4f4f4")
    ax.text(
        3.4,
        7.0,
        f"one SM (of {s['sm_count']}): up to {d['max_warps_per_sm']} resident warps "
        f"x {s['warp_size']} threads",
        ha="center",
        fontsize=10,
        weight="bold",
    )
    w = 6.0 / parts
    for i in range(parts):
        x = 0.4 + i * w
        box(x, 4.9, w - 0.15, 1.35, "warp scheduler\n+ dispatch\n(1 warp instr./clk)", "#cde4f7", 7.5)
        box(
            x,
            3.3,
            w - 0.15,
            1.45,
            f"register file\n{regs_part // 1024}K x 32-bit\n= {human_bytes(regs_part * 4)}",
            "#fde2c4",
            7.5,
        )
        cores = s.get("fp32_cores_per_sm", 128) // parts
        box(
            x,
            2.45,
            w - 0.15,
            0.7,
            f"{cores} FP32 lanes\n{s.get('tensor_cores_per_sm', 4) // parts} tensor core",
            "#e3f2d9",
            7,
        )
    l1 = s.get("l1_shared_per_sm_bytes")
    l1_text = (
        f"L1 data cache + shared memory: one {human_bytes(l1)} SRAM per SM\n"
        if l1
        else "L1 data cache + shared memory: one SRAM per SM\n"
    )
    box(
        0.4,
        1.05,
        6.0,
        1.2,
        l1_text + f"shared memory = programmer-managed, visible to one block "
        f"(up to {human_bytes(s['shared_memory_per_multiprocessor'])} per SM)\n"
        f"L1 = the rest of the same SRAM, a hardware-managed cache of global loads",
        "#f9d6d5",
        7.8,
    )

    # The chip.
    ax.text(9.85, 7.0, f"the whole GPU: {s['name']}", ha="center", fontsize=9.5, weight="bold")
    n_draw = 10
    for i in range(n_draw):
        label = "SM" if i < n_draw - 1 else "..."
        box(7.0 + i * 0.58, 5.5, 0.5, 0.7, label, "#f4f4f4", 7)
    ax.text(
        9.85,
        6.4,
        f"{s['sm_count']} SMs; registers {human_bytes(d['register_file_total_bytes'])}, "
        f"L1/shared {human_bytes(d['l1_shared_total_bytes'])} in total",
        ha="center",
        fontsize=8,
    )
    box(
        7.0,
        3.7,
        5.7,
        1.1,
        f"L2 cache {human_bytes(s['L2_cache_size'])}: one per GPU, shared by all SMs;\n"
        f"every global load/store that misses L1 goes through it (32-byte sectors)",
        "#fff3b0",
        8.3,
    )
    bw = s.get("hbm_bandwidth_GBps")
    box(
        7.0,
        1.9,
        5.7,
        1.1,
        f"HBM (device memory) {human_bytes(s['total_memory_bytes'])}"
        + (f", {bw / 1000:.2f} TB/s" if bw else ""),
        "#d9d2e9",
        9,
    )
    for x in (7.3, 9.8, 12.3):
        ax.annotate("", xy=(x, 4.8), xytext=(x, 5.5), arrowprops=dict(arrowstyle="<->", lw=0.8))
        ax.annotate("", xy=(x, 3.0), xytext=(x, 3.7), arrowprops=dict(arrowstyle="<->", lw=0.8))
    ax.annotate("", xy=(7.0, 5.85), xytext=(6.6, 3.9), arrowprops=dict(arrowstyle="-", ls="--", lw=0.8))
    ax.text(6.5, 0.35, f"sizes from: {source_note}", ha="center", fontsize=8, style="italic")
    return save_figure(fig, path)


# ---------------------------------------------------------------- working-set sweep
def cpu_cache_sizes() -> dict:
    """Cache sizes the kernel reports for CPU 0 (Linux sysfs), e.g. {'L1d': 49152, ...}."""
    out = {}
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for idx in sorted(base.glob("index*")):
        try:
            level = (idx / "level").read_text().strip()
            kind = (idx / "type").read_text().strip()
            size = (idx / "size").read_text().strip()
        except OSError:
            continue
        mult = {"K": KiB, "M": MiB}.get(size[-1], 1)
        name = f"L{level}" + ({"Data": "d", "Instruction": "i"}.get(kind, ""))
        if kind != "Instruction":
            out[name] = int(size.rstrip("KM")) * mult
    return out


READ_ROW = 1024  # float32 columns of the CPU accumulator: 4 KiB, stays in L1 next to the buffer being read


def measure_cpu_read_bandwidth(working_set_bytes: int, *, bytes_per_sample: int, repeats: int) -> dict:
    """GB/s of reading a float32 buffer of `working_set_bytes` again and again.

    The buffer, seen as rows of READ_ROW floats, is broadcast (stride 0) `reps` times and
    summed column-wise into one 4 KiB row: one np.add.reduce call reads the buffer reps
    times, and the only other memory it touches is that small accumulator. (Summing into
    an output as large as the buffer, as version 1 did, doubled the real working set.)
    """
    n = working_set_bytes // 4
    if n % READ_ROW:
        raise ValueError(f"working set {working_set_bytes} B is not a multiple of {READ_ROW * 4} B")
    buf = np.ones(n, dtype=np.float32)
    reps = max(1, bytes_per_sample // working_set_bytes)
    view = np.broadcast_to(buf.reshape(-1, READ_ROW), (reps, n // READ_ROW, READ_ROW))
    out = np.empty(READ_ROW, dtype=np.float32)
    np.add.reduce(view, axis=(0, 1), out=out)  # warm-up: page faults, caches
    if out[0] != reps * (n // READ_ROW):  # every element read exactly reps times (exact in float32 here)
        raise RuntimeError(f"read check failed: {out[0]} != {reps * (n // READ_ROW)}")
    gbps, wall_gbps = [], []
    for _ in range(repeats):
        c0, t0 = time.thread_time(), time.perf_counter()
        np.add.reduce(view, axis=(0, 1), out=out)
        c1, t1 = time.thread_time(), time.perf_counter()
        # Per CPU-second of the reading thread: time it spent descheduled (the cores are shared) does not
        # count; stalls waiting for memory do, as they should.
        gbps.append(reps * working_set_bytes / (c1 - c0) / 1e9)
        wall_gbps.append(reps * working_set_bytes / (t1 - t0) / 1e9)
    return {"working_set_bytes": working_set_bytes, "reads_per_sample": reps,
            "accumulator_bytes": out.nbytes, "GBps": summarize(gbps), "wall_GBps": summarize(wall_gbps)}


def measure_gpu_read_bandwidth(working_set_bytes: int, *, bytes_per_sample: int, repeats: int) -> dict:
    """Same sweep on the GPU: row sums of the buffer expanded (stride 0) to `reps` rows, CUDA events, L2 warm.

    Each row is the whole buffer, reduced by blocks spread over the SMs, so every pass
    reads every byte again: from L2 while the buffer fits in it, from HBM beyond.
    (A column sum, dim=0, would have each thread re-read one address and hit L1.)
    """
    import torch

    from experiments.foundations.b_common.cuda_env import time_cuda_ms

    n = working_set_bytes // 4
    buf = torch.ones(n, dtype=torch.float32, device="cuda")
    reps = max(1, bytes_per_sample // working_set_bytes)
    view = buf.expand(reps, n)
    out = torch.empty(reps, dtype=torch.float32, device="cuda")
    torch.sum(view, dim=1, out=out)
    if abs(float(out[0]) - n) > 1e-6 * n:  # outside the timed window; float32 tree sum of ones
        raise RuntimeError(f"read check failed: row sum {float(out[0])} != {n}")
    t = time_cuda_ms(lambda: torch.sum(view, dim=1, out=out), warmup=3, repeats=repeats, flush_l2=False)
    gbps = [reps * working_set_bytes / (ms * 1e-3) / 1e9 for ms in t["samples_ms"]]
    return {
        "working_set_bytes": working_set_bytes,
        "reads_per_sample": reps,
        "GBps": summarize(gbps),
        "time_ms": {k: v for k, v in t.items() if k != "samples_ms"},
    }


def sweep(measure, sizes, *, bytes_per_sample, repeats) -> list[dict]:
    rows = []
    for size in sizes:
        row = measure(size, bytes_per_sample=bytes_per_sample, repeats=repeats)
        print(f"  working set {human_bytes(size):>9}: {row['GBps']['median']:8.1f} GB/s")
        rows.append(row)
    return rows


def plot_sweep(doc: dict, path: Path, source: str, *, levels: dict, title: str,
               ylabel: str = "read bandwidth (GB/s), median, bars = min..max") -> Path:
    rows = doc["results"]["sweep"]
    x = [r["working_set_bytes"] for r in rows]
    med = [r["GBps"]["median"] for r in rows]
    lo = [r["GBps"]["median"] - r["GBps"]["min"] for r in rows]
    hi = [r["GBps"]["max"] - r["GBps"]["median"] for r in rows]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.errorbar(x, med, yerr=[lo, hi], marker="o", capsize=3)
    ax.set_xscale("log", base=2)
    for name, size in levels.items():
        ax.axvline(size, color="grey", ls=":", lw=0.8)
        ax.text(size, ax.get_ylim()[1] * 0.97, f" {name}\n {human_bytes(size)}", fontsize=7, va="top")
    ax.set_xlabel("working set (bytes, log2)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path, source=source)


# ---------------------------------------------------------------- halves
def run_cpu(files: LabFiles, args: argparse.Namespace) -> None:
    quick = args.quick
    s = structure_from_spec()
    config = {"source": s["source"]}
    files.write(
        "structure_spec_h100_sxm",
        {"structure": s, "derived": derived_sizes(s)},
        config=config,
        benchmark_version=BENCHMARK_VERSION,
    )
    if quick:
        sizes = [16 * KiB, 256 * KiB, 4 * MiB, 64 * MiB]
        per_sample, repeats = 128 * MiB, 3
    else:
        sizes = [2**k for k in range(13, 29)]  # 8 KiB .. 256 MiB
        per_sample, repeats = 512 * MiB, 7
    print("CPU read bandwidth vs working set:")
    rows = sweep(measure_cpu_read_bandwidth, sizes, bytes_per_sample=per_sample, repeats=repeats)
    files.write(
        "cpu_working_set_sweep",
        {"sweep": rows, "cpu_caches": cpu_cache_sizes()},
        config={
            "bytes_per_sample": per_sample,
            "repeats": repeats,
            "dtype": "float32",
            "method": "np.add.reduce over np.broadcast_to(buf.reshape(-1, 1024), (reps, n / 1024, 1024)), axis=(0, 1), into a 4 KiB row",
            "timing": "GBps per CPU-second of the reading thread (time.thread_time); wall_GBps by perf_counter",
        },
        benchmark_version=BENCHMARK_VERSION,
    )


def run_gpu(files: LabFiles, args: argparse.Namespace) -> bool:
    quick = args.quick
    reason = torch_cuda_skip_reason()
    if reason:
        lab.skip(reason, "b1 GPU half (device properties, GPU working-set sweep)")
        return False
    s = structure_from_device()
    files.write(
        "structure_gpu",
        {"structure": s, "derived": derived_sizes(s)},
        config={"source": s["source"]},
        benchmark_version=BENCHMARK_VERSION,
    )
    sizes = [256 * KiB, 8 * MiB, 256 * MiB] if quick else [2**k for k in range(16, 31)]  # 64 KiB .. 1 GiB
    per_sample, repeats = (256 * MiB, 5) if quick else (4 * 2**30, 20)
    print("GPU read bandwidth vs working set:")
    rows = sweep(measure_gpu_read_bandwidth, sizes, bytes_per_sample=per_sample, repeats=repeats)
    files.write(
        "gpu_working_set_sweep",
        {"sweep": rows, "L2_cache_size": s["L2_cache_size"]},
        config={
            "bytes_per_sample": per_sample,
            "repeats": repeats,
            "dtype": "float32",
            "method": "torch.sum(buf.expand(reps, n), dim=1), CUDA events, L2 not flushed",
        },
        benchmark_version=BENCHMARK_VERSION,
    )
    return True


def render(files: LabFiles) -> dict[str, str]:
    """Redraw every plot from the result files and return the README blocks."""
    blocks = {}
    spec_doc = files.read("structure_spec_h100_sxm")
    if spec_doc:
        s = spec_doc["results"]["structure"]
        draw_structure(
            s,
            files.plot_path("gpu_structure_spec_h100_sxm"),
            "cited H100 SXM5 spec table (experiments/foundations/b_common/specs.py), not measured",
        )
        d = spec_doc["results"]["derived"]
        blocks["spec"] = "\n".join(
            [
                "![GPU structure from the H100 SXM spec sheet](plots/gpu_structure_spec_h100_sxm.png)",
                "",
                f"From `{files.rel(files.result_path('structure_spec_h100_sxm'))}` "
                "(spec sheet, not measured):",
                "",
                lab.md_table(
                    ["quantity", "value"],
                    [
                        ["SMs", s["sm_count"]],
                        ["resident warps per SM (max)", d["max_warps_per_sm"]],
                        ["register file per SM", human_bytes(d["register_file_per_sm_bytes"])],
                        [
                            "registers per thread at full occupancy",
                            d["registers_per_thread_at_full_occupancy"],
                        ],
                        ["L1 + shared SRAM per SM", human_bytes(s["l1_shared_per_sm_bytes"])],
                        [
                            "shared memory per SM (max carve-out)",
                            human_bytes(s["shared_memory_per_multiprocessor"]),
                        ],
                        ["L1 + shared, all SMs", human_bytes(d["l1_shared_total_bytes"])],
                        ["register files, all SMs", human_bytes(d["register_file_total_bytes"])],
                        ["L2 (one, shared by all SMs)", human_bytes(s["L2_cache_size"])],
                        ["L2 / (all L1 + shared)", f"{d['l2_over_all_l1_shared']:.2f}x"],
                        [
                            "HBM",
                            f"{human_bytes(s['total_memory_bytes'])}, "
                            f"{s['hbm_bandwidth_GBps'] / 1000:.2f} TB/s",
                        ],
                    ],
                ),
                "",
                "Sources: " + "; ".join(s["sources"]) + ".",
            ]
        )
    cpu_doc = files.read("cpu_working_set_sweep")
    if cpu_doc:
        caches = cpu_doc["results"]["cpu_caches"]
        plot_sweep(
            cpu_doc,
            files.plot_path("cpu_working_set_sweep"),
            files.rel(files.result_path("cpu_working_set_sweep")),
            levels=caches,
            title="CPU analogue: read bandwidth steps down at each cache level",
            ylabel="GB/s per CPU-second of the reader, median, bars = min..max",
        )
        rows = cpu_doc["results"]["sweep"]
        blocks["cpu"] = "\n".join(
            [
                "![CPU read bandwidth vs working set](plots/cpu_working_set_sweep.png)",
                "",
                lab.md_table(
                    ["working set", "GB/s per CPU-second, median (min-max, n)", "GB/s per wall second"],
                    [[human_bytes(r["working_set_bytes"]), lab.spread(r["GBps"]), lab.spread(r["wall_GBps"])]
                     for r in rows],
                ),
                "",
                "CPU caches (sysfs): " + ", ".join(f"{k} {human_bytes(v)}" for k, v in caches.items()) + ".",
                "",
                lab.machine_line(cpu_doc)
                + f" Source: `{files.rel(files.result_path('cpu_working_set_sweep'))}`.",
            ]
        )
    gpu_doc, gsweep = files.read("structure_gpu"), files.read("gpu_working_set_sweep")
    if gpu_doc:
        s = gpu_doc["results"]["structure"]
        draw_structure(s, files.plot_path("gpu_structure_measured"), s["source"])
        lines = [
            "![GPU structure as the device reports it](plots/gpu_structure_measured.png)",
            "",
            lab.md_table(["device-reported key", "value"], [[k, str(s[k])] for k in s["measured_keys"]]),
        ]
        if gsweep:
            plot_sweep(
                gsweep,
                files.plot_path("gpu_working_set_sweep"),
                files.rel(files.result_path("gpu_working_set_sweep")),
                levels={"L2": gsweep["results"]["L2_cache_size"]},
                title=f"{s['name']}: read bandwidth vs working set (L2 warm)",
            )
            lines += [
                "",
                "![GPU read bandwidth vs working set](plots/gpu_working_set_sweep.png)",
                "",
                lab.md_table(
                    ["working set", "GB/s median (min-max, n)"],
                    [
                        [human_bytes(r["working_set_bytes"]), lab.spread(r["GBps"])]
                        for r in gsweep["results"]["sweep"]
                    ],
                ),
            ]
        lines += ["", lab.machine_line(gpu_doc)]
        blocks["gpu"] = "\n".join(lines)
    else:
        blocks["gpu"] = lab.gpu_not_measured(files.module)
    return blocks


GPU_HELP = "run the GPU half instead (device properties, GPU working-set sweep); skips with a reason without CUDA"


def main(argv: list[str] | None = None) -> int:
    return run_lab(argv, doc=__doc__, lab_dir=LAB_DIR, run_cpu=run_cpu, run_gpu=run_gpu, render=render,
                   gpu_help=GPU_HELP, extra_packages=lab.EXTRA_PACKAGES)


if __name__ == "__main__":
    raise SystemExit(main())
