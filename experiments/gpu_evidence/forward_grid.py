"""Per-step forward time of a Llama-3-8B-shaped decoder in plain PyTorch, over a grid of steps.

One engine step = one prefill chunk of `prefill_tokens` (causal attention over itself) plus
`decode_seqs` decoding sequences, each attending over `context_len` cached tokens. Weights are
random bf16 (the timing does not depend on their values), attention is PyTorch's
`scaled_dot_product_attention` (flash / memory-efficient kernels on a GPU, chosen by PyTorch),
projections are cuBLAS matmuls, logits only for the positions that sample (as vLLM does).
This is "PyTorch forward on <GPU>, not vLLM's kernels": no paged KV, no CUDA graphs, no
fused kernels, eager launches. It gives the simulator a *measured* GPU step cost whose shape
(how time grows with prefill tokens, decode batch and context) is real.

CSV columns (what `experiments.sim.cost_models.LinearStepCost.from_csv` reads):
    prefill_tokens, decode_seqs, context_tokens, seconds
  context_tokens = decode_seqs * context_len: all cached tokens the step attends over,
  the simulator's feature; plus context_len, the per-sequence length, and the spread.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

from experiments.common.stats import summarize


@dataclass(frozen=True)
class Shape:
    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int

    def weight_params(self) -> int:
        qkv = self.hidden * (self.heads + 2 * self.kv_heads) * self.head_dim
        o = self.heads * self.head_dim * self.hidden
        mlp = 3 * self.hidden * self.intermediate
        return self.layers * (qkv + o + mlp + 2 * self.hidden) + 2 * self.vocab * self.hidden

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes

    def flops(self, prefill: int, decode: int, context_len: int) -> float:
        """Matmul + attention FLOPs of one step (2 per multiply-add)."""
        tokens = prefill + decode
        matmul = 2 * tokens * (self.weight_params() - 2 * self.vocab * self.hidden)
        attn = 4 * self.layers * self.heads * self.head_dim * (prefill * prefill / 2 + decode * context_len)
        logits = 2 * (decode + (1 if prefill else 0)) * self.vocab * self.hidden
        return matmul + attn + logits


LLAMA3_8B = Shape("llama-3-8b", layers=32, hidden=4096, heads=32, kv_heads=8, head_dim=128,
                  intermediate=14336, vocab=128256)
# The dry run executes the same code on CPU with this shape, to prove it runs end to end.
TINY = Shape("tiny-dry-run", layers=2, hidden=256, heads=4, kv_heads=2, head_dim=64, intermediate=512, vocab=1024)


@dataclass(frozen=True)
class Point:
    prefill_tokens: int
    decode_seqs: int
    context_len: int

    @property
    def context_tokens(self) -> int:
        return self.decode_seqs * self.context_len


def default_grid() -> list[Point]:
    """Prefill-only steps, decode-only steps and mixed ones; context only matters with decodes."""
    points = [Point(p, 0, 0) for p in (128, 512, 1024, 2048, 4096)]
    points += [Point(p, s, c) for p in (0, 128, 512, 1024, 2048, 4096) for s in (1, 8, 32, 64, 128, 256)
               for c in (512, 2048, 8192)]
    return points


def tiny_grid() -> list[Point]:
    """12 points: enough rows for the simulator's fit (it holds out every 5th)."""
    return [Point(p, 0, 0) for p in (8, 32)] + [Point(p, s, c) for p in (0, 16) for s in (1, 4) for c in (16, 64)] \
        + [Point(32, 2, 32), Point(4, 8, 8)]


@dataclass(frozen=True)
class GpuTarget:
    name: str
    memory_bytes: int
    peak_flops: float        # dense bf16, public spec
    peak_bytes_s: float      # HBM


# The lent device: one H200 (about 139 GiB usable). Public specs for the time estimate only.
H200 = GpuTarget("NVIDIA H200", memory_bytes=139 * 2**30, peak_flops=989e12, peak_bytes_s=4.8e12)


