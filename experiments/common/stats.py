"""Summary statistics used by every lab: median and spread, percentiles."""
from __future__ import annotations

import math
import statistics
from typing import Iterable, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100] (numpy's default method)."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    xs = sorted(values)
    if len(xs) == 1:
        return float(xs[0])
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


def summarize(values: Iterable[float]) -> dict:
    """median, min, max, IQR and relative spread ((max-min)/median) of repeated measurements."""
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("summarize of an empty sequence")
    med = statistics.median(xs)
    return {
        "n": len(xs),
        "median": med,
        "mean": statistics.fmean(xs),
        "min": min(xs),
        "max": max(xs),
        "p25": percentile(xs, 25),
        "p75": percentile(xs, 75),
        "stdev": statistics.stdev(xs) if len(xs) > 1 else 0.0,
        "rel_spread": (max(xs) - min(xs)) / med if med else float("nan"),
    }


def latency_summary(values_s: Iterable[float]) -> dict:
    """p50/p90/p99/max/mean of latencies given in seconds, reported in milliseconds."""
    xs = [float(v) * 1e3 for v in values_s]
    if not xs:
        raise ValueError("latency_summary of an empty sequence")
    return {
        "n": len(xs),
        "mean_ms": statistics.fmean(xs),
        "p50_ms": percentile(xs, 50),
        "p90_ms": percentile(xs, 90),
        "p99_ms": percentile(xs, 99),
        "max_ms": max(xs),
    }


def bootstrap_delta_ci(ref: Sequence[float], values: Sequence[float], *, resamples: int = 2000,
                       confidence: float = 0.95, seed: int = 0) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of the relative difference of medians, (med(values) - med(ref)) / med(ref).

    Each side is resampled with replacement independently. With 3-5 runs a side the interval is
    coarse (it can only take values built from the runs themselves), which is the honest answer
    to "how sure are we of this delta". Seeded: the same runs always give the same interval.
    None with fewer than 2 runs on a side or a zero reference median.
    """
    import random

    if len(ref) < 2 or len(values) < 2:
        return None
    rng = random.Random(seed)
    deltas = []
    for _ in range(resamples):
        r = statistics.median(rng.choices(ref, k=len(ref)))
        v = statistics.median(rng.choices(values, k=len(values)))
        if r:
            deltas.append((v - r) / r)
    if not deltas:
        return None
    alpha = (1 - confidence) / 2 * 100
    return percentile(deltas, alpha), percentile(deltas, 100 - alpha)


def bootstrap_median_ci(values: Sequence[float], *, resamples: int = 2000, confidence: float = 0.95,
                        seed: int = 0) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of the median of `values` (e.g. paired relative differences).
    Seeded; None with fewer than 2 values."""
    import random

    if len(values) < 2:
        return None
    rng = random.Random(seed)
    meds = [statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples)]
    alpha = (1 - confidence) / 2 * 100
    return percentile(meds, alpha), percentile(meds, 100 - alpha)
