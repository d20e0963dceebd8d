"""What one EngineCore step did: how many prompt (prefill) and generated (decode) tokens it ran.

The scheduler reports, per request, how many tokens it scheduled this step
(`SchedulerOutput.num_scheduled_tokens`). Whether those are prefill or decode
tokens depends on where the request stood *before* the step: tokens up to its
prompt length are prefill (possibly one chunk of it, with chunked prefill),
tokens past it are decode. We snapshot `num_computed_tokens` of every request
before `schedule()` runs, so the split does not depend on whether the scheduler
advances the counter inside or after `schedule()`.
"""
from __future__ import annotations

import statistics
from typing import Iterable, Mapping


def split_tokens(scheduled: int, computed_before: int, prompt_len: int) -> tuple[int, int]:
    """(prefill, decode) tokens of one request's `scheduled` tokens this step."""
    prefill = max(0, min(scheduled, prompt_len - computed_before))
    return prefill, scheduled - prefill


def classify_step(num_scheduled: Mapping[str, int], computed_before: Mapping[str, int],
                  prompt_lens: Mapping[str, int]) -> dict:
    """Token and request counts of one step, and its kind: prefill / decode / mixed / idle."""
    prefill_tokens = decode_tokens = prefill_reqs = decode_reqs = context = 0
    for rid, n in num_scheduled.items():
        p, d = split_tokens(n, computed_before.get(rid, 0), prompt_lens[rid])
        prefill_tokens += p
        decode_tokens += d
        prefill_reqs += p > 0
        decode_reqs += d > 0
        if d:  # tokens already in the KV cache that this decode attends over
            context += computed_before.get(rid, 0)
    kind = ("mixed" if prefill_tokens and decode_tokens else "prefill" if prefill_tokens
            else "decode" if decode_tokens else "idle")
    return {"prefill_tokens": prefill_tokens, "decode_tokens": decode_tokens,
            "prefill_reqs": prefill_reqs, "decode_reqs": decode_reqs, "kind": kind,
            "decode_context_mean": context / decode_reqs if decode_reqs else 0.0}


def steps_of(records: Iterable[dict], phase: str | None = None, kind: str | None = None) -> list[dict]:
    return [r for r in records if (phase is None or r["phase"] == phase) and (kind is None or r["kind"] == kind)]


def fit_line(xs: list[float], ys: list[float]) -> dict:
    """Least-squares y = intercept + slope * x (intercept: the per-step cost no token pays for)."""
    if len(xs) < 2 or len(set(xs)) < 2:
        raise ValueError("need at least two distinct x values")
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    intercept = my - slope * mx
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return {"intercept": intercept, "slope": slope, "r2": 1 - ss_res / ss_tot if ss_tot else 1.0, "n": len(xs)}