def point_memory_bytes(shape: Shape, pt: Point) -> int:
    """KV cache of the point plus the largest temporaries: the MLP's gate/up output (x2 for the
    fp32 norm copies), the logits, and a prefill score matrix should SDPA fall back to its math path."""
    kv = pt.decode_seqs * pt.context_len * shape.kv_bytes_per_token()
    tokens = pt.prefill_tokens + pt.decode_seqs
    act = 2 * tokens * 2 * shape.intermediate * 2 + tokens * shape.vocab * 4
    scores = shape.heads * pt.prefill_tokens ** 2 * 4
    return kv + act + scores


def estimate_seconds(shape: Shape, pt: Point, gpu: GpuTarget, launch_overhead_s: float = 6e-3) -> float:
    """Roofline lower bound of one step plus eager launch overhead: for the time budget only."""
    weight_bytes = shape.weight_params() * 2
    kv_read = pt.context_tokens * shape.kv_bytes_per_token()
    return max(shape.flops(pt.prefill_tokens, pt.decode_seqs, pt.context_len) / gpu.peak_flops,
               (weight_bytes + kv_read) / gpu.peak_bytes_s) + launch_overhead_s


def plan(shape: Shape, points: list[Point], gpu: GpuTarget, warmup: int, repeats: int,
         headroom_bytes: int = 8 * 2**30) -> dict:
    """Which points fit next to the weights, and the estimated run time (no device needed)."""
    weights = shape.weight_params() * 2
    budget = gpu.memory_bytes - weights - headroom_bytes
    run, skipped = [], []
    est = 0.0
    for pt in points:
        need = point_memory_bytes(shape, pt)
        row = {**asdict(pt), "context_tokens": pt.context_tokens, "memory_gib": need / 2**30}
        if need > budget:
            skipped.append({**row, "reason": f"needs {need / 2**30:.1f} GiB > {budget / 2**30:.1f} GiB left"})
            continue
        # allocating and filling the point's KV cache is part of the wall time too
        step = estimate_seconds(shape, pt, gpu)
        est += (warmup + repeats) * step + 2 * pt.context_tokens * shape.kv_bytes_per_token() / gpu.peak_bytes_s
        run.append({**row, "estimated_step_s": step})
    return {"shape": asdict(shape), "gpu": asdict(gpu), "weight_gib": weights / 2**30,
            "memory_budget_gib": budget / 2**30, "points": run, "skipped": skipped,
            "estimated_measure_s": est, "warmup": warmup, "repeats": repeats}


