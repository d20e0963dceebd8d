"""Attention three ways: the naive reference, tiled with online softmax (FlashAttention's
data reuse), and a model of the HBM bytes each one moves.

The tiled version keeps a running max m, running denominator l and an
unnormalised output accumulator per query row; each K/V tile rescales what is
already there by exp(m_old - m_new). It never materialises the N x N score
matrix, so "HBM" (the full arrays) is read in tiles and S/P live only in a
tile-sized buffer ("SRAM"). `TrafficCounter` counts the elements the code reads
from and writes to the full arrays, and the closed forms below must agree with it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def attention_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool = False) -> np.ndarray:
    s = (q @ k.T) / np.sqrt(q.shape[-1])
    if causal:
        s = np.where(np.tril(np.ones(s.shape, bool)), s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    return (p / p.sum(axis=-1, keepdims=True)) @ v


@dataclass
class TrafficCounter:
    read: int = 0   # elements read from the full (HBM) arrays
    written: int = 0


def attention_naive_counted(q, k, v, counter: TrafficCounter) -> np.ndarray:
    """Unfused: S = QK^T written out, softmax reads S and writes P, then P @ V (each step a kernel)."""
    n, d = q.shape
    s = (q @ k.T) / np.sqrt(d)
    counter.read += 2 * n * d
    counter.written += n * n
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    counter.read += n * n
    counter.written += n * n
    o = p @ v
    counter.read += n * n + n * d
    counter.written += n * d
    return o


def attention_tiled(q, k, v, block_q: int = 64, block_k: int = 64, causal: bool = False,
                    counter: TrafficCounter | None = None) -> np.ndarray:
    n, d = q.shape
    scale = 1.0 / np.sqrt(d)
    out = np.empty_like(q)
    for qs in range(0, n, block_q):
        qb = q[qs:qs + block_q]
        rows = qb.shape[0]
        m = np.full(rows, -np.inf)
        l = np.zeros(rows)
        acc = np.zeros((rows, d))
        if counter:
            counter.read += qb.size
        k_end = min(n, qs + rows) if causal else n
        for ks in range(0, k_end, block_k):
            kb, vb = k[ks:ks + block_k], v[ks:ks + block_k]
            if counter:
                counter.read += kb.size + vb.size
            s = (qb @ kb.T) * scale
            if causal:
                qi = np.arange(qs, qs + rows)[:, None]
                kj = np.arange(ks, ks + kb.shape[0])[None, :]
                s = np.where(kj <= qi, s, -np.inf)
            m_new = np.maximum(m, s.max(axis=1))
            p = np.exp(s - m_new[:, None])
            correction = np.exp(m - m_new)  # rescale what was accumulated under the old max
            l = l * correction + p.sum(axis=1)
            acc = acc * correction[:, None] + p @ vb
            m = m_new
        out[qs:qs + rows] = acc / l[:, None]
        if counter:
            counter.written += rows * d
    return out


def naive_traffic_elements(n: int, d: int) -> int:
    return 4 * n * d + 4 * n * n  # Q,K,V,O + S written, S read, P written, P read


def tiled_traffic_elements(n: int, d: int, block_q: int, block_k: int | None = None) -> int:
    tq = -(-n // block_q)
    return 2 * n * d + tq * 2 * n * d  # Q read once, O written once, all of K and V once per query tile


def traffic_table(seq_lens, d: int, blocks, bytes_per_el: int = 2) -> list[dict]:
    rows = []
    for n in seq_lens:
        naive = naive_traffic_elements(n, d) * bytes_per_el
        for b in blocks:
            tiled = tiled_traffic_elements(n, d, b) * bytes_per_el
            rows.append({"seq_len": n, "head_dim": d, "block_q": b, "naive_bytes": naive, "tiled_bytes": tiled,
                         "ratio": naive / tiled,
                         "sram_bytes_per_tile": (b * d + 2 * b * d + b * b + b * d) * 4})
    return rows
