"""Roofline arithmetic for one engine step of a Llama, and this machine's two ceilings.

Bytes: a decode step must stream every weight once (whatever the batch size: the
batch shares them) plus the K and V of every earlier token of every sequence in
the batch. FLOPs: 2 per weight per token, plus attention's QK^T and PV. The
roofline time of a step is max(bytes / bandwidth, flops / peak_flops); the
measured step time sits above it, and the gap is what the step spends on neither.

The two ceilings are measured here, not read off a spec sheet: a large numpy
copy (STREAM "copy" convention: read + write bytes) at two working-set sizes
(one that fits in the last-level cache, one that does not), and a float32 GEMM
with torch on this process's threads.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from experiments.common.stats import summarize
from experiments.common.timing import time_repeats


@dataclass(frozen=True)
class LlamaShape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool

    @classmethod
    def from_config(cls, path: str | Path) -> "LlamaShape":
        c = json.loads(Path(path).read_text())
        return cls(hidden=c["hidden_size"], intermediate=c["intermediate_size"], layers=c["num_hidden_layers"],
                   heads=c["num_attention_heads"], kv_heads=c.get("num_key_value_heads", c["num_attention_heads"]),
                   head_dim=c.get("head_dim", c["hidden_size"] // c["num_attention_heads"]),
                   vocab=c["vocab_size"], tied_embeddings=bool(c.get("tie_word_embeddings", False)))

    def as_dict(self) -> dict:
        return asdict(self)


def matmul_params_per_layer(s: LlamaShape) -> int:
    q = s.hidden * s.heads * s.head_dim
    kv = 2 * s.hidden * s.kv_heads * s.head_dim
    o = s.heads * s.head_dim * s.hidden
    mlp = 3 * s.hidden * s.intermediate  # gate, up, down
    return q + kv + o + mlp


def param_counts(s: LlamaShape) -> dict:
    """Parameters by role. With tied embeddings the LM head *is* the embedding matrix (stored once)."""
    layers = s.layers * (matmul_params_per_layer(s) + 2 * s.hidden)  # + two RMSNorm vectors
    embed = s.vocab * s.hidden
    lm_head = 0 if s.tied_embeddings else s.vocab * s.hidden
    total = layers + embed + lm_head + s.hidden  # + final norm
    # the embedding lookup reads one row per token; the LM head (vocab x hidden) is a full matmul, but only
    # for the positions that are sampled: every decode token, the last prompt position of a prefill
    return {"total": total, "layers": layers, "embedding": embed, "separate_lm_head": lm_head,
            "layer_matmul": s.layers * matmul_params_per_layer(s), "lm_head_matmul": s.vocab * s.hidden}


def kv_bytes_per_token(s: LlamaShape, dtype_bytes: int) -> int:
    return 2 * s.layers * s.kv_heads * s.head_dim * dtype_bytes


def decode_step_cost(s: LlamaShape, batch: int, context: float, dtype_bytes: int) -> dict:
    """One decode step: `batch` sequences, each attending over `context` earlier tokens (mean)."""
    weight_bytes = param_counts(s)["total"] * dtype_bytes
    kv_read = batch * context * kv_bytes_per_token(s, dtype_bytes)
    kv_write = batch * kv_bytes_per_token(s, dtype_bytes)
    pc = param_counts(s)
    flops = 2 * (pc["layer_matmul"] + pc["lm_head_matmul"]) * batch + 4 * batch * context * s.layers * s.heads * s.head_dim
    return {"weight_bytes": weight_bytes, "kv_bytes": kv_read + kv_write,
            "bytes": weight_bytes + kv_read + kv_write, "flops": flops}


def prefill_step_cost(s: LlamaShape, prompt_tokens: int, dtype_bytes: int) -> dict:
    """One prefill step of a single prompt of `prompt_tokens` (causal attention: ~P^2/2 pairs)."""
    p = prompt_tokens
    weight_bytes = param_counts(s)["total"] * dtype_bytes
    kv_write = p * kv_bytes_per_token(s, dtype_bytes)
    pairs = p * (p + 1) / 2
    pc = param_counts(s)
    flops = 2 * pc["layer_matmul"] * p + 2 * pc["lm_head_matmul"] + 4 * pairs * s.layers * s.heads * s.head_dim
    return {"weight_bytes": weight_bytes, "kv_bytes": kv_write, "bytes": weight_bytes + kv_write, "flops": flops}


def compute_bound_batch(s: LlamaShape, dtype_bytes: int, ridge_flop_per_byte: float) -> float:
    """Decode batch size at which the weight-streaming roofline turns compute-bound (KV reads ignored)."""
    pc = param_counts(s)
    return ridge_flop_per_byte * pc["total"] * dtype_bytes / (2 * (pc["layer_matmul"] + pc["lm_head_matmul"]))


def roofline_time(cost: dict, bandwidth_Bps: float, flops_per_s: float) -> dict:
    t_mem = cost["bytes"] / bandwidth_Bps
    t_compute = cost["flops"] / flops_per_s
    return {"memory_s": t_mem, "compute_s": t_compute, "roofline_s": max(t_mem, t_compute),
            "bound": "memory" if t_mem >= t_compute else "compute",
            "intensity_flop_per_byte": cost["flops"] / cost["bytes"]}


# ---------------------------------------------------------------- this machine's ceilings

def _repeat(fn, repeats: int) -> list[float]:
    """Seconds per call after one warm-up call (first touch of the pages, thread pool start)."""
    return time_repeats(fn, repeats=repeats, warmup=1)["samples_s"]


def measure_copy_bandwidth(nbytes: int, repeats: int) -> dict:
    """np.copyto of an nbytes float32 array: (read + write) bytes / s, like b3's `measure_copy_peak`."""
    src = np.ones(max(1, nbytes // 4), np.float32)
    dst = np.empty_like(src)
    times = _repeat(lambda: np.copyto(dst, src), repeats)
    return {"bytes": int(src.nbytes), "GBps": summarize([2 * src.nbytes / t / 1e9 for t in times])}


def measure_matmul_flops(n: int, repeats: int, threads: int | None = None) -> dict:
    """float32 n x n x n GEMM with torch: the compute ceiling for this process's threads."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    times = _repeat(lambda: torch.mm(a, b), repeats)
    return {"n": n, "threads": torch.get_num_threads(), "GFLOPs": summarize([2 * n**3 / t / 1e9 for t in times])}
