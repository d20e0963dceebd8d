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
import statistics
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


def _sci(x: float) -> str:
    """One significant digit, unpadded exponent: 2.3e-14 -> '2e-14'."""
    mant, exp = f"{x:.0e}".split("e")
    return f"{mant}e{int(exp)}"


def _ms(x: float) -> str:
    return f"{x:.1f}" if x >= 10 else f"{x:.2g}"


def _mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.1f} MB"


def _times(r: float) -> str:
    return f"{r:.0f}x" if r >= 1.95 else f"{r:.1f}x"


def _tiled_vs_naive(rel: float, first: bool) -> str:
    """Words for tiled bytes as a multiple `rel` of naive bytes; `first` spells out the comparison."""
    if abs(rel - 1) <= 0.1:
        return "about the same" + (" as naive" if first else "")
    if rel > 1:
        return f"{_times(rel)} *more*" + (" than naive" if first else "")
    for frac, word in ((1 / 2, "half"), (1 / 3, "a third"), (1 / 4, "a quarter"), (1 / 8, "an eighth")):
        if abs(rel - frac) <= 0.05 * frac:
            return word + (" of naive's bytes" if first else "")
    return f"{rel:.2f}x" + (" naive's bytes" if first else "")


ANSWER_BLOCKS = (16, 64, 128, 256)  # the tile sizes the Answer walks through (those present in the data)


