"""A small decoder-only transformer with two forward paths over the same weights.

`many_small_ops`: layer norm, attention and GELU written out op by op (about
what naive model code does); `fused`: F.layer_norm, one qkv matmul,
F.scaled_dot_product_attention, F.gelu. Same maths, far fewer ops: the
difference in time per forward is per-op overhead, not arithmetic.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TinyConfig:
    d_model: int = 256
    n_heads: int = 4
    n_layers: int = 4
    seq_len: int = 32
    batch: int = 1
    vocab: int = 1024


class Block(nn.Module):
    def __init__(self, cfg: TinyConfig):
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.up = nn.Linear(d, 4 * d)
        self.down = nn.Linear(4 * d, d)

    # -- many small ops ------------------------------------------------------
    @staticmethod
    def _layer_norm(x, ln: nn.LayerNorm):
        mean = x.mean(-1, keepdim=True)
        centred = x - mean
        var = (centred * centred).mean(-1, keepdim=True)
        return centred / torch.sqrt(var + ln.eps) * ln.weight + ln.bias

    @staticmethod
    def _gelu_tanh(x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))

    def forward_small_ops(self, x):
        b, t, d = x.shape
        h = self._layer_norm(x, self.ln1)
        w_q, w_k, w_v = self.qkv.weight.chunk(3, 0)
        b_q, b_k, b_v = self.qkv.bias.chunk(3, 0)
        q, k, v = (
            F.linear(h, w, bias).view(b, t, self.n_heads, -1).transpose(1, 2)
            for w, bias in ((w_q, b_q), (w_k, b_k), (w_v, b_v))
        )
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
        att = torch.exp(scores - scores.amax(-1, keepdim=True))
        att = att / att.sum(-1, keepdim=True)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        h = self._layer_norm(x, self.ln2)
        return x + self.down(self._gelu_tanh(self.up(h)))

    # -- fused -----------------------------------------------------------------
    def forward_fused(self, x):
        b, t, d = x.shape
        h = F.layer_norm(x, (d,), self.ln1.weight, self.ln1.bias, self.ln1.eps)
        q, k, v = self.qkv(h).view(b, t, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        h = F.layer_norm(x, (d,), self.ln2.weight, self.ln2.bias, self.ln2.eps)
        return x + self.down(F.gelu(self.up(h), approximate="tanh"))


class TinyTransformer(nn.Module):
    def __init__(self, cfg: TinyConfig = TinyConfig(), *, fused: bool = False):
        super().__init__()
        self.cfg, self.fused = cfg, fused
        self.embed = nn.Embedding(cfg.vocab, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.head = nn.Linear(cfg.d_model, cfg.vocab, bias=False)

    # Set to a `name -> context manager` factory (e.g. `nvtx.annotate`) to mark the embedding,
    # each layer and the head as ranges in a trace; None costs nothing.
    range_factory = None

    def _range(self, name: str):
        return self.range_factory(name) if self.range_factory else contextlib.nullcontext()

    def forward(self, tokens):
        with self._range("embed"):
            x = self.embed(tokens)
        for j, blk in enumerate(self.blocks):
            with self._range(f"layer[{j}]"):
                x = blk.forward_fused(x) if self.fused else blk.forward_small_ops(x)
        with self._range("head"):
            return self.head(x)


def make_model(cfg: TinyConfig = TinyConfig(), *, fused: bool, device: str = "cpu", seed: int = 0):
    """The same weights for both paths (same seed)."""
    torch.manual_seed(seed)
    return TinyTransformer(cfg, fused=fused).to(device).eval()


def make_tokens(cfg: TinyConfig, device: str = "cpu", seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.vocab, (cfg.batch, cfg.seq_len), generator=g).to(device)
