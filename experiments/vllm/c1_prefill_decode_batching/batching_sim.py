"""Static waves vs continuous batching, counted in engine steps (pure, no engine).

Model: `slots` sequences can run at once; every running sequence gets one token
per step; a request admitted at step s gets its first token in step s (its
prefill step) and its last in step s + L - 1, then frees its slot.
- static: requests in waves of `slots`; a wave holds its slots until its longest
  request is done, the next wave starts after that.
- continuous: before every step, free slots are refilled from the queue (FIFO).
Ignores that a prefill step costs more than a decode step and that a step's cost
grows with the batch: the engine run measures those; this gives the slot arithmetic.
"""
from __future__ import annotations

import numpy as np


def output_lengths(n: int, seed: int, median: int = 48, sigma: float = 0.9, lo: int = 4, hi: int = 512) -> list[int]:
    """Long-tailed (log-normal) output lengths: most requests short, a few long, like chat traffic."""
    rng = np.random.default_rng(seed)
    return [int(x) for x in np.clip(np.round(rng.lognormal(np.log(median), sigma, n)), lo, hi)]


def simulate_static(lengths: list[int], slots: int) -> dict:
    first, last, occupancy = [], [], []
    step = 0
    for w in range(0, len(lengths), slots):
        wave = lengths[w:w + slots]
        span = max(wave)
        for L in wave:
            first.append(step)
            last.append(step + L - 1)
        occupancy += [sum(L > k for L in wave) for k in range(span)]
        step += span
    return _summary(lengths, slots, step, first, last, occupancy)


def simulate_continuous(lengths: list[int], slots: int) -> dict:
    n = len(lengths)
    first, last = [0] * n, [0] * n
    running: dict[int, int] = {}  # request -> tokens still to produce
    queue = list(range(n))
    step, occupancy = 0, []
    while queue or running:
        while queue and len(running) < slots:
            i = queue.pop(0)
            running[i] = lengths[i]
            first[i] = step
        occupancy.append(len(running))
        for i in list(running):
            running[i] -= 1
            if running[i] == 0:
                last[i] = step
                del running[i]
        step += 1
    return _summary(lengths, slots, step, first, last, occupancy)


def _summary(lengths, slots, steps, first, last, occupancy) -> dict:
    return {"steps": steps, "tokens": sum(lengths), "slot_utilisation": sum(lengths) / (steps * slots),
            "first_step": first, "last_step": last, "occupancy": occupancy,
            "mean_first_step": float(np.mean(first)), "mean_last_step": float(np.mean(last))}


def decode_time(sim: dict, intercept_s: float, slope_s: float) -> float:
    """Seconds the simulated steps take if a step costs intercept + slope x (sequences in it): the decode fit."""
    return sum(intercept_s + slope_s * n for n in sim["occupancy"])


def compare(lengths: list[int], slots: int, step_fit: dict | None = None) -> dict:
    """Step counts of both policies; with a measured step-time fit, also their predicted time."""
    s, c = simulate_static(lengths, slots), simulate_continuous(lengths, slots)
    drop = ("first_step", "last_step", "occupancy")
    out = {"static": {k: v for k, v in s.items() if k not in drop},
           "continuous": {k: v for k, v in c.items() if k not in drop},
           "predicted_speedup": s["steps"] / c["steps"]}
    if step_fit:
        ts = decode_time(s, step_fit["intercept"], step_fit["slope"])
        tc = decode_time(c, step_fit["intercept"], step_fit["slope"])
        out["static"]["predicted_time_s"], out["continuous"]["predicted_time_s"] = ts, tc
        out["predicted_time_speedup"] = ts / tc
    return out