def answer_markdown(doc: dict) -> str:
    """The three Answer paragraphs, every measured or counted figure (and each word that depends on one)
    taken from the result document, so a rerun elsewhere cannot render a stale or false sentence."""
    res, m = doc["results"], doc["provenance"]["machine"]

    # -- FlashAttention
    corr = res["correctness"]
    conds = []
    if len({r["causal"] for r in corr}) > 1:
        conds.append("causal or not")
    if any(r["n"] % r["block_q"] or r["n"] % r["block_k"] for r in corr):
        conds.append("tiles not dividing N")
    p1 = (f"**FlashAttention's data reuse.** The tiled loop gives the reference result to "
          f"{_sci(max(r['max_abs_err_fp64'] for r in corr))} in fp64" + (f" ({', '.join(conds)})" if conds else ""))
    mismatches = sum(r["counted_elements"] != r["formula_elements"] for r in corr)
    p1 += (", and the elements it actually touches equal the closed form, so the traffic table is the code's own count."
           if not mismatches else
           f", but in {mismatches} of {len(corr)} cases the elements it touches differ from the closed form, "
           "so the traffic table below is the formula, not the code's count.")
    traffic = res["traffic"]
    n = max(r["seq_len"] for r in traffic)
    big = {r["block_q"]: r for r in traffic if r["seq_len"] == n}
    any_row = next(iter(big.values()))
    d, naive = any_row["head_dim"], any_row["naive_bytes"]
    sp_share = 4 * n * n / T.naive_traffic_elements(n, d)  # S written+read, P written+read, of all naive traffic
    p1 += (f" The N² term is gone: naive attention at N = {n}, d = {d} moves {naive / 2**20:.0f} MiB per head, "
           + ("almost all of it S and P." if sp_share >= 0.95 else f"{sp_share:.0%} of it S and P."))
    blocks = [b for b in ANSWER_BLOCKS if b in big] or sorted(big)
    walk = ", ".join(f"B = {b}" + (" tiles move " if i == 0 else " ") + _tiled_vs_naive(1 / big[b]["ratio"], i == 0)
                     for i, b in enumerate(blocks))
    p1 += (" What replaces it is re-reading K and V once per query tile, so the saving is 2B/d and *depends on the tile "
           f"size*: at d = {d}, {walk}. That is why FlashAttention sizes tiles to fill SRAM (shared memory per SM, "
           "~100-228 KB on current NVIDIA GPUs per their spec sheets) and why head dimension matters; the other wins "
           "are not in bytes: one fused kernel instead of three, and no N x N buffer, so memory stays O(N) and long "
           "contexts fit.")
    t = res["triton"]
    if "skipped" in t:
        p1 += f" The Triton version of the same loop did not run here ({t['skipped']})."
    else:
        where = "under the interpreter" if t.get("device") == "cpu" else "natively on the GPU"
        masked = "masked loads, N not a multiple of the tile" if t["n"] % t["block"] else "masked loads"
        agrees = ("agrees with the reference to ~" if t["max_abs_err"] < 1e-4 else "differs from the reference by ")
        p1 += f" The Triton version of the same loop ({masked}) {agrees}{_sci(t['max_abs_err'])} {where}"
        p1 += "; the interpreter proves the indexing, not the speed." if t.get("device") == "cpu" else "."

    # -- weight-only int8
    q = res["quant"]
    e = q["error_gaussian_1024"]
    step, err8, err16 = e["weight_max_abs_err_over_scale"], e["output_rel_err_int8"], e["output_rel_err_bf16"]
    r16 = err8 / err16
    vs16 = (f"about {_times(r16)} bf16's rounding error" if r16 >= 1.5 else
            "about bf16's rounding error" if r16 > 1 / 1.5 else f"{_times(1 / r16)} below bf16's rounding error")
    p2 = ("**Weight-only int8.** Per-channel scales keep every weight within half a step "
          if step <= 0.5 + 1e-3 else "**Weight-only int8.** Per-channel scales should keep every weight within half a "
          "step, but ") + f"({step:.2f} measured) and the output error at ~{err8:.1%} of its norm, {vs16}"
    p2 += (": fine for most layers, which is why W8A16 is a common serving option." if err8 <= 0.02 else
           ": more than many layers tolerate without finer (group-wise) scales.")
    label, b = max(q["bytes"].items(), key=lambda kv: kv[1]["fp32"])
    p2 += (f" The bytes are the point: {_mb(b['int8_plus_fp32_scales'])} instead of {_mb(b['fp32'])} (fp32) or "
           f"{_mb(b['bf16'])} (bf16) for a {label} layer, and a batch-1 decode step reads every weight once per token, "
           "so on a memory-bound GPU the step time falls roughly with the bytes.")
    ones = [s for s in q["speed_cpu"] if s["batch"] == 1]
    llc = q.get("cpu_last_level_cache")
    int8_of = lambda s: s["out_features"] * (s["in_features"] + 4)  # noqa: E731
    fp32_of = lambda s: 4 * s["out_features"] * s["in_features"]  # noqa: E731
    name_of = lambda s: f"{s['out_features']}x{s['in_features']}"  # noqa: E731
    if ones:
        above = [s for s in ones if llc and int8_of(s) > llc["bytes"]]
        s = max(above or ones, key=lambda s: s["out_features"] * s["in_features"])
        fp32, dq, bf, fb = s["fp32_ms"], s["int8_dequant_then_fp32_ms"], s["bf16_ms"], s.get("fbgemm_dynamic_int8_ms")
        fb_fast = fb is not None and fb < fp32
        split = dq > fp32 and fb_fast
        p2 += (" On this CPU the numbers split along \"fused or not\": a *separate* dequantise-then-matmul takes "
               if split else " On this CPU a *separate* dequantise-then-matmul takes ")
        p2 += (f"{_ms(dq)} ms for the {name_of(s)} layer at batch 1 against {_ms(fp32)} ms in fp32 "
               f"({'slower: ' if not split and dq > fp32 else ''}it materialises a {_mb(fp32_of(s))} fp32 copy of the "
               "weights every call)")
        if fb is None:
            p2 += f" (bf16: {_ms(bf)} ms); fbgemm's fused int8 kernel was not available in this torch build."
        else:
            p2 += (f", while fbgemm's fused int8 kernel takes {_ms(fb)} ms, {_times(fp32 / fb)} faster than fp32 for "
                   f"{_times(fp32_of(s) / int8_of(s))} fewer weight bytes (bf16: {_ms(bf)} ms)."
                   if fb_fast else f", and fbgemm's fused int8 kernel takes {_ms(fb)} ms, no faster (bf16: {_ms(bf)} ms).")
        if fb_fast:
            if not llc:
                p2 += (" Part of that fbgemm figure may be a cache effect to be honest about: "
                       f"{_mb(int8_of(s))} of int8 weights are far more likely than {_mb(fp32_of(s))} of fp32 to stay in "
                       "this CPU's last-level cache across repeats (this run did not record its size), so it may "
                       "overstate what a single cold pass would gain; the direction is the point.")
            else:
                cache = f"this {m.get('cpu_model') or 'CPU'}'s {llc['bytes'] / 2**20:.0f} MiB L{llc['level']}"
                if above:
                    gbs8, gbs32 = int8_of(s) / fb / 1e6, fp32_of(s) / fp32 / 1e6
                    p2 += (f" Both the {_mb(int8_of(s))} of int8 and the {_mb(fp32_of(s))} of fp32 weights are above "
                           f"{cache}, so every repeat streams both from memory: that ratio is the one that survives. "
                           f"It is {'more' if fp32 / fb > fp32_of(s) / int8_of(s) else 'less'} than the ratio of bytes "
                           f"because the two kernels do not read at the same speed: {gbs8:.0f} GB/s of int8 weights "
                           f"against {gbs32:.0f} GB/s of fp32.")
                    warm = [w for w in ones if fb is not None and "fbgemm_dynamic_int8_ms" in w
                            and int8_of(w) <= llc["bytes"] < fp32_of(w) and w["fbgemm_dynamic_int8_ms"] > 0]
                    if warm:
                        w = max(warm, key=lambda w: w["out_features"] * w["in_features"])
                        p2 += (f" The {name_of(w)} layer shows what a cache does to the comparison: "
                               f"{_times(w['fp32_ms'] / w['fbgemm_dynamic_int8_ms'])} faster, because its "
                               f"{_mb(int8_of(w))} of int8 weights fit the cache across repeats and its "
                               f"{_mb(fp32_of(w))} of fp32 do not.")
                elif int8_of(s) <= llc["bytes"] < fp32_of(s):
                    p2 += (" Part of that fbgemm figure is a cache effect to be honest about: "
                           f"{_mb(int8_of(s))} of int8 weights fit {cache} across repeats and {_mb(fp32_of(s))} of fp32 "
                           "do not, so it overstates what a single cold pass would gain; the direction is the point.")
                else:
                    p2 += (f" Both the {_mb(int8_of(s))} of int8 and the {_mb(fp32_of(s))} of fp32 weights fit {cache} "
                           "across repeats, so all these timings are cache-warm; a single cold pass would be slower for each.")
            p2 += " (fbgemm also quantises the activations, W8A8, which is a different error trade.)"
    p2 += (" The saving exists only where dequantisation happens inside the matmul kernel, in registers: on a GPU that "
           "is what W8A16 kernels such as Marlin do.")

    # -- CUDA Graphs
    g = res["cuda_graph"]
    if "skipped" in g:
        head = (f"**What CUDA Graphs solve** (not measurable here: {g['skipped']}; the code path in `cuda_graphs.py` "
                "runs on a GPU and the result lands in `results/attention_quant_gpu.json`).")
    else:
        eager, graph = statistics.median(g["eager_us_per_step"]), statistics.median(g["graph_us_per_step"])
        k = g["kernels_per_step"]
        head = (f"**What CUDA Graphs solve** (measured on {g['device']}: a {g['n_layers']}-layer toy decode step of "
                f"{k} kernels (profiler count) at batch {g['batch']} takes {eager:.1f} µs eager and {graph:.1f} µs as a graph replay, "
                f"x{g['speedup_median']:.1f}, {(eager - graph) / k:.1f} µs saved per kernel).")
    p3 = (head + " A decode step at small batch is hundreds of kernels of a few microseconds each; the CPU (Python, "
          "torch dispatch, the driver) needs several microseconds to launch each one, so the GPU idles between kernels "
          "and the step is launch-bound, not compute- or memory-bound: the gaps in an nsys timeline. A graph records "
          "the step once (static shapes, static buffers) and replays it with one launch, so per-step CPU cost drops "
          "from O(kernels) to O(1). Its price: shapes must be fixed (vLLM captures one graph per batch-size bucket "
          "and pads up to it), capture takes start-up time and memory, and anything dynamic (new shapes, host syncs) "
          "breaks out of the graph. It helps decode at small batch most and large-batch prefill hardly at all.")
    return "\n\n".join([p1, p2, p3])


def readme_blocks(doc: dict, rel: str) -> dict[str, str]:
    """The README's generated block (experiments.common.docs markers): tables, then the Answer."""
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
          "", f"Machine: {m['cpu_model']}, {m['cpu_count']} cores, GPU: {m.get('gpu_model')}; torch {prov['versions']['torch']}. Data: `{rel}`.",
          "", "## Answer", answer_markdown(doc)]
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
