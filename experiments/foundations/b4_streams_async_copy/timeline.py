"""Analysis of recorded timelines: busy time, overlap between copies and compute, the timeline plot.

A timeline is a list of records {"stream", "op", "kind" ("copy" | "compute"),
"start_ms", "end_ms"}, times relative to one base CUDA event (GPU half) or to the
scenario's start on the host clock (the CPU analogue). This module has no CUDA in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from experiments.common.plots import plt, save_figure

KIND_COLOURS = {"copy": "#dd8452", "compute": "#4c72b0", "sync": "#c44e52"}


def union(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Merge overlapping [start, end) intervals."""
    merged: list[list[float]] = []
    for s, e in sorted(intervals):
        if e <= s:
            continue
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged]


def length(intervals: Sequence[tuple[float, float]]) -> float:
    return sum(e - s for s, e in intervals)


def intersection(
    a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Intersection of two merged interval lists."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        s, e = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if s < e:
            out.append((s, e))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def busy(records: Sequence[dict], kind: str) -> list[tuple[float, float]]:
    return union((r["start_ms"], r["end_ms"]) for r in records if r["kind"] == kind)


def summarize_timeline(records: Sequence[dict]) -> dict:
    """Makespan, busy time per kind, and how much of the shorter activity was hidden under the other.

    overlap_fraction = time copy and compute ran at once / min(copy busy, compute busy):
    1.0 means the shorter of the two was completely hidden, 0.0 means they ran one after the other.
    """
    if not records:
        raise ValueError("empty timeline")
    copy, compute = busy(records, "copy"), busy(records, "compute")
    both = length(intersection(copy, compute))
    shorter = min(length(copy), length(compute))
    start = min(r["start_ms"] for r in records)
    end = max(r["end_ms"] for r in records)
    return {
        "makespan_ms": end - start,
        "copy_busy_ms": length(copy),
        "compute_busy_ms": length(compute),
        "overlap_ms": both,
        "overlap_fraction": both / shorter if shorter > 0 else 0.0,
        "serial_ms": length(copy) + length(compute),
        "idle_ms": (end - start) - length(union([*copy, *compute])),
    }


def plot_timelines(
    scenarios: dict[str, Sequence[dict]],
    path: str | Path,
    *,
    title: str,
    source: str | None = None,
    synthetic: bool = False,
    xlabel: str = "time since first op (ms, CUDA events)",
) -> Path:
    """One lane per (scenario, stream); bars coloured by kind; the overlap fraction on each scenario."""
    lanes = []
    for name, recs in scenarios.items():
        for stream in sorted({r["stream"] for r in recs}):
            lanes.append((name, stream))
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(lanes) + 1.6))
    for y, (name, stream) in enumerate(lanes):
        for r in scenarios[name]:
            if r["stream"] == stream:
                ax.barh(
                    y,
                    r["end_ms"] - r["start_ms"],
                    left=r["start_ms"],
                    height=0.7,
                    color=KIND_COLOURS.get(r["kind"], "grey"),
                    edgecolor="white",
                    lw=0.4,
                )
    labels = []
    for name, stream in lanes:
        s = summarize_timeline(scenarios[name])
        labels.append(f"{name} [{stream}]  overlap {s['overlap_fraction']:.2f}, {s['makespan_ms']:.1f} ms")
    ax.set_yticks(range(len(lanes)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in KIND_COLOURS.values()]
    ax.legend(handles, list(KIND_COLOURS), fontsize=7, loc="lower right")
    ax.set_title(
        ("SYNTHETIC timings (test data, not a measurement): " if synthetic else "") + title, fontsize=10
    )
    return save_figure(fig, path, source=source)
