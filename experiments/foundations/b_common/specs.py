"""Published GPU figures used where no GPU is present (b1's diagram, b3's ridge point).

These are vendor numbers, never measurements: every result that uses them says so.
"""

from __future__ import annotations

KiB, MiB, GB = 2**10, 2**20, 10**9

H100_SOURCES = [
    "NVIDIA H100 Tensor Core GPU Architecture whitepaper (2022): comparison table of A100 and H100 "
    "SXM5 (132 SMs, 128 FP32 cores and 4 Tensor Cores per SM, 256 KB register file per SM, "
    "shared memory configurable up to 228 KB per SM, 50 MB L2, 5120-bit HBM3) and the SM section "
    "(256 KB combined L1 data cache / shared memory per SM, 4 SM sub-partitions each with a warp "
    "scheduler and a 16K x 32-bit register file)",
    "NVIDIA H100 Tensor Core GPU datasheet: H100 SXM 80 GB, 3.35 TB/s GPU memory bandwidth, "
    "BF16 Tensor Core 1,979 TFLOPS with sparsity (989 dense), FP32 67 TFLOPS",
    "CUDA C++ Programming Guide, compute capability 9.0 limits: 2048 resident threads (64 warps) "
    "and 32 blocks per SM, 64K 32-bit registers per SM, 227 KB shared memory per block (opt-in)",
]

H100_SXM = {
    "name": "NVIDIA H100 SXM5 80GB (spec sheet, not measured)",
    "compute_capability": "9.0",
    "sm_count": 132,
    "sm_subpartitions": 4,
    "fp32_cores_per_sm": 128,
    "tensor_cores_per_sm": 4,
    "warp_size": 32,
    "max_threads_per_multi_processor": 2048,
    "regs_per_multiprocessor": 65536,  # 32-bit registers = 256 KB
    "l1_shared_per_sm_bytes": 256 * KiB,
    "shared_memory_per_multiprocessor": 228 * KiB,
    "shared_memory_per_block_optin": 227 * KiB,
    "L2_cache_size": 50 * MiB,
    "total_memory_bytes": 80 * GB,
    "memory_bus_width": 5120,
    "hbm_bandwidth_GBps": 3350.0,
    "bf16_dense_tflops": 989.0,
    "fp32_tflops": 67.0,
    "sources": H100_SOURCES,
}

H200_SXM = {
    **H100_SXM,
    "name": "NVIDIA H200 SXM 141GB (spec sheet, not measured)",
    "total_memory_bytes": 141 * GB,
    "hbm_bandwidth_GBps": 4800.0,
    "sources": H100_SOURCES
    + ["NVIDIA H200 Tensor Core GPU datasheet: 141 GB HBM3e, 4.8 TB/s; same GH100 compute as H100 SXM"],
}


def spec_for(device_name: str | None) -> dict:
    """The spec table matching a device name (H200 if it says so, else H100 SXM)."""
    if device_name and "H200" in device_name.upper():
        return H200_SXM
    return H100_SXM


def ridge_point(tflops: float, bandwidth_GBps: float) -> float:
    """FLOP per byte at which a kernel stops being bandwidth-bound (roofline ridge)."""
    return tflops * 1e12 / (bandwidth_GBps * 1e9)
