"""c4: FlashAttention's data reuse, weight-only int8, CUDA Graphs.

    python -m experiments.vllm.c4_attention_graphs_quant [--quick] [--render-only] [--out-dir DIR]

1. Tiled attention with online softmax (NumPy) checked exact against the
   reference; HBM traffic of naive vs tiled over sequence lengths and tile
   sizes (closed form, equal to what the code counts).
2. The same kernel in Triton, run under TRITON_INTERPRET=1 on CPU (natively on a GPU).
3. Weight-only int8 (per output channel) for linear layers of a tiny and a 7B-sized shape:
   error, bytes, CPU time.
4. CUDA Graph replay vs eager launches of a tiny decode step: GPU only, skipped on CPU.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from experiments.common.lab import LabFiles, run_lab
from experiments.common.provenance import REPO_ROOT
from experiments.vllm.c4_attention_graphs_quant import cuda_graphs, quant_int8
from experiments.vllm.c4_attention_graphs_quant import tiled_attention as T

LAB_DIR = Path(__file__).resolve().parent
BENCHMARK_VERSION = 2  # 2: a batch-1 layer whose int8 weights are twice the last-level cache
SEQ_LENS = [256, 512, 1024, 2048, 4096, 8192, 16384]
BLOCKS = [16, 32, 64, 128, 256]
HEAD_DIM = 128


def correctness(quick: bool) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    cases = [(200, 64, 64, 32, False), (333, 64, 32, 64, True)] + ([] if quick else [(1024, 128, 128, 128, True)])
    for n, d, bq, bk, causal in cases:
        q, k, v = (rng.standard_normal((n, d)) * 3 for _ in range(3))
        err = float(np.abs(T.attention_tiled(q, k, v, bq, bk, causal) - T.attention_reference(q, k, v, causal)).max())
        c = T.TrafficCounter()
        T.attention_tiled(q, k, v, bq, bq, counter=c)
        rows.append({"n": n, "d": d, "block_q": bq, "block_k": bk, "causal": causal, "max_abs_err_fp64": err,
                     "counted_elements": c.read + c.written, "formula_elements": T.tiled_traffic_elements(n, d, bq)})
    return rows


def triton_check() -> dict:
    code = ("import os,torch,json;from experiments.vllm.c4_attention_graphs_quant.triton_attention import attention_triton;"
            "from experiments.vllm.c4_attention_graphs_quant.tiled_attention import attention_reference as r;"
            "torch.manual_seed(0);dev='cuda' if torch.cuda.is_available() else 'cpu';"
            "q,k,v=(torch.randn(77,32,device=dev)*2 for _ in range(3));o=attention_triton(q,k,v,16,16).cpu().double().numpy();"
            "print(json.dumps({'n':77,'d':32,'block':16,'device':dev,'max_abs_err':float(abs(o-r(*(t.cpu().double().numpy() for t in (q,k,v)))).max())}))")
    env = dict(os.environ)
    import torch
    if torch.cuda.is_available():
        env.pop("TRITON_INTERPRET", None)  # on a GPU the kernel runs natively, whatever the caller's shell set
    else:
        env["TRITON_INTERPRET"] = "1"
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    if p.returncode != 0:
        return {"skipped": "triton run failed: " + p.stderr.strip().splitlines()[-1][:200]}
    import json
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["mode"] = "native GPU" if out["device"] == "cuda" else "TRITON_INTERPRET=1 (correctness only, no timing)"
    return out


def last_level_cache() -> dict | None:
    """The highest-level data/unified cache of cpu0 as sysfs reports it (None where unreadable).

    Recorded with the CPU timings so the README can say whether a layer's weights fit in it across repeats.
    """
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    best = None
    for idx in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = int((idx / "level").read_text())
            kind = (idx / "type").read_text().strip()
            size = (idx / "size").read_text().strip()
            nbytes = int(size[:-1]) * units[size[-1]] if size[-1:] in units else int(size)
        except (OSError, ValueError):
            continue
        if kind != "Instruction" and (best is None or level > best["level"]):
            best = {"level": level, "bytes": nbytes, "source": str(idx / "size")}
    return best


def above_llc_side(llc: dict | None, floor: int = 8192) -> int:
    """The smallest square power-of-two layer whose int8 weights alone are at least twice the last-level cache.

    A layer whose int8 weights fit the cache while its fp32 weights do not compares a cache-warm int8 run with a
    DRAM-bound fp32 run; above the cache both stream from memory and only the bytes differ."""
    side = floor
    while llc and side * side < 2 * llc["bytes"]:
        side *= 2
    return side


def quant(quick: bool) -> dict:
    import torch
    torch.set_num_threads(1)  # one intra-op thread: on a shared 2-core machine 2-thread ops stall on each other
    torch.manual_seed(0)
    llc = last_level_cache()
    big = above_llc_side(llc)
    shapes = [(768, 192, 1, 20), (768, 192, 64, 20), (4096, 4096, 1, 20), (4096, 4096, 64, 20), (big, big, 1, 10)]
    if quick:
        shapes = [(768, 192, 1, 5), (768, 192, 64, 5), (1024, 1024, 1, 5)]
    speed = [quant_int8.speed_on_cpu(o, i, b, r) for o, i, b, r in shapes]
    w = torch.randn(1024, 1024) * 0.02
    x = torch.randn(16, 1024)
    gpu = ([quant_int8.speed_on_gpu(n, n, b, 20) for n, b in ((4096, 1), (8192, 1), (8192, 64))]
           if torch.cuda.is_available() else [])
    return {"error_gaussian_1024": quant_int8.error_stats(w, x), "speed_gpu": gpu,
            "bytes": {f"{o}x{i}": quant_int8.bytes_of(o, i) for o, i in [(768, 192), (4096, 4096)]},
            "speed_cpu": speed, "cpu_last_level_cache": llc}


def plot(doc: dict, path: Path, source: str) -> None:
    from experiments.common.plots import plt, save_figure

    rows = doc["results"]["traffic"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    naive = [r for r in rows if r["block_q"] == BLOCKS[0]]
    axes[0].loglog([r["seq_len"] for r in naive], [r["naive_bytes"] / 2**20 for r in naive], "k-o", ms=3, label="naive (S, P through HBM)")
    for b in BLOCKS:
        rb = [r for r in rows if r["block_q"] == b]
        axes[0].loglog([r["seq_len"] for r in rb], [r["tiled_bytes"] / 2**20 for r in rb], "-", label=f"tiled, B={b}")
        axes[1].semilogx([r["seq_len"] for r in rb], [r["ratio"] for r in rb], "-o", ms=3, label=f"B={b}")
    axes[0].set_xlabel("sequence length N")
    axes[0].set_ylabel("HBM MiB per head (bf16)")
    axes[0].set_title(f"attention HBM traffic, d={HEAD_DIM}", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("sequence length N")
    axes[1].set_ylabel("naive bytes / tiled bytes")
    axes[1].set_title("traffic saved by tiling -> 2B/d for N >> d", fontsize=9)
    axes[1].legend(fontsize=7)
    save_figure(fig, path, source=source)


def readme_blocks(doc: dict, rel: str) -> dict[str, str]:
    """The README's generated block (experiments.common.docs markers): the tables. The Answer is written by hand
    below the block, its figures bound to the result file (experiments.common.figures)."""
    res, prov = doc["results"], doc["provenance"]
    m = prov["machine"]
    L = ["![HBM traffic](plots/attention_hbm_traffic.png)", "",
         "Tiled (online softmax) vs reference, fp64:", "",
         "| N | d | B_q | B_k | causal | max abs error | counted elements | formula |", "|---|---|---|---|---|---|---|---|"]
    for r in res["correctness"]:
        L.append(f"| {r['n']} | {r['d']} | {r['block_q']} | {r['block_k']} | {r['causal']} | {r['max_abs_err_fp64']:.1e} | "
                 f"{r['counted_elements']:,} | {r['formula_elements']:,} |")
    L += ["", f"HBM bytes per head at d={HEAD_DIM}, bf16:", "", "| N | naive MiB | " + " | ".join(f"tiled B={b} MiB" for b in BLOCKS) + " |",
          "|---|---|" + "---|" * len(BLOCKS)]
    for n in SEQ_LENS:
        rr = [r for r in res["traffic"] if r["seq_len"] == n]
        L.append(f"| {n} | {rr[0]['naive_bytes'] / 2**20:.1f} | " + " | ".join(
            f"{r['tiled_bytes'] / 2**20:.1f} (x{r['ratio']:.1f})" for r in rr) + " |")
    t = res["triton"]
    L += ["", "Triton kernel: " + (f"skipped: {t['skipped']}" if "skipped" in t else
          f"{t['mode']}, N={t['n']}, d={t['d']}, tile {t['block']}: max abs error {t['max_abs_err']:.1e} vs the fp64 reference."), ""]
    q = res["quant"]
    e = q["error_gaussian_1024"]
    L += [f"Weight-only int8, per output channel (1024x1024 Gaussian weights, 16 inputs): relative output error "
          f"{e['output_rel_err_int8']:.2e} (bf16 weights for comparison: {e['output_rel_err_bf16']:.2e}); "
          f"max weight error {e['weight_max_abs_err_over_scale']:.2f} of a scale step.", "",
          "| weight | fp32 bytes | bf16 bytes | int8 + scales bytes |", "|---|---|---|---|"]
    for k, b in q["bytes"].items():
        L.append(f"| {k} | {b['fp32']:,} | {b['bf16']:,} | {b['int8_plus_fp32_scales']:,} |")
    llc = q.get("cpu_last_level_cache")
    cache = f"; L{llc['level']} {llc['bytes'] / 2**20:.0f} MiB" if llc else ""
    L += ["", f"CPU time per call, median ({m['cpu_model']}, {m['cpu_count']} cores{cache}, shared; 1 intra-op thread; 1-min load {m['loadavg_1m']:.1f} at the start):", "",
          "| out x in | batch | fp32 ms | bf16 ms | int8 dequant + fp32 ms | fbgemm dynamic int8 ms |", "|---|---|---|---|---|---|"]
    for s in q["speed_cpu"]:
        fb = f"{s['fbgemm_dynamic_int8_ms']:.3f}" if "fbgemm_dynamic_int8_ms" in s else "n/a"
        L.append(f"| {s['out_features']}x{s['in_features']} | {s['batch']} | {s['fp32_ms']:.3f} | {s['bf16_ms']:.3f} | "
                 f"{s['int8_dequant_then_fp32_ms']:.3f} | {fb} |")
    gpu_rows = q.get("speed_gpu") or []
    if gpu_rows:
        L += ["", f"GPU ({gpu_rows[0].get('device', 'CUDA')}), W8A16: bf16 matmul vs `torch._weight_int8pack_mm` "
              "(dequantised inside the kernel), CUDA events, L2 flushed, median:", "",
              "| out x in | batch | bf16 ms | W8A16 ms | W8A16 rel. error |", "|---|---|---|---|---|"]
        for s in gpu_rows:
            w8 = f"{s['w8a16_ms']:.3f}" if "w8a16_ms" in s else f"n/a ({s.get('w8a16_skipped') or s.get('skipped')})"
            err = f"{s['w8a16_rel_err']:.1e}" if "w8a16_rel_err" in s else "-"
            L.append(f"| {s['out_features']}x{s['in_features']} | {s['batch']} | {s.get('bf16_ms', float('nan')):.3f} | "
                     f"{w8} | {err} |")
    g = res["cuda_graph"]
    L += ["", "CUDA Graph: " + (f"skipped: {g['skipped']}." if "skipped" in g else
          f"{g['device']}: eager {sorted(g['eager_us_per_step'])[2]:.1f} us/step vs graph replay "
          f"{sorted(g['graph_us_per_step'])[2]:.1f} us/step (x{g['speedup_median']:.1f}), {g['kernels_per_step']} kernels/step (profiler count)."),
          "", f"Machine: {m['cpu_model']}, {m['cpu_count']} cores, GPU: {m.get('gpu_model')}; torch {prov['versions']['torch']}. Data: `{rel}`."]
    return {"results": "\n".join(L)}


def result_stem() -> str:
    """A run on a CUDA machine measures the CUDA Graph half too and is the GPU result."""
    return "attention_quant_gpu" if cuda_graphs.skip_reason() is None else "attention_quant_cpu"


def run_cpu(files: LabFiles, args: argparse.Namespace) -> None:
    results = {"correctness": correctness(args.quick), "traffic": T.traffic_table(SEQ_LENS, HEAD_DIM, BLOCKS),
               "triton": triton_check(), "quant": quant(args.quick), "cuda_graph": cuda_graphs.measure_cuda_graph()}
    files.write(result_stem(), results, benchmark_version=BENCHMARK_VERSION,
                config={"quick": args.quick, "seq_lens": SEQ_LENS, "blocks": BLOCKS, "head_dim": HEAD_DIM,
                        "bytes_per_element": 2})


def render(files: LabFiles) -> dict[str, str]:
    """From the GPU result when one was committed (it has the CUDA Graph rows), else the CPU one."""
    stem = "attention_quant_gpu" if files.read("attention_quant_gpu") else "attention_quant_cpu"
    doc = files.require(stem)
    rel = files.rel(files.result_path(stem))
    plot(doc, files.plot_path("attention_hbm_traffic"), rel)
    return readme_blocks(doc, rel)


def main(argv: list[str] | None = None) -> int:
    return run_lab(argv, doc=__doc__, lab_dir=LAB_DIR, run_cpu=run_cpu, render=render, extra_packages=["triton"])


if __name__ == "__main__":
    raise SystemExit(main())