class DecoderStack:
    """Random-weight Llama-style decoder: fused QKV, GQA attention via SDPA, SwiGLU MLP, RMSNorm."""

    def __init__(self, shape: Shape, device, dtype):
        import torch

        self.shape, self.device, self.dtype = shape, device, dtype
        s = shape
        g = torch.Generator(device=device).manual_seed(0)

        def rand(*dims):
            return torch.randn(*dims, generator=g, device=device, dtype=dtype) * 0.02

        qkv = (s.heads + 2 * s.kv_heads) * s.head_dim
        self.layers = [{"qkv": rand(s.hidden, qkv), "o": rand(s.heads * s.head_dim, s.hidden),
                        "gate_up": rand(s.hidden, 2 * s.intermediate), "down": rand(s.intermediate, s.hidden),
                        "norm1": torch.ones(s.hidden, device=device, dtype=dtype),
                        "norm2": torch.ones(s.hidden, device=device, dtype=dtype)} for _ in range(s.layers)]
        self.embed = rand(s.vocab, s.hidden)
        self.lm_head = rand(s.hidden, s.vocab)
        self.final_norm = torch.ones(s.hidden, device=device, dtype=dtype)

    def kv_cache(self, decode_seqs: int, context_len: int):
        """One (K, V) pair per layer: [seqs, kv_heads, context, head_dim], random contents."""
        import torch

        if not decode_seqs:
            return None
        s = self.shape
        return [(torch.randn(decode_seqs, s.kv_heads, context_len, s.head_dim, device=self.device, dtype=self.dtype),
                 torch.randn(decode_seqs, s.kv_heads, context_len, s.head_dim, device=self.device, dtype=self.dtype))
                for _ in range(s.layers)]

    @staticmethod
    def rms_norm(x, w, eps: float = 1e-5):
        import torch

        var = x.float().pow(2).mean(-1, keepdim=True)
        return (x.float() * torch.rsqrt(var + eps)).to(x.dtype) * w

    def step(self, token_ids, prefill: int, decode: int, cache):
        """One engine step's forward over `prefill` chunk tokens then `decode` single tokens."""
        import torch
        import torch.nn.functional as F

        s = self.shape
        x = self.embed[token_ids]
        for li, layer in enumerate(self.layers):
            h = self.rms_norm(x, layer["norm1"])
            qkv = h @ layer["qkv"]
            q, k, v = qkv.split([s.heads * s.head_dim, s.kv_heads * s.head_dim, s.kv_heads * s.head_dim], dim=-1)
            outs = []
            if prefill:
                qp = q[:prefill].view(prefill, s.heads, s.head_dim).transpose(0, 1).unsqueeze(0)
                kp = k[:prefill].view(prefill, s.kv_heads, s.head_dim).transpose(0, 1).unsqueeze(0)
                vp = v[:prefill].view(prefill, s.kv_heads, s.head_dim).transpose(0, 1).unsqueeze(0)
                o = F.scaled_dot_product_attention(qp, kp, vp, is_causal=True, enable_gqa=True)
                outs.append(o.squeeze(0).transpose(0, 1).reshape(prefill, -1))
            if decode:
                # GQA without expanding K/V: the query heads sharing a KV head become that head's
                # "query rows" (a decode token sees its whole context, so no mask is needed).
                kc, vc = cache[li]
                qd = q[prefill:].view(decode, s.kv_heads, s.heads // s.kv_heads, s.head_dim)
                o = F.scaled_dot_product_attention(qd, kc, vc)
                outs.append(o.reshape(decode, -1))
            attn = outs[0] if len(outs) == 1 else torch.cat(outs)
            x = x + attn @ layer["o"]
            gate, up = (self.rms_norm(x, layer["norm2"]) @ layer["gate_up"]).chunk(2, dim=-1)
            x = x + (F.silu(gate) * up) @ layer["down"]
        # logits only where a token is sampled: the last prefill position and every decode
        rows = ([prefill - 1] if prefill else []) + list(range(prefill, prefill + decode))
        return self.rms_norm(x[rows], self.final_norm) @ self.lm_head


def measure_point(model: DecoderStack, pt: Point, warmup: int, repeats: int) -> dict:
    """Warm-up, then `repeats` synchronised timings (CUDA events on a GPU, perf_counter on CPU)."""
    import torch

    cuda = model.device.type == "cuda"
    tokens = pt.prefill_tokens + pt.decode_seqs
    cache = model.kv_cache(pt.decode_seqs, pt.context_len)
    ids = torch.randint(0, model.shape.vocab, (tokens,), device=model.device)
    samples = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize()
                start.record()
                model.step(ids, pt.prefill_tokens, pt.decode_seqs, cache)
                end.record()
                torch.cuda.synchronize()
                dt = start.elapsed_time(end) / 1e3
            else:
                t0 = time.perf_counter()
                model.step(ids, pt.prefill_tokens, pt.decode_seqs, cache)
                dt = time.perf_counter() - t0
            if i >= warmup:
                samples.append(dt)
    del cache
    if cuda:
        torch.cuda.empty_cache()
    stats = summarize(samples)
    med = stats["median"]
    return {**asdict(pt), "context_tokens": pt.context_tokens, "seconds": med,
            "min_s": stats["min"], "max_s": stats["max"], "repeats": repeats,
            "achieved_tflops": model.shape.flops(pt.prefill_tokens, pt.decode_seqs, pt.context_len) / med / 1e12
            if med > 0 else math.nan}
