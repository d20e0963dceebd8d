import torch

from experiments.vllm.c4_attention_graphs_quant import quant_int8 as Q


def test_per_channel_roundtrip_error_bounded():
    torch.manual_seed(0)
    w = torch.randn(64, 128) * torch.logspace(-2, 1, 64)[:, None]  # rows of very different scale
    x = torch.randn(8, 128)
    st = Q.error_stats(w, x)
    assert st["weight_max_abs_err_over_scale"] <= 0.5 + 1e-6
    assert st["output_rel_err_int8"] < 0.02


def test_per_channel_beats_per_tensor_on_uneven_rows():
    torch.manual_seed(1)
    w = torch.randn(64, 128) * torch.logspace(-3, 1, 64)[:, None]
    wq, s = Q.quantize_per_channel(w)
    per_channel = (wq.float() * s[:, None] - w).norm()
    st = w.abs().max() / 127
    per_tensor = (torch.clamp(torch.round(w / st), -127, 127) * st - w).norm()
    assert per_channel < per_tensor


def test_bytes():
    b = Q.bytes_of(4096, 4096)
    assert b["fp32"] / b["int8_plus_fp32_scales"] > 3.99


def test_w8a16_gpu_path_skips_with_a_reason_without_cuda():
    r = Q.speed_on_gpu(256, 256, 1, 3)
    if not torch.cuda.is_available():
        assert r["skipped"] == "no CUDA device" and "w8a16_ms" not in r
    else:
        assert r["bf16_ms"] > 0 and ("w8a16_ms" in r or r["w8a16_skipped"])
