"""Reading a torch.profiler Chrome trace: top-level ops per region, the gaps between them, GPU kernels.

The trace is JSON with "traceEvents"; complete events have ph == "X", a start
`ts` and a duration `dur` in microseconds. CPU operators have cat "cpu_op",
record_function regions cat "user_annotation", GPU kernels cat "kernel",
CUDA API calls cat "cuda_runtime" (cudaLaunchKernel and friends).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from experiments.common.stats import summarize


def load_events(path: str | Path) -> list[dict]:
    doc = json.loads(Path(path).read_text())
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    return [e for e in events if e.get("ph") == "X" and "dur" in e]


def regions(events: Iterable[dict], prefix: str) -> list[dict]:
    """record_function regions whose name starts with prefix, in time order."""
    return sorted(
        (e for e in events if e.get("cat") == "user_annotation" and e["name"].startswith(prefix)),
        key=lambda e: e["ts"],
    )


def within(events: Iterable[dict], region: dict, cat: str) -> list[dict]:
    lo, hi = region["ts"], region["ts"] + region["dur"]
    return sorted(
        (e for e in events if e.get("cat") == cat and lo <= e["ts"] and e["ts"] + e["dur"] <= hi + 1e-3),
        key=lambda e: (e["ts"], -e["dur"]),
    )


def top_level(ops: list[dict]) -> list[dict]:
    """Ops not nested inside another op of the same thread (aten::linear, not the aten::addmm inside it)."""
    out: list[dict] = []
    open_until: dict = {}
    for e in sorted(ops, key=lambda e: (e["ts"], -e["dur"])):
        tid = e.get("tid")
        if e["ts"] < open_until.get(tid, float("-inf")):
            continue
        out.append(e)
        open_until[tid] = e["ts"] + e["dur"]
    return out


def gaps_us(seq: list[dict]) -> list[float]:
    """Idle time between consecutive events: next start minus previous end (>= 0)."""
    return [max(0.0, b["ts"] - (a["ts"] + a["dur"])) for a, b in zip(seq, seq[1:])]


def span_summary(seq: list[dict], span_us: float) -> dict:
    busy = sum(e["dur"] for e in seq)
    g = gaps_us(seq)
    return {
        "count": len(seq),
        "span_us": span_us,
        "busy_us": busy,
        "busy_fraction": busy / span_us if span_us else float("nan"),
        "mean_duration_us": busy / len(seq) if seq else float("nan"),
        "gaps_us": summarize(g) if g else None,
    }


def analyse(events: list[dict], prefix: str = "forward") -> dict:
    """Per-region CPU op and GPU kernel statistics, plus the totals over all regions."""
    out = []
    for reg in regions(events, prefix):
        ops = top_level(within(events, reg, "cpu_op"))
        row = {"region": reg["name"], "cpu_ops": span_summary(ops, reg["dur"])}
        # Kernels run after their launch, so they may end after the CPU region: take those launched in it.
        launches = [e for e in within(events, reg, "cuda_runtime") if "Launch" in e["name"]]
        corr = {e.get("args", {}).get("correlation") for e in launches}
        kernels = sorted(
            (e for e in events if e.get("cat") == "kernel" and e.get("args", {}).get("correlation") in corr),
            key=lambda e: e["ts"],
        )
        if kernels:
            span = kernels[-1]["ts"] + kernels[-1]["dur"] - kernels[0]["ts"]
            row["gpu_kernels"] = span_summary(kernels, span)
            row["kernel_launches"] = {
                "count": len(launches),
                "mean_call_us": sum(e["dur"] for e in launches) / len(launches),
            }
        out.append(row)
    return {"regions": out}


def trim(events: list[dict], region: dict, extra_cats: tuple[str, ...] = ("kernel", "cuda_runtime")) -> dict:
    """A small Chrome trace of one region: its CPU ops and annotations, plus the GPU events it launched."""
    lo, hi = region["ts"], region["ts"] + region["dur"]
    keep = [
        e
        for e in events
        if lo <= e["ts"] <= hi and e.get("cat") in ("cpu_op", "user_annotation", *extra_cats)
    ]
    corr = {e.get("args", {}).get("correlation") for e in keep if e.get("cat") == "cuda_runtime"}
    keep += [
        e
        for e in events
        if e.get("cat") == "kernel" and e.get("args", {}).get("correlation") in corr and e not in keep
    ]
    slim = [{k: e[k] for k in ("name", "cat", "ph", "ts", "dur", "pid", "tid") if k in e} for e in keep]
    return {"traceEvents": slim, "displayTimeUnit": "ms"}
