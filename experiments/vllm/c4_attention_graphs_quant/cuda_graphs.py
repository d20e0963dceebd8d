"""CUDA Graphs: the launch overhead of a decode step made of many tiny kernels, eager vs replayed.

A decode step of a small model at batch 1 is dozens of kernels that each do
microseconds of work; the CPU spends about as long launching each one. A CUDA
Graph records the whole sequence once and replays it with one launch. This
needs an NVIDIA GPU: CPU-only torch raises on `torch.cuda.CUDAGraph()`, so on
CPU `measure_cuda_graph` returns a skip reason and no numbers.
"""
from __future__ import annotations

import torch


def skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device: CUDA Graphs need an NVIDIA GPU (CPU-only torch raises on torch.cuda.CUDAGraph())"
    return None


def tiny_decode_step(layers: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
    # per layer: rmsnorm-ish, two small matmuls, activation, residual: ~8 kernels, each tiny at batch 1
    for w1, w2 in layers:
        h = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)
        h = torch.nn.functional.silu(h @ w1) @ w2
        x = x + h
    return x


def count_kernels(fn) -> int:
    """GPU kernels one call of `fn` launches, counted by the torch profiler's CUDA activity (not estimated)."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def measure_cuda_graph(n_layers: int = 16, hidden: int = 256, batch: int = 1, iters: int = 200, repeats: int = 5) -> dict:
    reason = skip_reason()
    if reason:
        return {"skipped": reason}
    dev = torch.device("cuda")
    torch.manual_seed(0)
    layers = [(torch.randn(hidden, 4 * hidden, device=dev) * 0.02, torch.randn(4 * hidden, hidden, device=dev) * 0.02)
              for _ in range(n_layers)]
    static_x = torch.randn(batch, hidden, device=dev)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # warm-up on a side stream, as the docs require before capture
        for _ in range(3):
            tiny_decode_step(layers, static_x)
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = tiny_decode_step(layers, static_x)
    eager_out = tiny_decode_step(layers, static_x)
    graph.replay()
    torch.cuda.synchronize()
    max_diff = float((static_out - eager_out).abs().max())

    def time_us(fn) -> list[float]:
        out = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                fn()
            end.record()
            torch.cuda.synchronize()
            out.append(start.elapsed_time(end) * 1e3 / iters)
        return out

    kernels = count_kernels(lambda: tiny_decode_step(layers, static_x))
    eager = time_us(lambda: tiny_decode_step(layers, static_x))
    replay = time_us(graph.replay)
    return {"device": torch.cuda.get_device_name(0), "n_layers": n_layers, "hidden": hidden, "batch": batch,
            "kernels_per_step": kernels,
            "kernels_per_step_method": "torch.profiler CUDA activity events of one eager step",
            "eager_us_per_step": eager, "graph_us_per_step": replay,
            "speedup_median": sorted(eager)[repeats // 2] / sorted(replay)[repeats // 2],
            "max_abs_diff_graph_vs_eager": max_diff}
