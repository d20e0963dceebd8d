"""b3: contiguous, strided and random access: sectors per warp, CPU analogues, GPU GB/s, the KV cache.

    python -m experiments.foundations.b3_memory_bandwidth_coalescing [--quick] [--gpu] [--render-only]

CPU half: the kernels checked under numba's CUDA simulator; the warp/sector
model's table; the same physics on this CPU (cache lines instead of sectors):
copy peak, bandwidth vs stride, gather vs contiguous, paged-KV rows random vs
sequential; and the KV-cache arithmetic for Llama-3-8B and Qwen2.5-0.5B against
the H100 ridge point. GPU half (--gpu): the same kernels on the device, CUDA
events, warm-up, repeats, L2 flushed, achieved GB/s against the device's peak.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from experiments.common.lab import LabFiles, run_lab
from experiments.common.plots import plt, save_figure
from experiments.common.stats import summarize
from experiments.foundations.b3_memory_bandwidth_coalescing import kernels as K
from experiments.foundations.b3_memory_bandwidth_coalescing import kv_cache as KV
from experiments.foundations.b_common import lab
from experiments.foundations.b_common.cuda_env import (
    gpu_device_info,
    numba_backend_name,
    numba_cuda_skip_reason,
    time_cuda_ms,
)
from experiments.foundations.b_common.specs import H100_SXM, MiB, ridge_point, spec_for
from experiments.foundations.b_common.warp_model import mean_request

LAB_DIR = Path(__file__).resolve().parent
BENCHMARK_VERSION = 1
CACHE_LINE = 64  # bytes, x86


# ---------------------------------------------------------------- model and simulator
def sector_table() -> list[dict]:
    """Sectors per warp request for the patterns the kernels use (fp32 unless said)."""
    cases = [
        ("fp32 contiguous", dict(pattern="contiguous"), 4),
        ("fp32 contiguous, offset by one element", dict(pattern="contiguous", offset=1), 4),
        ("fp32 stride 2", dict(pattern="strided", stride=2), 4),
        ("fp32 stride 4", dict(pattern="strided", stride=4), 4),
        ("fp32 stride 8 (32 B)", dict(pattern="strided", stride=8), 4),
        ("fp32 stride 32 (128 B)", dict(pattern="strided", stride=32), 4),
        ("fp32 random gather (1 GiB array)", dict(pattern="random", n_elements=2**28), 4),
        ("fp16 contiguous", dict(pattern="contiguous"), 2),
        ("fp64 contiguous", dict(pattern="contiguous"), 8),
    ]
    return [{"case": name, "elem_bytes": eb, **mean_request(elem_bytes=eb, **kw)} for name, kw, eb in cases]


def simulator_checks(quick: bool) -> list[dict]:
    """Every kernel on a small grid against its NumPy spec (simulator on CPU, real GPU if present)."""
    rng = np.random.default_rng(0)
    n = 256 if quick else 1024
    rows = []
    src = rng.random(n * 8 + 1, dtype=np.float32)
    for stride, offset in ((1, 0), (1, 1), (2, 0), (8, 0)):
        dst = np.zeros(n, np.float32)
        d_dst = K.cuda.to_device(dst)
        K.launch_1d(K.copy_strided, n, K.cuda.to_device(src), d_dst, stride, offset)
        got = d_dst.copy_to_host()
        rows.append(
            {
                "kernel": f"copy_strided(stride={stride}, offset={offset})",
                "threads": n,
                "ok": bool(np.array_equal(got, K.spec_copy_strided(src, n, stride, offset))),
            }
        )
    idx = rng.integers(0, src.size, n).astype(np.int32)
    d_dst = K.cuda.to_device(np.zeros(n, np.float32))
    K.launch_1d(K.gather, n, K.cuda.to_device(src), K.cuda.to_device(idx), d_dst)
    rows.append(
        {
            "kernel": "gather (random idx)",
            "threads": n,
            "ok": bool(np.array_equal(d_dst.copy_to_host(), K.spec_gather(src, idx))),
        }
    )
    pool = rng.random((64, 32), dtype=np.float32)
    table = rng.permutation(64)[: n // 32].astype(np.int32)
    d_dst = K.cuda.to_device(np.zeros((table.size, 32), np.float32))
    K.launch_rows((table.size, 32), K.cuda.to_device(pool), K.cuda.to_device(table), d_dst)
    rows.append(
        {
            "kernel": "gather_rows (paged block table)",
            "threads": table.size * 32,
            "ok": bool(np.array_equal(d_dst.copy_to_host(), K.spec_gather_rows(pool, table))),
        }
    )
    for r in rows:
        r["backend"] = numba_backend_name()
    return rows


# ---------------------------------------------------------------- CPU analogues
def _time(fn, repeats: int) -> list[float]:
    fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def gbps(nbytes: float, seconds: list[float]) -> dict:
    return summarize([nbytes / s / 1e9 for s in seconds])


def measure_copy_peak(nbytes: int, repeats: int) -> dict:
    """np.copyto of a large array: read + write bytes per second (STREAM 'copy' convention)."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    return {"bytes": nbytes, "GBps": gbps(2 * nbytes, _time(lambda: np.copyto(dst, src), repeats))}


