"""PNG figures for bench results and traces (matplotlib Agg via experiments.common.plots).

Each function takes a tidy DataFrame, writes one PNG and returns its path; `source`
(the result file or trace the data came from) is printed in the footer.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.common.plots import plt, save_figure
from analysis import phases as phases_mod

PHASE_COLORS = {
    "schedule": "#4e79a7", "prefix_lookup": "#76b7b2", "allocate": "#59a14f", "forward": "#f28e2b",
    "sample": "#e15759", "update": "#b07aa1", "other": "#bab0ac",
}


def _variant_colors(variants) -> dict:
    cmap = plt.get_cmap("tab10")
    return {v: cmap(i % 10) for i, v in enumerate(variants)}


def metric_bars(summary: pd.DataFrame, path: str | os.PathLike, *, title: str | None = None,
                source: str | None = None) -> Path:
    """Grouped bars per metric: workloads on x, one bar per variant, median with min-max error bars.

    Input columns: variant, workload, metric, median, min, max (one row per bar).
    """
    metrics = list(dict.fromkeys(summary["metric"]))
    variants = list(dict.fromkeys(summary["variant"]))
    colors = _variant_colors(variants)
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(4.2 * max(len(metrics), 1), 3.6), squeeze=False)
    width = 0.8 / max(len(variants), 1)
    for ax, metric in zip(axes[0], metrics):
        m = summary[summary["metric"] == metric]
        workloads = list(dict.fromkeys(m["workload"]))
        x = np.arange(len(workloads))
        for i, v in enumerate(variants):
            d = m[m["variant"] == v].set_index("workload").reindex(workloads)
            med = d["median"].to_numpy(dtype=float)
            err = np.vstack([med - d["min"].to_numpy(dtype=float), d["max"].to_numpy(dtype=float) - med])
            ax.bar(x + (i - (len(variants) - 1) / 2) * width, med, width, yerr=np.clip(err, 0, None),
                   capsize=3, color=colors[v], label=v)
        ax.set_xticks(x, workloads, rotation=15)
        ax.set_title(metric)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, source=source)


def latency_cdfs(latencies: pd.DataFrame, path: str | os.PathLike, *, kinds: tuple[str, ...] = ("ttft_ms", "itl_ms"),
                 title: str | None = None, source: str | None = None) -> Path:
    """Empirical CDF per kind (TTFT, ITL): one line per (variant, workload), log-scaled x.

    Input columns: variant, workload, kind, value.
    """
    kinds = [k for k in kinds if (latencies["kind"] == k).any()] or list(kinds[:1])
    variants = list(dict.fromkeys(latencies["variant"]))
    colors = _variant_colors(variants)
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.5 * len(kinds), 3.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        k = latencies[latencies["kind"] == kind]
        for (variant, workload), d in k.groupby(["variant", "workload"], sort=False):
            xs = np.sort(d["value"].to_numpy(dtype=float))
            ys = np.arange(1, len(xs) + 1) / len(xs)
            wl = list(dict.fromkeys(k["workload"])).index(workload)
            ax.step(xs, ys, where="post", color=colors[variant], linestyle=styles[wl % len(styles)],
                    label=f"{variant} / {workload}")
        if len(k) and (k["value"] > 0).all():
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel(kind.replace("_ms", " (ms)"))
        ax.set_ylabel("fraction of samples")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, source=source)


def step_timeline(ranges: pd.DataFrame, path: str | os.PathLike, *, max_steps: int = 4,
                  title: str | None = None, source: str | None = None, **mapping) -> Path:
    """Gantt chart of the first `max_steps` steps: one lane per process/thread, ranges colored by phase.

    Nested ranges are drawn inside their parent (thinner with depth), so the self time
    of each phase is what shows. Times are relative to each lane's first step.
    """
    df = phases_mod.phase_self_times(ranges, **mapping)
    keys = phases_mod.thread_keys(df)
    steps = phases_mod.step_table(ranges, **mapping)
    lanes = list(df.groupby(keys, sort=True).groups) if keys else [()]
    fig, ax = plt.subplots(figsize=(10, 0.9 + 0.9 * len(lanes)))
    labels = []
    for lane_no, lane in enumerate(lanes):
        lane = lane if isinstance(lane, tuple) else (lane,)
        sel = np.ones(len(df), dtype=bool)
        st_sel = np.ones(len(steps), dtype=bool)
        for k, v in zip(keys, lane):
            sel &= (df[k] == v).to_numpy()
            st_sel &= (steps[k] == v).to_numpy() if len(steps) else st_sel
        d = df[sel]
        lane_steps = steps[st_sel] if len(steps) else steps
        if len(lane_steps):
            t0 = lane_steps["ts_us"].min()
            t1 = lane_steps.sort_values("ts_us")["end_us"].iloc[:max_steps].max()
            d = d[(d["ts_us"] >= t0) & (d["ts_us"] < t1)]
        else:
            t0 = d["ts_us"].min() if len(d) else 0.0
        for depth, dd in d.groupby("depth"):
            h = 0.8 * (0.75 ** depth)
            for phase, p in dd.groupby("phase"):
                ax.broken_barh(list(zip((p["ts_us"] - t0) / 1e3, p["dur_us"] / 1e3)), (lane_no - h / 2, h),
                               facecolors=PHASE_COLORS.get(phase, "#999999"), edgecolor="white", linewidth=0.3)
        labels.append(" / ".join(str(v) for k, v in zip(keys, lane) if k in ("process", "tid")) or "all")
    ax.set_yticks(range(len(lanes)), labels, fontsize=7)
    ax.set_xlabel("time since first step (ms)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in PHASE_COLORS.values()]
    ax.legend(handles, list(PHASE_COLORS), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.invert_yaxis()
    ax.set_title(title or f"first {max_steps} steps per lane")
    fig.tight_layout()
    return save_figure(fig, path, source=source)


def phase_share_bars(shares_by_variant: dict[str, pd.DataFrame] | pd.DataFrame, path: str | os.PathLike, *,
                     title: str | None = None, source: str | None = None) -> Path:
    """Stacked 100% bars of phase self-time shares: one bar per (process, variant), side by side.

    Input: {variant: phases.phase_shares(...)} or one frame with a `variant` column
    (columns process, phase, share).
    """
    if isinstance(shares_by_variant, dict):
        df = pd.concat([s.assign(variant=v) for v, s in shares_by_variant.items()], ignore_index=True)
    else:
        df = shares_by_variant
    key = "process" if "process" in df.columns else None
    df = df.assign(process=df[key] if key else "all")
    table = df.pivot_table(index=["process", "variant"], columns="phase", values="share", aggfunc="sum",
                           fill_value=0.0, sort=False)
    order = [p for p in phases_mod.PHASES if p in table.columns] + [p for p in table.columns
                                                                    if p not in phases_mod.PHASES]
    table = table[order]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(table) + 2), 4.0))
    x = np.arange(len(table))
    bottom = np.zeros(len(table))
    for phase in order:
        vals = table[phase].to_numpy(dtype=float) * 100
        ax.bar(x, vals, 0.7, bottom=bottom, color=PHASE_COLORS.get(phase, "#999999"), label=phase)
        for xi, (b, v) in enumerate(zip(bottom, vals)):
            if v >= 6:
                ax.text(xi, b + v / 2, f"{v:.0f}%", ha="center", va="center", fontsize=7)
        bottom += vals
    ax.set_xticks(x, [f"{p}\n{v}" for p, v in table.index], fontsize=7)
    ax.set_ylabel("share of self time (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set_title(title or "time share per engine phase")
    fig.tight_layout()
    return save_figure(fig, path, source=source)
