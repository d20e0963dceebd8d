"""The tiled online-softmax attention as a Triton kernel (one program per query tile).

On a GPU it runs natively; on CPU it runs under Triton's interpreter
(`TRITON_INTERPRET=1`, set before triton is imported), which checks the
indexing and the maths but says nothing about speed. The interpreter does not
catch out-of-bounds loads, so every load below is masked and the test uses a
sequence length that is not a multiple of the tile.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _attn_fwd(q_ptr, k_ptr, v_ptr, o_ptr, n, scale,
              D: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr):
    pid = tl.program_id(0)
    rq = pid * BLOCK_Q + tl.arange(0, BLOCK_Q)
    rd = tl.arange(0, D)
    q = tl.load(q_ptr + rq[:, None] * D + rd[None, :], mask=rq[:, None] < n, other=0.0)
    m = tl.full((BLOCK_Q,), float("-inf"), tl.float32)
    l = tl.zeros((BLOCK_Q,), tl.float32)
    acc = tl.zeros((BLOCK_Q, D), tl.float32)
    for ks in range(0, n, BLOCK_K):
        rk = ks + tl.arange(0, BLOCK_K)
        kmask = rk[:, None] < n
        k = tl.load(k_ptr + rk[:, None] * D + rd[None, :], mask=kmask, other=0.0)
        v = tl.load(v_ptr + rk[:, None] * D + rd[None, :], mask=kmask, other=0.0)
        s = tl.dot(q, tl.trans(k)) * scale
        s = tl.where(rk[None, :] < n, s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, 1))
        p = tl.exp(s - m_new[:, None])
        corr = tl.exp(m - m_new)
        l = l * corr + tl.sum(p, 1)
        acc = acc * corr[:, None] + tl.dot(p, v)
        m = m_new
    tl.store(o_ptr + rq[:, None] * D + rd[None, :], acc / l[:, None], mask=rq[:, None] < n)


def attention_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_q: int = 16, block_k: int = 16) -> torch.Tensor:
    n, d = q.shape
    o = torch.empty_like(q)
    grid = (triton.cdiv(n, block_q),)
    _attn_fwd[grid](q, k, v, o, n, 1.0 / d ** 0.5, D=d, BLOCK_Q=block_q, BLOCK_K=block_k)
    return o
