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

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments.common.plots import plt, save_figure
from experiments.common.results import write_json_atomic
from experiments.common.stats import summarize
from experiments.common.timing import time_repeats
from experiments.foundations.b5_launch_overhead_trace import chrome_trace as CT
from experiments.foundations.b5_launch_overhead_trace.tiny_model import TinyConfig, make_model, make_tokens
from experiments.foundations.b_common import lab
from experiments.foundations.b_common.cuda_env import time_cuda_ms, torch_cuda_skip_reason

LAB_DIR = Path(__file__).resolve().parent
BENCHMARK_VERSION = 1
MAX_TRACE_BYTES = 1_000_000
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

    # One intra-op thread: on a shared machine a 2-thread parallel op can wait for a
    # descheduled worker, which would measure the neighbours, not the per-op cost.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t_many = time_repeats(many, repeats=repeats, warmup=1)
        t_one = time_repeats(lambda: big.mul_(1.0001), repeats=repeats, warmup=1)
    finally:
        torch.set_num_threads(threads)
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
    import torch

    tokens = make_tokens(cfg, device)
    out = {}
    with torch.inference_mode():
        ref = variants["many small ops (eager)"](tokens)
        for name, model in variants.items():
            t0 = time.perf_counter()
            y = model(tokens)  # first call: compiles when torch.compile'd
            first_s = time.perf_counter() - t0
            err = float((y - ref).abs().max())
            if device == "cuda":
                t = time_cuda_ms(lambda: model(tokens), warmup=WARMUP, repeats=repeats, flush_l2=False)
                per = {
                    k: v / 1e3 for k, v in t.items() if k in ("median", "min", "max", "mean", "p25", "p75")
                }
                per.update(n=t["n"])
            else:
                per = time_repeats(lambda: model(tokens), repeats=repeats, warmup=WARMUP)
            out[name] = {
                "forward_s": per,
                "first_call_s": first_s,
                "max_abs_diff_vs_small_ops": err,
                "top_level_ops": count_ops(model, tokens) if "compile" not in name else None,
            }
            print(f"  {name:<32} {per['median'] * 1e3:8.3f} ms/forward (first call {first_s:.2f} s)")
    return out


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


def trace_and_summarise(files: lab.LabFiles, cfg: TinyConfig, device: str, n_forwards: int, tag: str) -> dict:
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


def run_cpu(files: lab.LabFiles, quick: bool) -> None:
    import torch

    cfg = TinyConfig()
    repeats = 5 if quick else 30
    compile_ = not quick and shutil.which(os.environ.get("CXX", "g++")) is not None
    print("per-op overhead:")
    tiny = tiny_op_overhead(1024 if quick else 4096, 256, repeats)
    print(f"  {tiny['per_small_op_us']:.2f} us per tiny op, {tiny['ratio']:.0f}x the batched call")
    print("forward variants:")
    fwd = time_forwards(cfg, forward_variants(cfg, compile_=compile_), repeats)
    traces = trace_and_summarise(files, cfg, "cpu", 3, "cpu")
    files.write(
        "cpu_launch_overhead",
        {
            "tiny_op_overhead": tiny,
            "forwards": fwd,
            "traces": traces,
            "torch_threads": torch.get_num_threads(),
        },
        config={
            "model": cfg.__dict__,
            "repeats": repeats,
            "warmup": WARMUP,
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


def nsys_capture(files: lab.LabFiles, quick: bool) -> dict:
    """Run the GPU workload under nsys and keep only the kernel summary (the .nsys-rep is not committed)."""
    nsys = shutil.which("nsys")
    if not nsys:
        return {"skipped": "nsys not on PATH (it ships with the CUDA toolkit / Nsight Systems)"}
    with tempfile.TemporaryDirectory() as tmp:
        rep = Path(tmp) / "b5"
        cmd = [
            nsys,
            "profile",
            "--trace=cuda,nvtx,osrt",
            "--force-overwrite=true",
            "-o",
            str(rep),
            sys.executable,
            "-m",
            "experiments.foundations.b5_launch_overhead_trace",
            "--nsys-workload",
        ]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            return {"skipped": f"nsys profile failed: {run.stderr.strip().splitlines()[-1:]}"}
        stats = subprocess.run(
            [
                nsys,
                "stats",
                "--report",
                "cuda_gpu_trace",
                "--format",
                "csv",
                "--output",
                "-",
                f"{rep}.nsys-rep",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        return {
            "command": " ".join(cmd[:-3] + ["python -m ... --nsys-workload"]),
            **kernel_gaps_from_nsys_csv(stats.stdout),
        }


def kernel_gaps_from_nsys_csv(text: str) -> dict:
    """Gaps between consecutive GPU kernels from `nsys stats --report cuda_gpu_trace --format csv`."""
    import csv
    import io

    lines = text[text.find("Start (ns)") :] if "Start (ns)" in text else ""
    rows = [r for r in csv.DictReader(io.StringIO(lines)) if r.get("Start (ns)")]
    kernels = sorted(
        (
            (float(r["Start (ns)"]), float(r["Duration (ns)"]))
            for r in rows
            if "memcpy" not in r.get("Name", "").lower() and "memset" not in r.get("Name", "").lower()
        )
    )
    if len(kernels) < 2:
        return {"kernels": len(kernels)}
    gaps = [max(0.0, b[0] - (a[0] + a[1])) / 1e3 for a, b in zip(kernels, kernels[1:])]
    busy = sum(d for _, d in kernels)
    span = kernels[-1][0] + kernels[-1][1] - kernels[0][0]
    return {"kernels": len(kernels), "gaps_us": summarize(gaps), "busy_fraction": busy / span}


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


def run_gpu(files: lab.LabFiles, quick: bool) -> bool:
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


def render(files: lab.LabFiles) -> dict[str, str]:
    blocks = {}
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
            lines += ["", f"nsys: {r['nsys']}"]
        lines += [
            "",
            lab.machine_line(doc) + f" Source: `{src}`; one-forward traces in `{files.rel(files.results)}/`"
            " (open in ui.perfetto.dev or chrome://tracing).",
        ]
        blocks[half] = "\n".join(lines)
    return blocks


def main(argv: list[str] | None = None) -> int:
    return lab.lab_main(
        argv,
        doc=__doc__,
        lab_dir=LAB_DIR,
        run_cpu=run_cpu,
        run_gpu=run_gpu,
        render=render,
        gpu_help="run the GPU half instead (CUDA kernels in the trace, CUDA Graph, nsys if present); "
        "skips with a reason without CUDA",
        add_arguments=lambda p: p.add_argument(
            "--nsys-workload", action="store_true", help="internal: the workload nsys profiles"
        ),
        early_exit=lambda args: nsys_workload() if args.nsys_workload else None,
    )


if __name__ == "__main__":
    raise SystemExit(main())
