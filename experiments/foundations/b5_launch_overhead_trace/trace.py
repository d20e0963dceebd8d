"""b5: profile a small transformer forward, measure launch overhead, read it off the trace.

    python -m experiments.foundations.b5_launch_overhead_trace [--quick] [--gpu] [--render-only]

CPU half: time per forward for many-small-ops vs fused (and torch.compile'd,
not in --quick: it compiles C++ with gcc) code over the same weights; the
per-op cost of a tiny op vs one batched op; a torch.profiler Chrome trace of
a few forwards, parsed for top-level ops and the gaps between them. GPU half
(--gpu): the same with CUDA activity (kernels and the gaps between them),
CUDA Graph replay vs eager, and an nsys capture when nsys is installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from experiments.common.lab import LabFiles, run_lab
from experiments.common.plots import plt, save_figure
from experiments.common.results import write_json_atomic
from experiments.common.stats import summarize
from experiments.common.timing import time_repeats
from experiments.foundations.b5_launch_overhead_trace import chrome_trace as CT
from experiments.foundations.b5_launch_overhead_trace import nsys_cpu
from experiments.foundations.b5_launch_overhead_trace.tiny_model import TinyConfig, make_model, make_tokens
from experiments.foundations.b_common import lab
from experiments.foundations.b_common.cuda_env import time_cuda_ms, torch_cuda_skip_reason

LAB_DIR = Path(__file__).resolve().parent
BENCHMARK_VERSION = 2  # 2: variants interleaved, everything on one intra-op thread
MAX_TRACE_BYTES = 1_000_000
# Committed next to the plots, made by nsys_ui_screenshot (a screen grab, not drawn from results).
SCREENSHOT = LAB_DIR / "plots" / "cpu_nsys_ui_screenshot.png"
# A torch.compile'd model keeps settling for a few calls after its first (compile) call:
# with 2 warm-ups its median was twice its settled time here, so every variant gets 20.
WARMUP = 20


def tiny_op_overhead(n_ops: int, elems: int, repeats: int) -> dict:
    """n_ops separate mul_ calls on small tensors vs one mul_ over all of them: the per-op fixed cost."""
    import torch

    small = [torch.ones(elems) for _ in range(n_ops)]
    big = torch.ones(n_ops, elems)

    def many():
        for t in small:
            t.mul_(1.0001)

    t_many = time_repeats(many, repeats=repeats, warmup=1)
    t_one = time_repeats(lambda: big.mul_(1.0001), repeats=repeats, warmup=1)
    return {
        "n_ops": n_ops,
        "elements_per_op": elems,
        "many_small_s": t_many,
        "one_batched_s": t_one,
        "per_small_op_us": t_many["median"] / n_ops * 1e6,
        "ratio": t_many["median"] / t_one["median"],
    }


def forward_variants(cfg: TinyConfig, *, compile_: bool, device: str = "cpu") -> dict:
    import torch

    variants = {
        "many small ops (eager)": make_model(cfg, fused=False, device=device),
        "fused ops (eager)": make_model(cfg, fused=True, device=device),
    }
    if compile_:
        variants["many small ops (torch.compile)"] = torch.compile(
            make_model(cfg, fused=False, device=device)
        )
    return variants


def count_ops(model, tokens) -> int:
    """Top-level aten ops in one forward, from the profiler."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model(tokens)
    return sum(1 for e in prof.events() if e.name.startswith("aten::") and e.cpu_parent is None)


