"""The c2 request stream: shared prefixes, varied prompt and output lengths, staggered arrivals.

Three phases, so that the small KV pool has to make choices:
1. chat requests behind two system prompts (A, B): prefix hits while the
   prefix blocks are still held by a running request or parked in the cache;
2. a burst of long requests with no shared prefix: the pool fills, parked
   prefix blocks are evicted (LRU) and reused for other requests;
3. A again, plus a long shared document C: some A blocks must be recomputed,
   C's blocks are shared by several concurrent requests.

Token ids are seeded random ids (the KV cache does not care what they mean);
every request carries `declared_max_tokens`, what a client would send as
`max_tokens`, which is all a contiguous allocator could reserve for, while the
engine generates `output_len` tokens (as if EOS came then).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

VOCAB_LO, VOCAB_HI = 100, 31000
DECLARED_MAX_TOKENS = 256
PREFIXES = {"A": 192, "B": 96, "C": 416}  # tokens: 6, 3 and 13 blocks of 32


@dataclass(frozen=True)
class Req:
    rid: str
    group: str           # prefix group: "A", "B", "C" or "-" (no shared prefix)
    prefix_len: int
    prompt: tuple[int, ...]
    output_len: int
    declared_max_tokens: int
    arrival_step: int

    @property
    def prompt_len(self) -> int:
        return len(self.prompt)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("prompt")
        d["prompt_len"] = self.prompt_len
        return d


def _ids(rng: np.random.Generator, n: int) -> list[int]:
    return rng.integers(VOCAB_LO, VOCAB_HI, size=n).tolist()


def build_workload(seed: int = 0, scale: float = 1.0) -> list[Req]:
    """`scale` < 1 shrinks the number of requests (quick runs and tests), not their shapes."""
    rng = np.random.default_rng(seed)
    prefixes = {g: _ids(rng, n) for g, n in PREFIXES.items()}
    # (group, count, first arrival step, mean gap in steps, suffix range, output range)
    phases = [
        ("A", 6, 0, 6, (16, 160), (24, 160)),
        ("B", 5, 3, 8, (8, 96), (16, 128)),
        ("-", 5, 40, 10, (320, 560), (48, 160)),
        ("A", 5, 95, 8, (16, 160), (24, 160)),
        ("C", 5, 100, 6, (16, 64), (24, 96)),
    ]
    reqs: list[Req] = []
    for group, count, start, gap, (s_lo, s_hi), (o_lo, o_hi) in phases:
        n = max(1, round(count * scale))
        step = start
        for _ in range(n):
            prefix = prefixes.get(group, [])
            suffix = _ids(rng, int(rng.integers(s_lo, s_hi + 1)))
            out = int(rng.integers(o_lo, o_hi + 1))
            reqs.append(Req(rid="", group=group, prefix_len=len(prefix), prompt=tuple(prefix + suffix),
                            output_len=out, declared_max_tokens=max(DECLARED_MAX_TOKENS, out),
                            arrival_step=step))
            step += int(rng.integers(1, 2 * gap))
    reqs.sort(key=lambda r: (r.arrival_step, r.group))
    return [Req(**{**r.__dict__, "rid": f"r{i:02d}{r.group if r.group != '-' else 'x'}"}) for i, r in enumerate(reqs)]
