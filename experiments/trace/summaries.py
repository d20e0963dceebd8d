"""CSV and PNG summaries of one `make trace` run, from any ranges frame (NVTX or torch user annotations).

Per variant: phase_shares_<v>.csv (self time per engine phase and process; shares add up to 1
per process), steps_<v>.csv (one row per engine step: phases inside it, gap before it),
step_gaps_<v>.csv (per process/thread: step time and gap percentiles), threads_<v>.csv
(per process/thread: ranges, distinct scopes, time covered by its outermost ranges),
scope_counts_<v>.csv (per process and scope: occurrences and inclusive time),
step_timeline_<v>.png (the first steps, one lane per process/thread). Across variants:
phase_shares.png.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis import phases, plots


def thread_table(ranges: pd.DataFrame) -> pd.DataFrame:
    """Per process/thread: ranges, scopes, first/last range time, time inside outermost ranges."""
    df = phases.self_times(ranges)
    keys = phases.thread_keys(df)
    top = df[df["depth"] == 0]
    out = df.groupby(keys).agg(ranges=("name", "size"), scopes=("name", "nunique"),
                               first_us=("ts_us", "min"), last_us=("end_us", "max"))
    out["covered_us"] = top.groupby(keys)["dur_us"].sum()
    out["span_us"] = out["last_us"] - out["first_us"]
    out["covered_fraction"] = out["covered_us"] / out["span_us"].where(out["span_us"] > 0)
    return out.drop(columns=["first_us", "last_us"]).reset_index()


def scope_counts(ranges: pd.DataFrame) -> pd.DataFrame:
    keys = phases.process_keys(ranges)
    g = ranges.groupby(keys + ["name"])
    return g.agg(count=("name", "size"), total_us=("dur_us", "sum")).reset_index()


def write_variant(ranges: pd.DataFrame, variant: str, out: Path, *, source: str, max_steps: int = 4) -> pd.DataFrame:
    """All per-variant files; returns the phase shares (for the cross-variant plot)."""
    if ranges.empty:
        raise ValueError(f"{variant}: no ranges in {source}")
    share = phases.phase_shares(ranges)
    share.to_csv(out / f"phase_shares_{variant}.csv", index=False)
    steps = phases.step_table(ranges)
    steps.to_csv(out / f"steps_{variant}.csv", index=False)
    if len(steps):
        phases.step_gap_summary(steps).to_csv(out / f"step_gaps_{variant}.csv", index=False)
    thread_table(ranges).to_csv(out / f"threads_{variant}.csv", index=False)
    scope_counts(ranges).to_csv(out / f"scope_counts_{variant}.csv", index=False)
    window, where = timeline_window(ranges, steps, max_steps)
    plots.step_timeline(window, out / f"step_timeline_{variant}.png", max_steps=max_steps, source=source,
                        title=f"{variant}: {where}")
    return share


def timeline_window(ranges: pd.DataFrame, steps: pd.DataFrame, n: int) -> tuple[pd.DataFrame, str]:
    """The ranges that start within `n` consecutive steps from the middle of the run, and a title.

    The middle, not the start: the first steps are the correctness gate and warm-up, the bulk is
    the timed pass. All processes of an nsys trace share one clock, so every lane shows the same
    window (a lane with no step ranges of its own starts at its first range in the window).
    Without step ranges at all (e.g. the unpatched EngineCore) the whole run is drawn.
    """
    if steps.empty:
        return ranges, "whole run (no step ranges in this trace)"
    keys = phases.thread_keys(steps)
    first_lane = steps.groupby(keys, sort=False).size().idxmax() if keys else None
    lane = steps
    if keys:
        lane_key = first_lane if isinstance(first_lane, tuple) else (first_lane,)
        for k, v in zip(keys, lane_key):
            lane = lane[lane[k] == v]
    lane = lane.sort_values("ts_us")
    mid = max(0, len(lane) // 2 - n // 2)
    sel = lane.iloc[mid:mid + n]
    t0, t1 = float(sel["ts_us"].min()), float(sel["end_us"].max())
    inside = ranges[(ranges["ts_us"] >= t0) & (ranges["ts_us"] < t1)]
    return inside, f"steps {mid}-{mid + len(sel) - 1} of {len(lane)}, every process on the same window"


def write_all(ranges_by_variant: dict[str, pd.DataFrame], sources: dict[str, str], out: Path) -> None:
    shares = {v: write_variant(r, v, out, source=sources[v]) for v, r in ranges_by_variant.items()}
    plots.phase_share_bars(shares, out / "phase_shares.png", source=", ".join(sources.values()))
