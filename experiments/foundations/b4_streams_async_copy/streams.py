"""b4: pageable vs pinned copies, copy/compute overlap on streams, and the cases that turn async into sync.

    python -m experiments.foundations.b4_streams_async_copy [--quick]         # CPU analogue (cpu_analogue.py)
    python -m experiments.foundations.b4_streams_async_copy --gpu [--quick]   # NVIDIA machine
    python -m experiments.foundations.b4_streams_async_copy --render-only

CPU-only torch has no streams, events or pinned memory, so the GPU half skips
in one line without CUDA. The CPU half is an analogue, labelled as such:
worker threads play the copy engine and the SMs, on real timestamps.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from experiments.common.lab import LabFiles, run_lab
from experiments.common.plots import plt, save_figure
from experiments.common.stats import summarize
from experiments.foundations.b4_streams_async_copy import cpu_analogue
from experiments.foundations.b4_streams_async_copy.timeline import plot_timelines, summarize_timeline
from experiments.foundations.b_common import lab
from experiments.foundations.b_common.cuda_env import numba_cuda_skip_reason, torch_cuda_skip_reason

LAB_DIR = Path(__file__).resolve().parent
BENCHMARK_VERSION = 2  # 2: CPU analogue added (GPU half unchanged)
MiB = 2**20

SCENARIOS = {
    "one stream (pinned)": "copy and compute on the default stream: in-order, no overlap possible",
    "two streams, pinned": "copy stream + compute stream, pinned host chunks, events for dependencies",
    "two streams, pageable": "same, host chunks not pinned: the copy call blocks the host while it stages",
    "two streams, .item() per chunk": "same as pinned, plus a scalar read of each result "
    "(host waits for compute)",
    "two streams, .cpu() per chunk": "same as pinned, plus a small D2H .cpu() of each result",
    "blocking stream + default stream": "copy on a stream created without cudaStreamNonBlocking, compute on "
    "the legacy default stream: the two implicitly serialise",
}


# ---------------------------------------------------------------- H2D bandwidth
def measure_h2d(sizes: list[int], repeats: int) -> list[dict]:
    """Device time (CUDA events) and host time of dst.copy_(src, non_blocking=True), pageable vs pinned."""
    import torch

    rows = []
    for nbytes in sizes:
        dst = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
        for memory in ("pageable", "pinned"):
            src = torch.ones(nbytes, dtype=torch.uint8)
            if memory == "pinned":
                src = src.pin_memory()
            dst.copy_(src, non_blocking=True)
            torch.cuda.synchronize()
            dev_ms, host_ms = [], []
            for _ in range(repeats):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                t0 = time.perf_counter()
                dst.copy_(src, non_blocking=True)
                host_ms.append((time.perf_counter() - t0) * 1e3)
                end.record()
                torch.cuda.synchronize()
                dev_ms.append(start.elapsed_time(end))
            dev, host = summarize(dev_ms), summarize(host_ms)
            rows.append(
                {
                    "bytes": nbytes,
                    "memory": memory,
                    "device_ms": dev,
                    "host_call_ms": host,
                    "GBps": summarize([nbytes / (ms * 1e-3) / 1e9 for ms in dev_ms]),
                    "host_blocked_fraction": host["median"] / dev["median"],
                }
            )
            print(
                f"  H2D {nbytes / MiB:7.1f} MiB {memory:>8}: {rows[-1]['GBps']['median']:6.1f} GB/s, "
                f"call returned after {host['median']:.3f} ms of {dev['median']:.3f} ms"
            )
    return rows


# ---------------------------------------------------------------- pipeline
def _raw_handle(stream) -> int:
    h = stream.handle
    return int(getattr(h, "value", None) or int(h))


def make_streams(scenario: str):
    """(copy stream, compute stream, keep-alive) for a scenario, or raise RuntimeError why not."""
    import torch

    default = torch.cuda.current_stream()
    if scenario.startswith("one stream"):
        return default, default, None
    if scenario.startswith("blocking stream"):
        reason = numba_cuda_skip_reason()
        if reason:
            raise RuntimeError(f"needs numba.cuda for a blocking stream: {reason}")
        from numba import cuda

        blocking = cuda.stream()  # cuStreamCreate(flags=0): synchronises with the legacy default stream
        return torch.cuda.ExternalStream(_raw_handle(blocking)), default, blocking
    return torch.cuda.Stream(), torch.cuda.Stream(), None


def compute_step(buf, reps: int) -> None:
    for _ in range(reps):
        buf.mul_(1.0001).add_(0.5)


def run_pipeline(scenario: str, host_chunks, dev_bufs, compute_reps: int) -> dict:
    """Copy chunk i in, compute on it; CUDA events around every op give the timeline."""
    import torch

    copy_s, comp_s, keep = make_streams(scenario)
    torch.cuda.synchronize()
    base = torch.cuda.Event(enable_timing=True)
    base.record()
    copy_s.wait_event(base)
    comp_s.wait_event(base)
    marks = []

    def timed(stream, name, kind, fn):
        with torch.cuda.stream(stream):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
        marks.append((stream is copy_s and kind == "copy", name, kind, s, e))
        return e

    t0 = time.perf_counter()
    for i, (h, d) in enumerate(zip(host_chunks, dev_bufs)):
        copied = timed(copy_s, f"h2d[{i}]", "copy", lambda: d.copy_(h, non_blocking=True))
        comp_s.wait_event(copied)
        timed(comp_s, f"compute[{i}]", "compute", lambda: compute_step(d, compute_reps))
        with torch.cuda.stream(comp_s):
            if ".item()" in scenario:
                d[0].item()
            elif ".cpu()" in scenario:
                d[:256].cpu()
    enqueue_ms = (time.perf_counter() - t0) * 1e3
    torch.cuda.synchronize()
    wall_ms = (time.perf_counter() - t0) * 1e3
    same = copy_s == comp_s
    records = [
        {
            "stream": "default" if same else ("copy" if kind == "copy" else "compute"),
            "op": name,
            "kind": kind,
            "start_ms": base.elapsed_time(s),
            "end_ms": base.elapsed_time(e),
        }
        for _, name, kind, s, e in marks
    ]
    del keep
    return {
        "records": records,
        "host_enqueue_ms": enqueue_ms,
        "wall_ms": wall_ms,
        **summarize_timeline(records),
    }


def calibrate(chunk, dev, repeats: int = 5) -> dict:
    """Compute reps per chunk so that compute takes about as long as the pinned copy."""
    import torch

    from experiments.foundations.b_common.cuda_env import time_cuda_ms

    copy_ms = time_cuda_ms(lambda: dev.copy_(chunk, non_blocking=True), repeats=repeats, flush_l2=False)[
        "median"
    ]
    step_ms = time_cuda_ms(lambda: compute_step(dev, 1), repeats=repeats, flush_l2=False)["median"]
    torch.cuda.synchronize()
    return {"copy_ms": copy_ms, "compute_step_ms": step_ms, "compute_reps": max(1, round(copy_ms / step_ms))}


def run_gpu(files: LabFiles, args: argparse.Namespace) -> bool:
    quick = args.quick
    reason = torch_cuda_skip_reason()
    if reason:
        lab.skip(reason, "b4 (streams, events and pinned memory need CUDA)")
        return False
    import torch

    repeats = 3 if quick else 10
    sizes = [1 * MiB, 16 * MiB] if quick else [256 * 1024, 1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB]
    print("H2D copies:")
    h2d = measure_h2d(sizes, repeats)
    n_chunks, chunk_bytes = (4, 16 * MiB) if quick else (8, 64 * MiB)
    pinned = [torch.rand(chunk_bytes // 4).pin_memory() for _ in range(n_chunks)]
    pageable = [t.clone() for t in pinned]
    dev = [torch.empty(chunk_bytes // 4, device="cuda") for _ in range(n_chunks)]
    cal = calibrate(pinned[0], dev[0])
    print(
        f"calibration: copy {cal['copy_ms']:.3f} ms per chunk, {cal['compute_reps']} compute steps per chunk"
    )
    scenarios, skipped = {}, {}
    for name in SCENARIOS:
        chunks = pageable if "pageable" in name else pinned
        try:
            runs = [run_pipeline(name, chunks, dev, cal["compute_reps"]) for _ in range(repeats)]
        except RuntimeError as err:
            skipped[name] = str(err)
            lab.skip(str(err), f"b4 scenario {name!r}")
            continue
        scenarios[name] = {
            "what": SCENARIOS[name],
            "makespan_ms": summarize([r["makespan_ms"] for r in runs]),
            "overlap_fraction": summarize([r["overlap_fraction"] for r in runs]),
            "host_enqueue_ms": summarize([r["host_enqueue_ms"] for r in runs]),
            "wall_ms": summarize([r["wall_ms"] for r in runs]),
            "last_run": runs[-1],
        }
        s = scenarios[name]
        print(
            f"  {name:<34} makespan {s['makespan_ms']['median']:8.2f} ms, overlap "
            f"{s['overlap_fraction']['median']:.2f}, host enqueue {s['host_enqueue_ms']['median']:8.2f} ms"
        )
    files.write(
        "gpu_streams",
        {"h2d": h2d, "calibration": cal, "scenarios": scenarios, "skipped": skipped},
        config={
            "chunks": n_chunks,
            "chunk_bytes": chunk_bytes,
            "repeats": repeats,
            "sizes": sizes,
            "timing": "CUDA events per op relative to one base event; host time by perf_counter",
        },
        benchmark_version=BENCHMARK_VERSION,
    )
    return True


# ---------------------------------------------------------------- plots and README
def plot_h2d(doc: dict, path: Path, source: str) -> Path:
    rows = doc["results"]["h2d"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for memory in ("pageable", "pinned"):
        r = [x for x in rows if x["memory"] == memory]
        a.plot([x["bytes"] / MiB for x in r], [x["GBps"]["median"] for x in r], "o-", label=memory)
        b.plot([x["bytes"] / MiB for x in r], [x["host_blocked_fraction"] for x in r], "o-", label=memory)
    for ax in (a, b):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("copy size (MiB)")
        ax.legend(fontsize=8)
    a.set_ylabel("H2D GB/s (CUDA events, median)")
    b.set_ylabel("host time in copy_(non_blocking=True) / device copy time")
    b.set_title("~0: the call returned at once; ~1: it waited for the copy", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path, source=source)


def run_cpu(files: LabFiles, args: argparse.Namespace) -> None:
    quick = args.quick
    n_chunks, chunk_bytes, repeats, pin_bytes = (3, 8 * MiB, 2, 16 * MiB) if quick else (8, 64 * MiB, 7, 256 * MiB)
    print(f"b4 CPU analogue: {n_chunks} chunks of {chunk_bytes // MiB} MiB, {repeats} repeats")
    files.write(
        "cpu_analogue",
        cpu_analogue.measure(n_chunks, chunk_bytes, repeats, pin_bytes),
        config={"chunks": n_chunks, "chunk_bytes": chunk_bytes, "repeats": repeats, "pin_bytes": pin_bytes,
                "timing": "time.perf_counter() on the thread that ran each op, relative to the scenario start",
                "analogue": "worker threads stand for the copy engine and the SMs; not a GPU measurement"},
        benchmark_version=BENCHMARK_VERSION,
    )


PIN_STEPS = [("first touch of fresh pages", "first_touch"), ("second touch (pages present)", "second_touch"),
             ("mlock of fresh pages", "mlock_fresh"), ("touch after mlock", "touch_after_mlock"),
             ("mlock of touched pages", "mlock_touched")]


def plot_pinning(doc: dict, path: Path, source: str) -> Path:
    p = doc["results"]["pinning"]
    steps = [(label, key) for label, key in PIN_STEPS if f"{key}_ms" in p]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.bar([label.replace(" of ", "\n") for label, _ in steps], [p[f"{key}_ms"] for _, key in steps],
           color="#4c72b0")
    for i, (_, key) in enumerate(steps):
        ax.text(i, p[f"{key}_ms"], f"{p[f'{key}_faults']:,} faults", ha="center", va="bottom", fontsize=7)
    ax.set_ylabel(f"ms for {p['bytes'] // MiB} MiB")
    ax.set_title("CPU: what page-locking (mlock) a host buffer costs, vs touching it", fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return save_figure(fig, path, source=source)


def render_cpu(files: LabFiles) -> str:
    doc = files.read("cpu_analogue")
    if not doc:
        return f"CPU analogue: not yet measured; run `python -m {files.module}`."
    src = files.rel(files.result_path("cpu_analogue"))
    r = doc["results"]
    cal, pin = r["calibration"], r["pinning"]
    plot_timelines(
        {k: v["last_run"]["records"] for k, v in r["scenarios"].items()},
        files.plot_path("cpu_overlap_timeline"),
        source=src,
        title="CPU ANALOGUE (worker threads, not a GPU): copy/compute timelines, last repeat",
        xlabel="time since the scenario started (ms, perf_counter on the thread that ran each op)",
    )
    plot_pinning(doc, files.plot_path("cpu_pinning_cost"), src)
    pin_rows = [[label, pin[f"{key}_ms"], pin[f"{key}_faults"]] for label, key in PIN_STEPS if f"{key}_ms" in pin]
    return "\n".join(
        [
            "**CPU analogue, not a GPU measurement**: worker threads stand for the copy engine and the SMs.",
            "",
            f"Calibration: one {doc['config']['chunk_bytes'] // MiB} MiB `np.copyto` took "
            f"{lab.fmt(cal['copy_ms'])} ms ({lab.fmt(cal['copy_GBps'])} GB/s); compute = {cal['compute_reps']} x "
            f"`np.sin` over {cal['compute_block_bytes'] // MiB} MiB ({lab.fmt(cal['compute_block_ms'])} ms each); "
            f"{doc['config']['chunks']} chunks per run.",
            "",
            "![CPU analogue timelines](plots/cpu_overlap_timeline.png)",
            "",
            lab.md_table(
                ["scenario", "makespan ms", "overlap fraction", "host blocked ms", "host enqueue ms",
                 "copy busy ms", "compute busy ms", "what"],
                [[k, lab.spread(v["makespan_ms"]), lab.spread(v["overlap_fraction"]),
                  lab.spread(v["host_blocked_ms"]), lab.spread(v["host_enqueue_ms"]),
                  lab.spread(v["copy_busy_ms"]), lab.spread(v["compute_busy_ms"]), v["what"]]
                 for k, v in r["scenarios"].items()],
            ),
            "",
            f"The cost of pinning {pin['bytes'] // MiB} MiB ({pin['pages']:,} pages of {pin['page_bytes']:,} B); "
            "minor page faults counted by `getrusage(RUSAGE_THREAD)`:",
            "",
            "![pinning cost](plots/cpu_pinning_cost.png)",
            "",
            lab.md_table(["step", "ms", "minor faults"], pin_rows),
            *(["", f"mlock failed: {pin['mlock_error']}"] if "mlock_error" in pin else []),
            "",
            lab.machine_line(doc) + f" Source: `{src}`.",
        ]
    )


def render(files: LabFiles) -> dict[str, str]:
    return {"cpu": render_cpu(files), "gpu": render_gpu(files)}


def render_gpu(files: LabFiles) -> str:
    doc = files.read("gpu_streams")
    if not doc:
        return lab.gpu_not_measured(files.module)
    src = files.rel(files.result_path("gpu_streams"))
    r = doc["results"]
    plot_h2d(doc, files.plot_path("gpu_h2d_pageable_vs_pinned"), src)
    plot_timelines(
        {k: v["last_run"]["records"] for k, v in r["scenarios"].items()},
        files.plot_path("gpu_overlap_timeline"),
        source=src,
        title=f"{doc['provenance']['machine']['gpu_model']}: copy/compute timelines (last repeat)",
    )
    return "\n".join(
        [
            "![H2D pageable vs pinned](plots/gpu_h2d_pageable_vs_pinned.png)",
            "",
            lab.md_table(
                ["size", "memory", "GB/s", "host call ms", "device ms", "host / device"],
                [
                    [
                        f"{x['bytes'] / MiB:g} MiB",
                        x["memory"],
                        lab.spread(x["GBps"]),
                        lab.spread(x["host_call_ms"]),
                        lab.spread(x["device_ms"]),
                        x["host_blocked_fraction"],
                    ]
                    for x in r["h2d"]
                ],
            ),
            "",
            "![overlap timelines](plots/gpu_overlap_timeline.png)",
            "",
            lab.md_table(
                ["scenario", "makespan ms", "overlap fraction", "host enqueue ms", "what"],
                [
                    [
                        k,
                        lab.spread(v["makespan_ms"]),
                        lab.spread(v["overlap_fraction"]),
                        lab.spread(v["host_enqueue_ms"]),
                        v["what"],
                    ]
                    for k, v in r["scenarios"].items()
                ],
            ),
            "",
            *(f"Skipped {k}: {v}" for k, v in r["skipped"].items()),
            lab.machine_line(doc) + f" Source: `{src}`.",
        ]
    )


GPU_HELP = "run the GPU measurements (streams, events, pinned memory; without CUDA, skip with a reason)"


def main(argv: list[str] | None = None) -> int:
    return run_lab(argv, doc=__doc__, lab_dir=LAB_DIR, run_cpu=run_cpu, run_gpu=run_gpu, render=render,
                   gpu_help=GPU_HELP, extra_packages=lab.EXTRA_PACKAGES)


if __name__ == "__main__":
    raise SystemExit(main())
