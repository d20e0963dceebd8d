"""The KV-cache argument in numbers: bytes and FLOPs of one decode step for real model shapes.

Config numbers are copied from the models' published config.json files (cited
in MODELS). Everything here is arithmetic, not measurement.
"""

from __future__ import annotations

MODELS = {
    "Llama-3-8B": {
        "source": "huggingface.co/meta-llama/Meta-Llama-3-8B config.json",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "tie_word_embeddings": False,
    },
    "Qwen2.5-0.5B": {
        "source": "huggingface.co/Qwen/Qwen2.5-0.5B config.json",
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
}


def head_dim(cfg: dict) -> int:
    return cfg["hidden_size"] // cfg["num_attention_heads"]


def matmul_params(cfg: dict) -> int:
    """Weights multiplied once per token: q/k/v/o, gate/up/down, and the LM head (biases ignored)."""
    h, d = cfg["hidden_size"], head_dim(cfg)
    kv = cfg["num_key_value_heads"] * d
    attn = h * h + 2 * h * kv + h * h
    mlp = 3 * h * cfg["intermediate_size"]
    return cfg["num_hidden_layers"] * (attn + mlp) + cfg["vocab_size"] * h


def kv_bytes_per_token(cfg: dict, dtype_bytes: int = 2) -> int:
    """K and V for one token of context, all layers."""
    return 2 * cfg["num_hidden_layers"] * cfg["num_key_value_heads"] * head_dim(cfg) * dtype_bytes


def attention_flops_per_token(cfg: dict, context: int) -> int:
    """QK^T and PV for one new token against `context` cached tokens (2 FLOPs per multiply-add)."""
    return 4 * cfg["num_hidden_layers"] * cfg["num_attention_heads"] * head_dim(cfg) * context


def decode_step(cfg: dict, *, batch: int, context: int, dtype_bytes: int = 2) -> dict:
    """One decode step for `batch` sequences, each with `context` cached tokens."""
    w_bytes = matmul_params(cfg) * dtype_bytes  # read once, shared by the batch
    kv_bytes = batch * kv_bytes_per_token(cfg, dtype_bytes) * context  # each sequence reads its own
    w_flops = 2 * matmul_params(cfg) * batch
    a_flops = attention_flops_per_token(cfg, context) * batch
    total_bytes = w_bytes + kv_bytes
    return {
        "batch": batch,
        "context": context,
        "weight_bytes": w_bytes,
        "kv_bytes": kv_bytes,
        "kv_share_of_bytes": kv_bytes / total_bytes,
        "weight_flops": w_flops,
        "attention_flops": a_flops,
        "intensity_whole_step": (w_flops + a_flops) / total_bytes,
        "intensity_attention": a_flops / kv_bytes if kv_bytes else float("nan"),
        "intensity_weights": w_flops / w_bytes,
        "kv_cache_bytes_resident": kv_bytes,  # the same bytes must also fit in HBM
    }


def step_time_bounds(step: dict, *, tflops: float, bandwidth_GBps: float) -> dict:
    """Roofline lower bounds: time to move the bytes vs time to do the FLOPs at peak."""
    mem_s = (step["weight_bytes"] + step["kv_bytes"]) / (bandwidth_GBps * 1e9)
    flop_s = (step["weight_flops"] + step["attention_flops"]) / (tflops * 1e12)
    return {
        "memory_time_ms": mem_s * 1e3,
        "compute_time_ms": flop_s * 1e3,
        "bound": "bandwidth" if mem_s > flop_s else "compute",
        "memory_over_compute": mem_s / flop_s,
    }
