"""The if/else kernel (numba CUDA) and its NumPy spec.

Both branches run `work` dependent fused multiply-adds with different
constants: equal cost, so the only thing that changes between patterns is how
many paths each warp has to issue. Loops (not one-liners) keep the compiler
from turning the branch into a select, which would hide the divergence.
"""

from __future__ import annotations

import numpy as np

from experiments.foundations.b_common.cuda_env import load_numba_cuda

# float32 constants: numba types module-level np.float32 globals as float32,
# so the kernel does not silently promote to float64.
IF_MUL, IF_ADD = np.float32(0.999), np.float32(0.001)
ELSE_MUL, ELSE_ADD = np.float32(0.5), np.float32(0.25)

WARP_UNIFORM, LANE_PARITY, DATA_DEPENDENT = 0, 1, 2
CONDITIONS = {
    WARP_UNIFORM: "(tid // 32) % 2 == 0   (same answer for all 32 lanes of a warp)",
    LANE_PARITY: "tid % 2 == 0            (neighbouring lanes disagree)",
    DATA_DEPENDENT: "x[tid] < threshold      (depends on the data)",
}

# Decided once per process: the real target when torch sees a GPU, else the simulator.
# The kernel must see `cuda` as a module global: the simulator swaps globals that
# point at numba.cuda for its fake module, not closure variables.
cuda = load_numba_cuda()


@cuda.jit
def if_else_kernel(x, out, condition, threshold, work):
    tid = cuda.grid(1)
    if tid >= x.size:
        return
    if condition == 0:
        take_if = (tid // 32) % 2 == 0
    elif condition == 1:
        take_if = tid % 2 == 0
    else:
        take_if = x[tid] < threshold
    v = x[tid]
    if take_if:
        for _ in range(work):
            v = v * IF_MUL + IF_ADD
    else:
        for _ in range(work):
            v = v * ELSE_MUL + ELSE_ADD
    out[tid] = v


def spec_takes_if(condition: int, x: np.ndarray, threshold: float) -> np.ndarray:
    """Which threads take the `if` side: the kernel's condition in NumPy."""
    tid = np.arange(x.size)
    if condition == WARP_UNIFORM:
        return (tid // 32) % 2 == 0
    if condition == LANE_PARITY:
        return tid % 2 == 0
    return x < np.float32(threshold)


def spec_output(x: np.ndarray, takes_if: np.ndarray, work: int) -> np.ndarray:
    v = x.astype(np.float32).copy()
    for _ in range(work):
        v = np.where(takes_if, v * IF_MUL + IF_ADD, v * ELSE_MUL + ELSE_ADD).astype(np.float32)
    return v


def launch(
    x_dev, out_dev, condition: int, threshold: float, work: int, *, threads_per_block: int = 128, stream=0
) -> None:
    n = x_dev.shape[0]
    blocks = -(-n // threads_per_block)
    if_else_kernel[blocks, threads_per_block, stream](x_dev, out_dev, condition, np.float32(threshold), work)
