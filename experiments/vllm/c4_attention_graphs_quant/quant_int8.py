"""Weight-only int8 quantisation of a linear layer, per output channel.

W (out x in) -> W_q = round(W / s) in int8, s = max|W[row]| / 127 per output row.
y = x @ (W_q * s)^T. Activations stay in floating point. What it buys: the
weight bytes (4x fewer than fp32, 2x fewer than bf16), which is what a
memory-bound decode step streams from HBM for every token. What it costs:
rounding error, and a dequantise step that is only free when a fused kernel
does it in registers (on a GPU); done as a separate op on CPU it adds work.
"""
from __future__ import annotations

import time

import torch


def quantize_per_channel(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scale = w.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127.0
    wq = torch.clamp(torch.round(w / scale), -127, 127).to(torch.int8)
    return wq, scale.squeeze(1)


def linear_int8_weight_only(x: torch.Tensor, wq: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    # scale commutes with the matmul over the input dim: apply it to the (smaller) output
    return (x @ wq.to(x.dtype).T) * scale.to(x.dtype)


def error_stats(w: torch.Tensor, x: torch.Tensor) -> dict:
    wq, s = quantize_per_channel(w)
    y_ref = x.double() @ w.double().T
    y_q = linear_int8_weight_only(x.double(), wq, s.double())
    w_err = (wq.double() * s.double()[:, None] - w.double())
    y_bf16 = (x.bfloat16() @ w.bfloat16().T).double()
    return {
        "weight_max_abs_err_over_scale": float((w_err.abs() / s.double()[:, None]).max()),  # <= 0.5 by construction
        "output_rel_err_int8": float((y_q - y_ref).norm() / y_ref.norm()),
        "output_rel_err_bf16": float((y_bf16 - y_ref).norm() / y_ref.norm()),
    }


def bytes_of(out_f: int, in_f: int) -> dict:
    return {"fp32": 4 * out_f * in_f, "bf16": 2 * out_f * in_f, "int8_plus_fp32_scales": out_f * in_f + 4 * out_f}


def median_time_ms(fn, repeats: int = 20, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    ts.sort()
    return ts[len(ts) // 2]


def speed_on_cpu(out_f: int, in_f: int, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    w = torch.randn(out_f, in_f) / in_f ** 0.5
    x = torch.randn(batch, in_f)
    wq, s = quantize_per_channel(w)
    wb = w.bfloat16()
    xb = x.bfloat16()
    res = {"out_features": out_f, "in_features": in_f, "batch": batch,
           "fp32_ms": median_time_ms(lambda: x @ w.T, repeats),
           "bf16_ms": median_time_ms(lambda: xb @ wb.T, repeats),
           "int8_dequant_then_fp32_ms": median_time_ms(lambda: linear_int8_weight_only(x, wq, s), repeats)}
    try:  # fbgemm's dynamic int8 linear (int8 weights AND activations): a real fused CPU int8 kernel
        from torch.ao.quantization import quantize_dynamic
        lin = torch.nn.Linear(in_f, out_f, bias=False)
        lin.weight.data.copy_(w)
        qlin = quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)
        with torch.no_grad():
            res["fbgemm_dynamic_int8_ms"] = median_time_ms(lambda: qlin(x), repeats)
            res["fbgemm_rel_err"] = float((qlin(x) - x @ w.T).norm() / (x @ w.T).norm())
    except Exception as exc:  # deprecated/removed in some torch builds
        res["fbgemm_dynamic_int8_skipped"] = f"{type(exc).__name__}: {exc}"[:200]
    return res


def speed_on_gpu(out_f: int, in_f: int, batch: int, repeats: int) -> dict:
    """W8A16 on an NVIDIA GPU: bf16 matmul vs torch's fused int8-weight matmul (`torch._weight_int8pack_mm`,
    dequantisation inside the kernel), CUDA events, L2 flushed; or the reason it cannot run here."""
    if not torch.cuda.is_available():
        return {"out_features": out_f, "in_features": in_f, "batch": batch, "skipped": "no CUDA device"}
    from experiments.foundations.b_common.cuda_env import time_cuda_ms

    torch.manual_seed(0)
    w = torch.randn(out_f, in_f, device="cuda") / in_f ** 0.5
    x = torch.randn(batch, in_f, device="cuda", dtype=torch.bfloat16)
    wq, s = quantize_per_channel(w)
    wb = w.bfloat16()
    res = {"out_features": out_f, "in_features": in_f, "batch": batch, "device": torch.cuda.get_device_name(0),
           "bf16_ms": time_cuda_ms(lambda: x @ wb.T, repeats=repeats)["median"]}
    try:
        y = torch._weight_int8pack_mm(x, wq, s.bfloat16())
        res["w8a16_rel_err"] = float((y.float() - (x @ wb.T).float()).norm() / (x @ wb.T).float().norm())
        res["w8a16_ms"] = time_cuda_ms(lambda: torch._weight_int8pack_mm(x, wq, s.bfloat16()), repeats=repeats)["median"]
    except Exception as exc:  # noqa: BLE001 - not every torch build has the CUDA kernel: record why
        res["w8a16_skipped"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return res
