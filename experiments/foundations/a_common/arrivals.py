"""Seeded open-loop arrival schedules, shared by every lab that offers load."""
from __future__ import annotations

import random


def poisson_offsets(rate_rps: float, duration_s: float, seed: int = 0) -> list[float]:
    """Arrival times in [0, duration_s) of a Poisson process at `rate_rps` (same seed, same schedule)."""
    rng = random.Random(seed)
    t, out = 0.0, []
    while (t := t + rng.expovariate(rate_rps)) < duration_s:
        out.append(t)
    return out
