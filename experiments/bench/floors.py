"""Noise floors that hold: pooled over every pair of arms known to run the same code path.

An A/A floor measured from one arm's three runs is three numbers: it says little about how far two
servers of identical behaviour land apart on this machine (seen: two arms that schedule identically
measured 46% apart on short-request p90 TTFT against a 2.8% floor taken from one arm's runs).
Here a metric's floor is the largest relative difference between any two runs of arms in the same
*equivalence group*: the explicit A/A pair (two independent servers of the reference) and every other
set of arms the simulator found to make identical scheduling decisions on that workload
(experiments.sim.same_schedule). The number of pairs it rests on is kept beside it.

Reading it: with k independent A/A differences, the chance that one more A/A difference exceeds
the largest of them is 1/(k+1) (exchangeability, no distribution assumed). So the floor is the
minimum detectable effect at a false-alarm rate of about 1/(k+1): with 2 pairs, 1 in 3. No verdict
is drawn below it; a delta above it is a difference at that rate, not a certainty. Pairs from runs
that shared a repeat are not fully independent, so the rate is a lower bound on the true one.
"""
from __future__ import annotations

import statistics
from itertools import combinations


def _rel_min(a: float, b: float) -> float | None:
    """|a - b| over the smaller magnitude: either way round, a pair's own delta never exceeds it."""
    lo = min(abs(a), abs(b))
    return abs(a - b) / lo if lo else None


def pair_differences(rows: list[dict], groups: list[list[str]], paired: bool) -> list[float]:
    """Relative differences between runs of arms in the same group.

    rows: one metric's {variant, repeat, value} rows. paired (servers up together, passes alternating):
    only runs of the same repeat are compared, over the smaller of the two; otherwise every two runs of
    the group, across repeats, over the median of the group's runs (the reference scale of an unpaired
    comparison of medians).
    """
    diffs = []
    for group in groups:
        mine = [r for r in rows if r["variant"] in group]
        if paired:
            for rep in sorted({r["repeat"] for r in mine}):
                vals = [r["value"] for r in mine if r["repeat"] == rep]
                diffs += [d for a, b in combinations(vals, 2) if (d := _rel_min(a, b)) is not None]
        elif len(mine) >= 2:
            vals = [r["value"] for r in mine]
            med = abs(statistics.median(vals))
            if med:
                diffs += [abs(a - b) / med for a, b in combinations(vals, 2)]
    return diffs


def pooled_floor(rows: list[dict], groups: list[list[str]], paired: bool) -> dict:
    """{floor, pairs, false_alarm}: the minimum detectable effect of one metric and what it rests on."""
    diffs = pair_differences(rows, groups, paired)
    if not diffs:
        return {"floor": None, "pairs": 0, "false_alarm": None}
    return {"floor": max(diffs), "pairs": len(diffs), "false_alarm": 1 / (len(diffs) + 1)}


def merge_groups(groups: list[list[str]]) -> list[list[str]]:
    """Union of overlapping groups (equivalence is transitive), order kept."""
    merged: list[list[str]] = []
    for g in groups:
        hit = [m for m in merged if set(m) & set(g)]
        new = [v for m in hit for v in m]
        new += [v for v in g if v not in new]
        merged = [m for m in merged if m not in hit] + [new]
    return merged
