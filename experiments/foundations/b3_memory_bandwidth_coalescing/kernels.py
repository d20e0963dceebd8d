"""Access-pattern kernels (numba CUDA) and their NumPy specs.

One thread per output element, so a warp's 32 lanes read what the warp model
says: copy_strided with stride 1 is the coalesced copy, larger strides spread
a warp over more 32-byte sectors, gather reads wherever idx points, and
gather_rows reads whole rows (the paged-KV shape: a block table of row ids).
"""

from __future__ import annotations

import numpy as np

from experiments.foundations.b_common.cuda_env import load_numba_cuda

# Decided once per process (real target with a GPU, else the simulator); the
# kernels must see `cuda` as a module global for the simulator to swap it.
cuda = load_numba_cuda()


@cuda.jit
def copy_strided(src, dst, stride, offset):
    i = cuda.grid(1)
    if i < dst.size:
        dst[i] = src[i * stride + offset]


@cuda.jit
def gather(src, idx, dst):
    i = cuda.grid(1)
    if i < dst.size:
        dst[i] = src[idx[i]]


@cuda.jit
def gather_rows(pool, rows, dst):
    """dst[r, :] = pool[rows[r], :]; a 2-D grid, x across the row so a warp reads one row's run."""
    c, r = cuda.grid(2)
    if r < dst.shape[0] and c < dst.shape[1]:
        dst[r, c] = pool[rows[r], c]


def spec_copy_strided(src: np.ndarray, n_out: int, stride: int, offset: int) -> np.ndarray:
    return src[offset : offset + n_out * stride : stride].copy()


def spec_gather(src: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return src[idx]


def spec_gather_rows(pool: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return pool[rows]


def launch_1d(kernel, n: int, *args, threads: int = 256, stream=0) -> None:
    kernel[-(-n // threads), threads, stream](*args)


def launch_rows(dst_shape: tuple[int, int], pool, rows, dst, *, threads_x: int = 128, stream=0) -> None:
    tx = min(threads_x, max(32, dst_shape[1]))
    ty = max(1, 256 // tx)
    grid = (-(-dst_shape[1] // tx), -(-dst_shape[0] // ty))
    gather_rows[grid, (tx, ty), stream](pool, rows, dst)