def time_forwards(cfg: TinyConfig, variants: dict, repeats: int, device: str = "cpu") -> dict:
    """First call, warm-up, then `repeats` rounds timing one forward of every variant per round, in a
    rotating order: a neighbour's burst of CPU time lands on all variants alike, and each round gives a
    paired difference (small ops minus each other variant) beside the per-variant medians."""
    import torch

    tokens = make_tokens(cfg, device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    out = {}
    with torch.inference_mode():
        ref = variants["many small ops (eager)"](tokens)
        for name, model in variants.items():
            sync()  # nothing queued before the clock starts
            t0 = time.perf_counter()
            y = model(tokens)  # first call: compiles when torch.compile'd
            sync()  # on a GPU the call returns once its kernels are queued, not done
            out[name] = {"first_call_s": time.perf_counter() - t0,
                         "max_abs_diff_vs_small_ops": float((y - ref).abs().max()),
                         "top_level_ops": count_ops(model, tokens) if "compile" not in name else None}
        if device == "cuda":
            for name, model in variants.items():
                t = time_cuda_ms(lambda: model(tokens), warmup=WARMUP, repeats=repeats, flush_l2=False)
                out[name]["forward_s"] = {k: v / 1e3 for k, v in t.items()
                                          if k in ("median", "min", "max", "mean", "p25", "p75")}
                out[name]["forward_s"]["n"] = t["n"]
        else:
            samples = interleaved_samples({n: (lambda m=m: m(tokens)) for n, m in variants.items()}, repeats)
            base = samples["many small ops (eager)"]
            for name, xs in samples.items():
                out[name]["forward_s"] = {**summarize(xs), "samples_s": xs, "warmup": WARMUP}
                if name != "many small ops (eager)":
                    out[name]["saved_vs_small_ops_s"] = summarize([b - x for b, x in zip(base, xs)])
        for name in variants:
            print(f"  {name:<32} {out[name]['forward_s']['median'] * 1e3:8.3f} ms/forward "
                  f"(first call {out[name]['first_call_s']:.2f} s)")
    return out


def interleaved_samples(fns: dict, repeats: int) -> dict[str, list[float]]:
    """WARMUP untimed calls of each function, then `repeats` rounds of one timed call of each, the order
    rotating by one every round; seconds per call, in round order."""
    for fn in fns.values():
        for _ in range(WARMUP):
            fn()
    names = list(fns)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            fns[name]()
            samples[name].append(time.perf_counter() - t0)
    return samples


def profile_trace(
    cfg: TinyConfig, fused: bool, n_forwards: int, trace_path: Path, device: str = "cpu"
) -> Path:
    """Chrome trace of n_forwards forwards, each inside record_function('forward[i]')."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    model, tokens = make_model(cfg, fused=fused, device=device), make_tokens(cfg, device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with torch.inference_mode():
        model(tokens)  # warm-up outside the trace
        with profile(activities=acts) as prof:
            for i in range(n_forwards):
                with record_function(f"forward[{i}]"):
                    model(tokens)
            if device == "cuda":
                torch.cuda.synchronize()
    trace_path.parent.mkdir(parents=True, exist_ok=True)
    prof.export_chrome_trace(str(trace_path))
    return trace_path


def trace_and_summarise(files: LabFiles, cfg: TinyConfig, device: str, n_forwards: int, tag: str) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fused in (False, True):
            name = "fused" if fused else "small_ops"
            raw = profile_trace(cfg, fused, n_forwards, Path(tmp) / f"{name}.json", device)
            events = CT.load_events(raw)
            out[name] = {"raw_trace_bytes": raw.stat().st_size, **CT.analyse(events)}
            regs = CT.regions(events, "forward")
            small = CT.trim(events, regs[-1])
            path = files.results / f"{tag}_trace_{name}_one_forward.json"
            write_json_atomic(path, small)
            if path.stat().st_size > MAX_TRACE_BYTES:
                path.unlink()
                out[name]["committed_trace"] = None
            else:
                out[name]["committed_trace"] = files.rel(path)
                print(
                    f"wrote {files.rel(path)} ({path.stat().st_size / 1e3:.0f} kB, open in ui.perfetto.dev)"
                )
    return out


def run_cpu(files: LabFiles, args: argparse.Namespace) -> None:
    if getattr(args, "nsys_cpu", False):  # the CPU forwards under Nsight Systems instead
        nsys_cpu.run(files)
        return
    quick = args.quick
    import torch

    cfg = TinyConfig()
    repeats = 5 if quick else 60
    compile_ = not quick and shutil.which(os.environ.get("CXX", "g++")) is not None
    # One intra-op thread for everything here (tiny-op probe, forwards, traces; nsys_cpu does the same):
    # the per-op cost is then priced on the thread count the forwards ran on, and on a shared machine a
    # 2-thread op can wait for a descheduled worker, which would measure the neighbours.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        print("per-op overhead:")
        tiny = tiny_op_overhead(1024 if quick else 4096, 256, repeats)
        print(f"  {tiny['per_small_op_us']:.2f} us per tiny op, {tiny['ratio']:.0f}x the batched call")
        print("forward variants (interleaved):")
        fwd = time_forwards(cfg, forward_variants(cfg, compile_=compile_), repeats)
        traces = trace_and_summarise(files, cfg, "cpu", 3, "cpu")
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
    files.write(
        "cpu_launch_overhead",
        {
            "tiny_op_overhead": tiny,
            "forwards": fwd,
            "traces": traces,
            "torch_threads": used_threads,
        },
        config={
            "model": cfg.__dict__,
            "repeats": repeats,
            "warmup": WARMUP,
            "timing": "variants interleaved: each round times one forward of every variant, order rotating",
            "torch_compile": compile_,
            "profiler": "torch.profiler, CPU activity, 3 forwards after 1 warm-up",
        },
        benchmark_version=BENCHMARK_VERSION,
    )


def cuda_graph_vs_eager(cfg: TinyConfig, repeats: int) -> dict:
    """Capture one eager small-ops forward in a CUDA Graph; replay vs eager, CUDA events."""
    import torch

    model, tokens = make_model(cfg, fused=False, device="cuda"), make_tokens(cfg, "cuda")
    with torch.inference_mode():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                model(tokens)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = model(tokens)
        graph.replay()
        torch.cuda.synchronize()
        err = float((static_out - model(tokens)).abs().max())
        eager = time_cuda_ms(lambda: model(tokens), warmup=3, repeats=repeats, flush_l2=False)
        replay = time_cuda_ms(graph.replay, warmup=3, repeats=repeats, flush_l2=False)
        # Host-side cost too: how long the CPU spends issuing one forward.
        host_eager = time_repeats(lambda: (model(tokens), torch.cuda.synchronize()), repeats=repeats)
        host_graph = time_repeats(lambda: (graph.replay(), torch.cuda.synchronize()), repeats=repeats)
    strip = lambda t: {k: v for k, v in t.items() if not k.startswith("samples")}  # noqa: E731
    return {
        "eager_ms": strip(eager),
        "graph_replay_ms": strip(replay),
        "max_abs_diff": err,
        "eager_wall_s": strip(host_eager),
        "graph_wall_s": strip(host_graph),
        "speedup": eager["median"] / replay["median"],
    }


def nsys_capture(files: LabFiles, quick: bool) -> dict:
    """The GPU workload under nsys; kernel gaps inside each NVTX `forward[i]` range (the .nsys-rep is not kept)."""
    from analysis import nsys_sqlite
    from experiments.trace import nsys_run

    nsys = shutil.which("nsys")
    if not nsys:
        return {"skipped": "nsys not on PATH (it ships with the CUDA toolkit / Nsight Systems)"}
    with tempfile.TemporaryDirectory() as tmp:
        base, log = Path(tmp) / "b5", Path(tmp) / "nsys.log"
        cmd = [nsys, "profile", "--trace=cuda,nvtx,osrt", "--force-overwrite=true", "-o", str(base),
               sys.executable, "-m", "experiments.foundations.b5_launch_overhead_trace", "--nsys-workload"]
        ran = nsys_run.run_profiled(cmd, dict(os.environ), log, timeout_s=600)
        if ran["rc"] != 0:
            return {"skipped": f"nsys profile failed (rc={ran['rc']}): {log.read_text(errors='replace')[-300:]}"}
        try:
            sqlite = nsys_run.export_sqlite(nsys_run.import_report(base, log), log)
            nsys_run.check_nvtx(sqlite)
        except nsys_run.TraceError as exc:
            return {"skipped": str(exc)}
        ranges = nsys_sqlite.nvtx_ranges(sqlite)
        kernels = nsys_sqlite.kernels_with_launch(sqlite)
    return {"command": " ".join(cmd[:-3] + ["python -m ... --nsys-workload"]),
            **kernel_gaps_in_ranges(kernels, ranges, prefix="forward[")}


def kernel_gaps_in_ranges(kernels, ranges, *, prefix: str) -> dict:
    """Per NVTX range named `prefix...`: the kernels launched inside it (launch call within the range),
    gaps between consecutive ones, busy fraction of their span. Warm-up kernels outside stay out."""
    import numpy as np

    per_range = []
    for _, r in ranges[ranges["name"].str.startswith(prefix)].sort_values("ts_us").iterrows():
        launched = (kernels["launch_start_ns"] >= r["start_ns"]) & (kernels["launch_start_ns"] <= r["end_ns"])
        k = kernels[launched].sort_values("ts_us")
        if len(k) < 2:
            per_range.append({"range": r["name"], "kernels": int(len(k))})
            continue
        gaps = np.clip(k["ts_us"].to_numpy()[1:] - k["end_us"].to_numpy()[:-1], 0, None).tolist()
        span = float(k["end_us"].max() - k["ts_us"].min())
        per_range.append({"range": r["name"], "kernels": int(len(k)), "gaps_us": summarize(gaps),
                          "busy_fraction": float(k["dur_us"].sum()) / span if span > 0 else None})
    return {"ranges": per_range}


def nsys_workload() -> int:
    """What runs under nsys: warm-up, then NVTX-marked eager forwards."""
    import torch

    cfg = TinyConfig()
    model, tokens = make_model(cfg, fused=False, device="cuda"), make_tokens(cfg, "cuda")
    with torch.inference_mode():
        for _ in range(5):
            model(tokens)
        torch.cuda.synchronize()
        for i in range(5):
            with torch.cuda.nvtx.range(f"forward[{i}]"):
                model(tokens)
        torch.cuda.synchronize()
    return 0


def run_gpu(files: LabFiles, args: argparse.Namespace) -> bool:
    quick = args.quick
    reason = torch_cuda_skip_reason()
    if reason:
        lab.skip(reason, "b5 GPU half (CUDA kernels in the trace, CUDA Graph replay, nsys)")
        return False
    cfg = TinyConfig()
    repeats = 10 if quick else 50
    print("forward variants on GPU:")
    fwd = time_forwards(cfg, forward_variants(cfg, compile_=not quick, device="cuda"), repeats, device="cuda")
    graph = cuda_graph_vs_eager(cfg, repeats)
    print(
        f"  CUDA Graph replay {graph['graph_replay_ms']['median']:.3f} ms vs eager "
        f"{graph['eager_ms']['median']:.3f} ms"
    )
    traces = trace_and_summarise(files, cfg, "cuda", 3, "gpu")
    nsys = {"skipped": "--quick"} if quick else nsys_capture(files, quick)
    files.write(
        "gpu_launch_overhead",
        {"forwards": fwd, "cuda_graph": graph, "traces": traces, "nsys": nsys},
        config={"model": cfg.__dict__, "repeats": repeats},
        benchmark_version=BENCHMARK_VERSION,
    )
    return True


# ---------------------------------------------------------------- plots and README
def plot_trace_timeline(trace_path: Path, path: Path, source: str, title: str) -> Path:
    """Top-level ops (and kernels, when present) of one forward as bars: the white space is overhead."""
    events = CT.load_events(trace_path)
    reg = CT.regions(events, "forward")[-1]
    ops = CT.top_level(CT.within(events, reg, "cpu_op"))
    kernels = sorted((e for e in events if e.get("cat") == "kernel"), key=lambda e: e["ts"])
    lanes = [("CPU: top-level aten ops", ops)] + ([("GPU: kernels", kernels)] if kernels else [])
    fig, (a, b) = plt.subplots(
        2, 1, figsize=(12, 1.2 + 1.0 * len(lanes) + 2.6), gridspec_kw={"height_ratios": [len(lanes), 2.6]}
    )
    t0 = reg["ts"]
    for y, (name, evs) in enumerate(lanes):
        a.broken_barh(
            [((e["ts"] - t0) / 1e3, e["dur"] / 1e3) for e in evs],
            (y - 0.35, 0.7),
            facecolors="#4c72b0" if y == 0 else "#55a868",
        )
    a.set_yticks(range(len(lanes)), [n for n, _ in lanes], fontsize=8)
    a.set_xlabel("ms since the forward began")
    a.set_title(title, fontsize=10)
    gaps = CT.gaps_us(ops)
    b.hist(gaps, bins=40, color="#4c72b0", alpha=0.8, label="between CPU ops")
    if kernels:
        b.hist(CT.gaps_us(kernels), bins=40, color="#55a868", alpha=0.6, label="between GPU kernels")
    b.set_xlabel("gap between consecutive events (us)")
    b.set_ylabel("count")
    b.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, source=source)


def plot_forwards(doc: dict, path: Path, source: str) -> Path:
    fwd = doc["results"]["forwards"]
    names = list(fwd)
    med = [fwd[n]["forward_s"]["median"] * 1e3 for n in names]
    lo = [m - fwd[n]["forward_s"]["min"] * 1e3 for m, n in zip(med, names)]
    hi = [fwd[n]["forward_s"]["max"] * 1e3 - m for m, n in zip(med, names)]
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    ax.barh(names[::-1], med[::-1], xerr=[lo[::-1], hi[::-1]], capsize=3, color="#4c72b0")
    for i, n in enumerate(names[::-1]):
        ops = fwd[n]["top_level_ops"]
        ax.text(
            med[::-1][i],
            i,
            f"  {med[::-1][i]:.2f} ms" + (f", {ops} ops" if ops else ""),
            va="center",
            fontsize=8,
        )
    ax.set_xlabel("ms per forward (median, bars min..max)")
    ax.set_title(
        f"same weights, same maths ({doc['provenance']['machine']['gpu_model'] or 'CPU'})", fontsize=10
    )
    return save_figure(fig, path, source=source)


def _trace_rows(traces: dict) -> list[list]:
    rows = []
    for name, t in traces.items():
        for reg in t["regions"]:
            c = reg["cpu_ops"]
            row = [
                name,
                reg["region"],
                c["count"],
                c["span_us"],
                c["busy_fraction"],
                c["mean_duration_us"],
                lab.spread(c["gaps_us"]) if c["gaps_us"] else "n/a",
            ]
            if "gpu_kernels" in reg:
                k = reg["gpu_kernels"]
                row += [k["count"], k["busy_fraction"], lab.spread(k["gaps_us"]) if k["gaps_us"] else "n/a"]
            rows.append(row)
    return rows


def _nsys_gpu_lines(nsys: dict) -> str:
    if "ranges" not in nsys:
        return f"nsys: not captured ({nsys.get('skipped', 'no ranges')})."
    rows = [[r["range"], r["kernels"], r.get("busy_fraction") or "n/a",
             lab.spread(r["gaps_us"]) if r.get("gaps_us") else "n/a"] for r in nsys["ranges"]]
    return ("nsys (`" + nsys["command"] + "`), kernels launched inside each NVTX range:\n\n"
            + lab.md_table(["NVTX range", "kernels", "GPU busy fraction", "kernel gap us"], rows))


def render_nsys_cpu(files: LabFiles) -> str:
    """The nsys trace of the CPU forwards: timeline drawn from the export, per-path table."""
    doc = files.read("cpu_nsys_trace")
    if not doc:
        return ("nsys trace: not yet recorded; run `python -m experiments.foundations.b5_launch_overhead_trace "
                "--nsys-cpu` where nsys is installed (`make nsys`).")
    r = doc["results"]
    src = files.rel(files.result_path("cpu_nsys_trace"))
    nsys_cpu.plot_timeline(r["median_forward_ranges"], files.plot_path("cpu_nsys_timeline"), r["report"])
    rows = [[name, lab.spread(p["forward_us"], 1e-3), lab.spread(p["layer_us"], 1e-3),
             lab.spread(p["white_space_us"]), p["white_space_fraction"],
             lab.spread(p["gap_between_forwards_us"]) if p["gap_between_forwards_us"] else "n/a"]
            for name, p in r["paths"].items()]
    return "\n".join([
        "![nsys timeline of the median forward of each path](plots/cpu_nsys_timeline.png)", "",
        f"The picture is drawn from the SQLite export of `{r['report']}` (Nsight Systems {r['nsys_version']}, "
        f"{r['nvtx_ranges']} NVTX ranges; open the report in `nsys-ui` for the full timeline with OS-runtime rows).",
        "",
        lab.md_table(["path", "ms / forward median (min-max, n)", "ms / layer", "white space in a forward us",
                      "white space fraction", "gap between forwards us"], rows),
        "", "White space = time inside a `forward[i]` range that no `embed` / `layer[j]` / `head` range covers.",
        *(["", "![nsys-ui timeline](plots/cpu_nsys_ui_screenshot.png)", "",
           "The same report in `nsys-ui` itself (Nsight Systems 2022.4 under Xvfb with Mesa's software OpenGL, "
           "made by `python -m experiments.foundations.b5_launch_overhead_trace.nsys_ui_screenshot`), zoomed "
           "around the forwards (placed by approximate screen coordinates, so an edge may cut a block): the "
           "NVTX row holds the `forward[i]` ranges of one path after the other, each with its layer ranges "
           "beneath; the grey bar on the left is the end of start-up. The drawn picture above is one forward "
           "of each path, from the export."]
          if SCREENSHOT.exists() else []),
        "", lab.machine_line(doc) + f" Source: `{src}`.",
    ])


def render_answer(files: LabFiles) -> str | None:
    """The figures the answer argues from, computed from the result files (nothing typed in)."""
    import statistics

    doc = files.read("cpu_launch_overhead")
    if not doc:
        return None
    r = doc["results"]
    fwd, tiny = r["forwards"], r["tiny_op_overhead"]
    small, fused = fwd["many small ops (eager)"], fwd["fused ops (eager)"]
    paired = fused["saved_vs_small_ops_s"]  # per interleaved round: small ops minus fused
    saved_ms = paired["median"] * 1e3
    min_to_min_ms = (small["forward_s"]["min"] - fused["forward_s"]["min"]) * 1e3
    ops_saved = small["top_level_ops"] - fused["top_level_ops"]
    fixed_ms = ops_saved * tiny["per_small_op_us"] / 1e3
    # the probe is timed apart from the forwards: its fastest repeat bounds the per-op cost from below
    fastest_us = tiny["many_small_s"]["min"] / tiny["n_ops"] * 1e6
    fastest_ms = ops_saved * fastest_us / 1e3

    def med(name: str, key: str) -> float:
        return statistics.median(reg["cpu_ops"][key] for reg in r["traces"][name]["regions"])

    def white(name: str) -> float:
        return statistics.median(reg["cpu_ops"]["span_us"] - reg["cpu_ops"]["busy_us"]
                                 for reg in r["traces"][name]["regions"])

    busy = [reg["cpu_ops"]["busy_fraction"] for t in r["traces"].values() for reg in t["regions"]]
    gaps = [reg["cpu_ops"]["gaps_us"]["median"] for t in r["traces"].values() for reg in t["regions"]]
    lines = [
        f"- Fusing saves {lab.fmt(saved_ms)} ms per forward (median of {paired['n']} paired differences, each from "
        f"one interleaved round; quartiles {lab.fmt(paired['p25'] * 1e3)}-{lab.fmt(paired['p75'] * 1e3)} ms; "
        f"fastest small-ops minus fastest fused forward: {lab.fmt(min_to_min_ms)} ms) and removes {ops_saved} "
        f"top-level ops. At the tiny-op probe's fixed cost of {lab.fmt(tiny['per_small_op_us'])} us per op (same "
        f"single thread as the forwards) that is {lab.fmt(fixed_ms)} ms: {lab.fmt(100 * fixed_ms / saved_ms)}% of "
        f"the paired saving, {lab.fmt(100 * fixed_ms / min_to_min_ms)}% of the min-to-min one; priced at the probe's "
        f"fastest repeat ({lab.fmt(fastest_us)} us per op) it is {lab.fmt(fastest_ms)} ms, "
        f"{lab.fmt(100 * fastest_ms / saved_ms)}% of the paired saving.",
        f"- In the torch-profiler trace the CPU is busy {lab.fmt(min(busy))}-{lab.fmt(max(busy))} of every forward "
        f"and the median gap between ops is {lab.fmt(min(gaps))}-{lab.fmt(max(gaps))} us. White space per forward "
        f"(span minus time inside ops, median of the traced forwards): small ops {lab.fmt(white('small_ops') / 1e3)} "
        f"ms, fused {lab.fmt(white('fused') / 1e3)} ms; time inside ops: small ops "
        f"{lab.fmt(med('small_ops', 'busy_us') / 1e3)} ms, fused {lab.fmt(med('fused', 'busy_us') / 1e3)} ms.",
    ]
    nsys = files.read("cpu_nsys_trace")
    if nsys:
        p = nsys["results"]["paths"]
        s_, f_ = p["small_ops"], p["fused"]
        lines.append(
            f"- In the nsys trace (one intra-op thread) a forward takes {lab.fmt(s_['forward_us']['median'] / 1e3)} ms "
            f"op by op and {lab.fmt(f_['forward_us']['median'] / 1e3)} ms fused, a layer "
            f"{lab.fmt(s_['layer_us']['median'] / 1e3)} ms and {lab.fmt(f_['layer_us']['median'] / 1e3)} ms (medians). "
            f"The layer ranges leave {lab.fmt(100 * s_['white_space_fraction'])}% and "
            f"{lab.fmt(100 * f_['white_space_fraction'])}% of a forward uncovered ({lab.fmt(s_['white_space_us']['median'])} "
            f"vs {lab.fmt(f_['white_space_us']['median'])} us): the time fusion saves is inside the layers.")
    return "\n".join(lines)


def render(files: LabFiles) -> dict[str, str]:
    blocks = {"nsys_cpu": render_nsys_cpu(files)}
    answer = render_answer(files)
    if answer:
        blocks["answer"] = answer
    for half, stem, tag in (("cpu", "cpu_launch_overhead", "cpu"), ("gpu", "gpu_launch_overhead", "gpu")):
        doc = files.read(stem)
        if not doc:
            if half == "gpu":
                blocks["gpu"] = lab.gpu_not_measured(files.module)
            continue
        src = files.rel(files.result_path(stem))
        r = doc["results"]
        plot_forwards(doc, files.plot_path(f"{tag}_time_per_forward"), src)
        lines = [f"![time per forward](plots/{tag}_time_per_forward.png)", ""]
        for name in ("small_ops", "fused"):
            trace = files.results / f"{tag}_trace_{name}_one_forward.json"
            if trace.exists():
                plot_trace_timeline(
                    trace,
                    files.plot_path(f"{tag}_trace_{name}"),
                    files.rel(trace),
                    f"one forward, {name.replace('_', ' ')}: "
                    f"{'CPU ops and GPU kernels' if tag == 'gpu' else 'CPU ops'}",
                )
                lines += [f"![trace of one forward, {name}](plots/{tag}_trace_{name}.png)", ""]
        lines.append(
            lab.md_table(
                [
                    "variant",
                    "ms / forward median (min-max, n)",
                    "top-level ops",
                    "first call s",
                    "max abs diff vs small ops",
                ],
                [
                    [
                        n,
                        lab.spread(v["forward_s"], 1e3),
                        v["top_level_ops"] or "n/a",
                        v["first_call_s"],
                        f"{v['max_abs_diff_vs_small_ops']:.1e}",
                    ]
                    for n, v in r["forwards"].items()
                ],
            )
        )
        headers = [
            "trace",
            "region",
            "top-level ops",
            "span us",
            "CPU busy fraction",
            "mean op us",
            "gap us median (min-max, n)",
        ]
        if tag == "gpu":
            headers += ["kernels", "GPU busy fraction", "kernel gap us"]
        lines += ["", lab.md_table(headers, _trace_rows(r["traces"]))]
        if "tiny_op_overhead" in r:
            t = r["tiny_op_overhead"]
            lines += [
                "",
                f"Tiny-op analogue (one intra-op thread): {t['n_ops']} `mul_` calls on "
                f"{t['elements_per_op']}-element tensors took {lab.spread(t['many_small_s'], 1e3)} ms, "
                f"one batched call {lab.spread(t['one_batched_s'], 1e3)} ms: "
                f"{lab.fmt(t['per_small_op_us'])} us per op, {lab.fmt(t['ratio'])}x.",
            ]
        if "cuda_graph" in r:
            g = r["cuda_graph"]
            lines += [
                "",
                f"CUDA Graph replay {lab.spread(g['graph_replay_ms'])} ms vs eager "
                f"{lab.spread(g['eager_ms'])} ms per forward ({lab.fmt(g['speedup'])}x); "
                f"max abs diff {g['max_abs_diff']:.1e}.",
            ]
        if "nsys" in r:
            lines += ["", _nsys_gpu_lines(r["nsys"])]
        lines += [
            "",
            lab.machine_line(doc) + f" Source: `{src}`; one-forward traces in `{files.rel(files.results)}/`"
            " (open in ui.perfetto.dev or chrome://tracing).",
        ]
        blocks[half] = "\n".join(lines)
    return blocks


GPU_HELP = "run the GPU half instead (CUDA kernels in the trace, CUDA Graph, nsys if present); skips with a reason without CUDA"


def main(argv: list[str] | None = None) -> int:
    return run_lab(argv, doc=__doc__, lab_dir=LAB_DIR, run_cpu=run_cpu, run_gpu=run_gpu, render=render,
                   gpu_help=GPU_HELP, extra_packages=lab.EXTRA_PACKAGES, add_arguments=_add_arguments,
                   early_exit=_early_exit)


def _add_arguments(p) -> None:
    p.add_argument("--nsys-workload", action="store_true", help="internal: the GPU workload nsys profiles")
    p.add_argument("--nsys-cpu", action="store_true",
                   help="record the CPU forwards under Nsight Systems (NVTX per forward and layer) and render")
    p.add_argument(nsys_cpu.WORKLOAD_FLAG, action="store_true", help="internal: the CPU workload nsys profiles")


def _early_exit(args) -> int | None:
    if args.nsys_workload:
        return nsys_workload()
    if args.nsys_cpu_workload:
        return nsys_cpu.workload()
    return None


if __name__ == "__main__":
    raise SystemExit(main())