def measure_stride_sweep(nbytes: int, strides: list[int], repeats: int) -> list[dict]:
    """np.copyto(out, x[::s]): useful GB/s (elements read) and cache-line GB/s (lines moved)."""
    x = np.ones(nbytes // 4, np.float32)
    rows = []
    for s in strides:
        out = np.empty(x[::s].size, np.float32)
        times = _time(lambda: np.copyto(out, x[::s]), repeats)
        useful = out.nbytes
        lines_bytes = (
            min(nbytes, out.size * max(CACHE_LINE, 4 * s)) if 4 * s <= CACHE_LINE else out.size * CACHE_LINE
        )
        rows.append(
            {
                "stride_elements": s,
                "stride_bytes": 4 * s,
                "useful_GBps": gbps(useful, times),
                "cache_line_GBps": gbps(lines_bytes, times),
            }
        )
    return rows


def measure_gather(nbytes: int, n_idx: int, repeats: int, seed: int = 0) -> dict:
    """np.take and torch.index_select with contiguous vs random indices; GB/s of elements fetched."""
    import torch

    rng = np.random.default_rng(seed)
    x = np.ones(nbytes // 4, np.float32)
    start = int(rng.integers(0, x.size - n_idx))
    idx = {
        "contiguous": np.arange(start, start + n_idx, dtype=np.int64),
        "random": rng.integers(0, x.size, n_idx, dtype=np.int64),
    }
    out = np.empty(n_idx, np.float32)
    tx = torch.from_numpy(x)
    res = {}
    for kind, ix in idx.items():
        tix = torch.from_numpy(ix)
        tout = torch.empty(n_idx)
        res[f"np.take {kind}"] = gbps(4 * n_idx, _time(lambda: np.take(x, ix, out=out), repeats))
        res[f"torch.index_select {kind}"] = gbps(
            4 * n_idx, _time(lambda: torch.index_select(tx, 0, tix, out=tout), repeats)
        )
    return res


def measure_paged_rows(
    nbytes: int, row_bytes_list: list[int], read_bytes: int, repeats: int, seed: int = 0
) -> list[dict]:
    """A KV pool of rows; read read_bytes worth of rows in sequential vs random (block-table) order."""
    rng = np.random.default_rng(seed)
    rows = []
    for rb in row_bytes_list:
        n_rows = nbytes // rb
        pool = np.ones((n_rows, rb // 4), np.float32)
        m = read_bytes // rb
        start = int(rng.integers(0, n_rows - m))
        order = {"sequential": np.arange(start, start + m), "random": rng.choice(n_rows, m, replace=False)}
        out = np.empty((m, rb // 4), np.float32)
        r = {"row_bytes": rb, "rows_read": m}
        for kind, ix in order.items():
            r[f"{kind}_GBps"] = gbps(m * rb, _time(lambda: np.take(pool, ix, axis=0, out=out), repeats))
        r["random_over_sequential"] = r["random_GBps"]["median"] / r["sequential_GBps"]["median"]
        rows.append(r)
    return rows


# ---------------------------------------------------------------- KV-cache arithmetic
def kv_analysis(spec: dict) -> dict:
    ridge = ridge_point(spec["bf16_dense_tflops"], spec["hbm_bandwidth_GBps"])
    out = {
        "gpu_spec": {k: spec[k] for k in ("name", "bf16_dense_tflops", "hbm_bandwidth_GBps")},
        "ridge_flop_per_byte": ridge,
        "models": {},
    }
    for name, cfg in KV.MODELS.items():
        steps = []
        for batch in (1, 8, 64):
            for context in (512, 4096, 32768):
                st = KV.decode_step(cfg, batch=batch, context=context)
                st.update(
                    KV.step_time_bounds(
                        st, tflops=spec["bf16_dense_tflops"], bandwidth_GBps=spec["hbm_bandwidth_GBps"]
                    )
                )
                st["fits_in_hbm"] = (
                    st["weight_bytes"] + st["kv_cache_bytes_resident"] < spec["total_memory_bytes"]
                )
                steps.append(st)
        out["models"][name] = {
            "config": cfg,
            "head_dim": KV.head_dim(cfg),
            "matmul_params": KV.matmul_params(cfg),
            "kv_bytes_per_context_token": KV.kv_bytes_per_token(cfg),
            "attention_flops_per_kv_byte": KV.attention_flops_per_token(cfg, 1) / KV.kv_bytes_per_token(cfg),
            "steps": steps,
        }
    return out


# ---------------------------------------------------------------- halves
def run_cpu(files: LabFiles, args: argparse.Namespace) -> None:
    quick = args.quick
    big = (64 if quick else 256) * MiB
    repeats = 3 if quick else 7
    print("simulator checks ...")
    checks = simulator_checks(quick)
    print("copy peak ...")
    peak = measure_copy_peak(big, repeats)
    print("stride sweep ...")
    strides = measure_stride_sweep(big, [1, 2, 4, 8, 16, 32, 64], repeats)
    print("gather ...")
    gath = measure_gather(big, (2 if quick else 8) * 2**20, repeats)
    print("paged rows ...")
    paged = measure_paged_rows(big, [64, 256, 1024, 4096, 16384], (8 if quick else 32) * MiB, repeats)
    files.write(
        "cpu_access_patterns",
        {
            "simulator_checks": checks,
            "sector_model": sector_table(),
            "copy_peak": peak,
            "stride_sweep": strides,
            "gather": gath,
            "paged_rows": paged,
        },
        config={
            "array_bytes": big,
            "repeats": repeats,
            "warmup": 1,
            "dtype": "float32",
            "gather_indices": (2 if quick else 8) * 2**20,
            "paged_read_bytes": (8 if quick else 32) * MiB,
        },
        benchmark_version=BENCHMARK_VERSION,
    )
    files.write(
        "kv_cache_arithmetic",
        kv_analysis(H100_SXM),
        config={"dtype_bytes": 2, "note": "analytic: published configs and spec-sheet peaks, not measured"},
        benchmark_version=BENCHMARK_VERSION,
    )


def run_gpu(files: LabFiles, args: argparse.Namespace) -> bool:
    quick = args.quick
    reason = numba_cuda_skip_reason()
    if reason:
        lab.skip(reason, "b3 GPU half (achieved GB/s per access pattern)")
        return False
    import torch

    cuda = K.cuda
    stream = cuda.external_stream(torch.cuda.current_stream().cuda_stream)
    info = gpu_device_info()
    peak_spec = spec_for(info["name"])["hbm_bandwidth_GBps"]
    peak = info.get("theoretical_bandwidth_GBps", peak_spec)
    repeats = 5 if quick else 30
    src_elems = 2**26 if quick else 2**29  # 256 MiB / 2 GiB of fp32
    src = torch.rand(src_elems, device="cuda")
    d_src = cuda.as_cuda_array(src)

    def timed(fn):
        return time_cuda_ms(fn, warmup=3, repeats=repeats, flush_l2=True)

    # Reference: torch's own device-to-device copy (read + write).
    dst_full = torch.empty_like(src)
    t = timed(lambda: dst_full.copy_(src))
    torch_copy = {
        "bytes_moved": 2 * src.numel() * 4,
        "time_ms": t,
        "GBps": summarize([2 * src.numel() * 4 / (ms * 1e-3) / 1e9 for ms in t["samples_ms"]]),
    }
    strided = []
    for stride in (1, 2, 4, 8, 16, 32):
        n = src_elems // stride - 1
        dst = torch.empty(n, device="cuda")
        d_dst = cuda.as_cuda_array(dst)
        t = timed(lambda: K.launch_1d(K.copy_strided, n, d_src, d_dst, stride, 0, stream=stream))
        assert torch.equal(dst[:1024].cpu(), src[: 1024 * stride : stride].cpu()), "strided copy mismatch"
        model = mean_request("strided", stride=stride)
        useful = 2 * n * 4  # read + write of useful elements
        moved = (
            n * 4 + n / 32 * model["moved_bytes"]
        )  # writes coalesced; reads as many sectors as the model says
        strided.append(
            {
                "stride_elements": stride,
                "time_ms": t,
                "model": model,
                "useful_GBps": summarize([useful / (ms * 1e-3) / 1e9 for ms in t["samples_ms"]]),
                "sector_GBps": summarize([moved / (ms * 1e-3) / 1e9 for ms in t["samples_ms"]]),
            }
        )
    n = src_elems // 4
    gathers = {}
    for kind in ("contiguous", "random"):
        idx = (
            torch.arange(n, device="cuda", dtype=torch.int32)
            if kind == "contiguous"
            else torch.randint(0, src_elems, (n,), device="cuda", dtype=torch.int32)
        )
        dst = torch.empty(n, device="cuda")
        d_idx, d_dst = cuda.as_cuda_array(idx), cuda.as_cuda_array(dst)
        t = timed(lambda: K.launch_1d(K.gather, n, d_src, d_idx, d_dst, stream=stream))
        assert torch.equal(dst[:1024], src[idx[:1024].long()]), "gather mismatch"
        useful = n * 4 * 3  # idx read, element read, element write
        gathers[kind] = {
            "time_ms": t,
            "useful_GBps": summarize([useful / (ms * 1e-3) / 1e9 for ms in t["samples_ms"]]),
        }
    paged = []
    pool_bytes = src_elems * 4
    for row_bytes in (64, 256, 1024, 4096, 16384):
        pool = src.view(-1, row_bytes // 4)
        m = pool.shape[0] // 4
        for kind in ("sequential", "random"):
            rows = (
                torch.arange(m, device="cuda", dtype=torch.int32)
                if kind == "sequential"
                else torch.randperm(pool.shape[0], device="cuda")[:m].to(torch.int32)
            )
            dst = torch.empty(m, row_bytes // 4, device="cuda")
            # Device-array views are host work: made once here, outside the window the CUDA events time.
            d_pool, d_rows, d_dst = cuda.as_cuda_array(pool), cuda.as_cuda_array(rows), cuda.as_cuda_array(dst)
            t = timed(lambda: K.launch_rows(tuple(dst.shape), d_pool, d_rows, d_dst, stream=stream))
            assert torch.equal(dst[:8], pool[rows[:8].long()]), "gather_rows mismatch"
            paged.append(
                {
                    "row_bytes": row_bytes,
                    "order": kind,
                    "time_ms": t,
                    "GBps": summarize([2 * m * row_bytes / (ms * 1e-3) / 1e9 for ms in t["samples_ms"]]),
                }
            )
    files.write(
        "gpu_access_patterns",
        {
            "device": info,
            "peak_GBps_theoretical": peak,
            "peak_source": "2 x memory clock x bus width (device attributes)"
            if "theoretical_bandwidth_GBps" in info
            else "spec sheet",
            "torch_copy": torch_copy,
            "strided": strided,
            "gather": gathers,
            "paged_rows": paged,
            "kv_cache_arithmetic_at_measured_peak": kv_analysis(
                {**spec_for(info["name"]), "hbm_bandwidth_GBps": torch_copy["GBps"]["median"]}
            ),
        },
        config={
            "src_bytes": pool_bytes,
            "repeats": repeats,
            "warmup": 3,
            "l2_flushed": True,
            "timing": "CUDA events around one launch",
        },
        benchmark_version=BENCHMARK_VERSION,
    )
    return True


# ---------------------------------------------------------------- plots and README
def plot_cpu(doc: dict, path: Path, source: str) -> Path:
    r = doc["results"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    a = axes[0]
    s = [x["stride_bytes"] for x in r["stride_sweep"]]
    for key, label in (("useful_GBps", "useful bytes"), ("cache_line_GBps", "cache-line bytes moved")):
        med = [x[key]["median"] for x in r["stride_sweep"]]
        a.errorbar(
            s,
            med,
            yerr=[
                [m - x[key]["min"] for m, x in zip(med, r["stride_sweep"])],
                [x[key]["max"] - m for m, x in zip(med, r["stride_sweep"])],
            ],
            marker="o",
            capsize=3,
            label=label,
        )
    a.axhline(r["copy_peak"]["GBps"]["median"], color="grey", ls="--", lw=0.8, label="copy peak (read+write)")
    a.axvline(CACHE_LINE, color="grey", ls=":", lw=0.8)
    a.set_xscale("log", base=2)
    a.set_xlabel("stride (bytes)")
    a.set_ylabel("GB/s (median, bars min..max)")
    a.set_title("np.copyto(out, x[::s])", fontsize=10)
    a.legend(fontsize=7)
    b = axes[1]
    names = list(r["gather"])
    b.bar(
        range(len(names)),
        [r["gather"][k]["median"] for k in names],
        yerr=[
            [r["gather"][k]["median"] - r["gather"][k]["min"] for k in names],
            [r["gather"][k]["max"] - r["gather"][k]["median"] for k in names],
        ],
        capsize=3,
        color=["#4c72b0" if "contig" in k else "#dd8452" for k in names],
    )
    b.set_xticks(range(len(names)), [k.replace(" ", "\n", 1) for k in names], fontsize=7)
    b.set_ylabel("GB/s of elements fetched")
    b.set_title("gather: contiguous vs random indices", fontsize=10)
    c = axes[2]
    rb = [x["row_bytes"] for x in r["paged_rows"]]
    for kind in ("sequential", "random"):
        c.plot(rb, [x[f"{kind}_GBps"]["median"] for x in r["paged_rows"]], "o-", label=f"{kind} rows")
    c.set_xscale("log", base=2)
    c.set_xlabel("row (block) size, bytes")
    c.set_ylabel("GB/s")
    c.set_title("paged-KV analogue: rows via a block table", fontsize=10)
    c.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, source=source)


def plot_roofline(doc: dict, path: Path, source: str) -> Path:
    r = doc["results"]
    spec = r["gpu_spec"]
    peak_flops, bw = spec["bf16_dense_tflops"] * 1e12, spec["hbm_bandwidth_GBps"] * 1e9
    ai = np.logspace(-1, 4, 200)
    fig, ax = plt.subplots(figsize=(8, 4.8))
    ax.plot(ai, np.minimum(peak_flops, ai * bw) / 1e12, "k-", lw=1.2, label=f"roofline, {spec['name']}")
    ax.axvline(r["ridge_flop_per_byte"], color="grey", ls=":", lw=0.8)
    ax.text(
        r["ridge_flop_per_byte"],
        peak_flops / 1e12 * 0.4,
        f" ridge {r['ridge_flop_per_byte']:.0f} FLOP/B",
        fontsize=8,
    )
    markers = iter("os^vD<>")
    for name, m in r["models"].items():
        mk = next(markers)
        x = m["attention_flops_per_kv_byte"]
        ax.plot([x], [min(peak_flops, x * bw) / 1e12], mk, ms=8, label=f"{name}: decode attention over KV")
        for st in m["steps"]:
            if st["context"] == 4096:
                x = st["intensity_whole_step"]
                ax.plot([x], [min(peak_flops, x * bw) / 1e12], mk, ms=5, mfc="none")
                ax.annotate(
                    f"B={st['batch']}",
                    (x, min(peak_flops, x * bw) / 1e12),
                    fontsize=6,
                    xytext=(3, -8),
                    textcoords="offset points",
                )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per byte from HBM)")
    ax.set_ylabel("attainable TFLOP/s (bf16, dense)")
    ax.set_title("decode: hollow = whole step at context 4096, batch B", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path, source=source)


def plot_gpu(doc: dict, path: Path, source: str) -> Path:
    r = doc["results"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.2))
    s = [x["stride_elements"] for x in r["strided"]]
    a.plot(s, [x["useful_GBps"]["median"] for x in r["strided"]], "o-", label="useful bytes")
    a.plot(s, [x["sector_GBps"]["median"] for x in r["strided"]], "s-", label="sector bytes (model)")
    a.axhline(r["peak_GBps_theoretical"], color="k", ls="--", lw=0.8, label="theoretical peak")
    a.axhline(r["torch_copy"]["GBps"]["median"], color="grey", ls=":", lw=0.8, label="torch D2D copy")
    a.set_xscale("log", base=2)
    a.set_xlabel("stride (fp32 elements)")
    a.set_ylabel("GB/s (median)")
    a.legend(fontsize=7)
    a.set_title(f"{r['device']['name']}: strided copy", fontsize=10)
    for kind in ("sequential", "random"):
        rows = [x for x in r["paged_rows"] if x["order"] == kind]
        b.plot(
            [x["row_bytes"] for x in rows], [x["GBps"]["median"] for x in rows], "o-", label=f"{kind} rows"
        )
    b.set_xscale("log", base=2)
    b.set_xlabel("row (block) size, bytes")
    b.set_ylabel("GB/s (read + write)")
    b.legend(fontsize=8)
    b.set_title("paged rows via a block table", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, source=source)


def render(files: LabFiles) -> dict[str, str]:
    blocks = {}
    cpu = files.read("cpu_access_patterns")
    if cpu:
        src = files.rel(files.result_path("cpu_access_patterns"))
        plot_cpu(cpu, files.plot_path("cpu_access_patterns"), src)
        r = cpu["results"]
        peak = r["copy_peak"]["GBps"]
        g = r["gather"]
        blocks["model"] = (
            lab.md_table(
                ["access (one warp, 32 lanes)", "sectors / request", "bytes moved", "efficiency"],
                [
                    [x["case"], x["sectors_per_request"], x["moved_bytes"], x["efficiency"]]
                    for x in r["sector_model"]
                ],
            )
            + "\n\nKernels against their NumPy specs: "
            + ", ".join(f"{c['kernel']} {'ok' if c['ok'] else 'FAILED'}" for c in r["simulator_checks"])
            + f" ({r['simulator_checks'][0]['backend']}). Source: `{src}`."
        )
        blocks["cpu"] = "\n".join(
            [
                "![CPU access patterns](plots/cpu_access_patterns.png)",
                "",
                f"Copy peak of this machine (np.copyto, read + write): **{lab.spread(peak)} GB/s**.",
                "",
                lab.md_table(
                    ["stride", "useful GB/s", "cache-line GB/s", "useful / copy peak"],
                    [
                        [
                            f"{x['stride_bytes']} B",
                            lab.spread(x["useful_GBps"]),
                            lab.spread(x["cache_line_GBps"]),
                            x["useful_GBps"]["median"] / peak["median"],
                        ]
                        for x in r["stride_sweep"]
                    ],
                ),
                "",
                lab.md_table(
                    ["gather", "GB/s of elements fetched"], [[k, lab.spread(v)] for k, v in g.items()]
                ),
                "",
                "Random / contiguous: "
                + ", ".join(
                    f"{lib} {lab.fmt(g[f'{lib} random']['median'] / g[f'{lib} contiguous']['median'])}"
                    for lib in ("np.take", "torch.index_select")
                )
                + ".",
                "",
                lab.md_table(
                    ["row size", "sequential GB/s", "random GB/s", "random / sequential"],
                    [
                        [
                            f"{x['row_bytes']} B",
                            lab.spread(x["sequential_GBps"]),
                            lab.spread(x["random_GBps"]),
                            x["random_over_sequential"],
                        ]
                        for x in r["paged_rows"]
                    ],
                ),
                "",
                lab.machine_line(cpu) + f" Source: `{src}`.",
            ]
        )
    kv = files.read("kv_cache_arithmetic")
    if kv:
        src = files.rel(files.result_path("kv_cache_arithmetic"))
        plot_roofline(kv, files.plot_path("kv_cache_roofline"), src)
        r = kv["results"]
        lines = [
            "![KV cache on the roofline](plots/kv_cache_roofline.png)",
            "",
            f"Ridge point of {r['gpu_spec']['name']}: {r['gpu_spec']['bf16_dense_tflops']} TFLOP/s / "
            f"{r['gpu_spec']['hbm_bandwidth_GBps']} GB/s = **{r['ridge_flop_per_byte']:.0f} FLOP/byte**.",
            "",
        ]
        lines.append(
            lab.md_table(
                [
                    "model (config source)",
                    "matmul params",
                    "KV bytes per cached token (bf16)",
                    "decode attention FLOP per KV byte",
                ],
                [
                    [
                        f"{n} ({m['config']['source']})",
                        m["matmul_params"],
                        m["kv_bytes_per_context_token"],
                        m["attention_flops_per_kv_byte"],
                    ]
                    for n, m in r["models"].items()
                ],
            )
        )
        lines.append("")
        lines.append(
            lab.md_table(
                [
                    "model",
                    "batch",
                    "context",
                    "weight bytes",
                    "KV bytes",
                    "KV share",
                    "FLOP/byte (step)",
                    "memory ms",
                    "compute ms",
                    "bound",
                    "fits 80 GB",
                ],
                [
                    [
                        n,
                        st["batch"],
                        st["context"],
                        st["weight_bytes"],
                        st["kv_bytes"],
                        st["kv_share_of_bytes"],
                        st["intensity_whole_step"],
                        st["memory_time_ms"],
                        st["compute_time_ms"],
                        st["bound"],
                        "yes" if st["fits_in_hbm"] else "no",
                    ]
                    for n, m in r["models"].items()
                    for st in m["steps"]
                ],
            )
        )
        lines += ["", f"Source: `{src}` (analytic, not measured)."]
        blocks["kv"] = "\n".join(lines)
    gpu = files.read("gpu_access_patterns")
    if gpu:
        src = files.rel(files.result_path("gpu_access_patterns"))
        plot_gpu(gpu, files.plot_path("gpu_access_patterns"), src)
        r = gpu["results"]
        pk = r["peak_GBps_theoretical"]
        blocks["gpu"] = "\n".join(
            [
                "![GPU access patterns](plots/gpu_access_patterns.png)",
                "",
                f"Peak: {lab.fmt(pk)} GB/s ({r['peak_source']}); "
                f"torch D2D copy {lab.spread(r['torch_copy']['GBps'])} GB/s.",
                "",
                lab.md_table(
                    ["stride", "sectors/request (model)", "useful GB/s", "sector GB/s", "useful / peak"],
                    [
                        [
                            x["stride_elements"],
                            x["model"]["sectors_per_request"],
                            lab.spread(x["useful_GBps"]),
                            lab.spread(x["sector_GBps"]),
                            x["useful_GBps"]["median"] / pk,
                        ]
                        for x in r["strided"]
                    ],
                ),
                "",
                lab.md_table(
                    ["gather", "useful GB/s"],
                    [[k, lab.spread(v["useful_GBps"])] for k, v in r["gather"].items()],
                ),
                "",
                lab.md_table(
                    ["row bytes", "order", "GB/s"],
                    [[x["row_bytes"], x["order"], lab.spread(x["GBps"])] for x in r["paged_rows"]],
                ),
                "",
                lab.machine_line(gpu) + f" Source: `{src}`.",
            ]
        )
    else:
        blocks["gpu"] = lab.gpu_not_measured(files.module)
    return blocks


GPU_HELP = "run the GPU half instead (achieved GB/s per pattern, L2 flushed); skips with a reason without CUDA"


def main(argv: list[str] | None = None) -> int:
    return run_lab(argv, doc=__doc__, lab_dir=LAB_DIR, run_cpu=run_cpu, run_gpu=run_gpu, render=render,
                   gpu_help=GPU_HELP, extra_packages=lab.EXTRA_PACKAGES)


if __name__ == "__main__":
    raise SystemExit(main())
