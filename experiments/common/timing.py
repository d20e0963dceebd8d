"""Repeat-and-warm-up timing for micro-measurements."""
from __future__ import annotations

import time
from typing import Callable

from experiments.common.stats import summarize


def time_repeats(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> dict:
    """Call fn warmup times untimed, then `repeats` times timed; return summary of seconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    out = summarize(samples)
    out["samples_s"] = samples
    out["warmup"] = warmup
    return out
