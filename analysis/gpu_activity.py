"""GPU-side views of kernel and memcpy frames (from `analysis.nsys_sqlite`).

- stream_gaps: idle time between consecutive kernels on one stream (launch overhead,
  host-bound stretches).
- copy_compute_overlap: how much memcpy time runs while a kernel on another stream of
  the same device is running (copies hidden behind compute).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import intervals

STREAM_KEYS = ["device_id", "stream_id"]


def stream_gaps(kernels: pd.DataFrame, *, by: list[str] | None = None) -> pd.DataFrame:
    """Kernels sorted per stream with gap_before_us (start minus previous kernel's end, >= 0)."""
    by = STREAM_KEYS if by is None else by
    k = kernels.sort_values(by + ["ts_us"], ignore_index=True)
    prev_end = k.groupby(by, sort=False, dropna=False)["end_us"].shift()
    k["gap_before_us"] = (k["ts_us"] - prev_end).clip(lower=0)
    return k


def gap_summary(gaps: pd.DataFrame, *, by: list[str] | None = None) -> pd.DataFrame:
    """Per stream: kernels, busy/span time, gap mean/median/p90/p99/total, busy_fraction."""
    by = STREAM_KEYS if by is None else by
    g = gaps.groupby(by, dropna=False)
    out = g.agg(kernels=("dur_us", "size"), busy_us=("dur_us", "sum"), first_us=("ts_us", "min"),
                last_us=("end_us", "max"), gap_total_us=("gap_before_us", "sum"),
                gap_mean_us=("gap_before_us", "mean"))
    q = g["gap_before_us"].quantile([0.5, 0.9, 0.99]).unstack()
    q.columns = ["gap_p50_us", "gap_p90_us", "gap_p99_us"]
    out = out.join(q)
    out["span_us"] = out["last_us"] - out["first_us"]
    out["busy_fraction"] = out["busy_us"] / out["span_us"].where(out["span_us"] > 0)
    return out.drop(columns=["first_us", "last_us"]).reset_index()


def memcpy_overlap(memcpys: pd.DataFrame, kernels: pd.DataFrame) -> pd.DataFrame:
    """The copies with overlapped_us: time during which a kernel on another stream of the same device runs."""
    m = memcpys.copy()
    m["overlapped_us"] = 0.0
    if m.empty or kernels.empty:
        return m
    dev_m = m["device_id"].fillna(-1).to_numpy()
    dev_k = kernels["device_id"].fillna(-1).to_numpy()
    stream_m = m["stream_id"].fillna(-1).to_numpy()
    stream_k = kernels["stream_id"].fillna(-1).to_numpy()
    ks, ke = kernels["ts_us"].to_numpy(np.float64), kernels["end_us"].to_numpy(np.float64)
    ms, me = m["ts_us"].to_numpy(np.float64), m["end_us"].to_numpy(np.float64)
    overlapped = np.zeros(len(m))
    # One pass per (device, copy stream): few of them, each fully vectorised.
    for dev, stream in set(zip(dev_m.tolist(), stream_m.tolist())):
        rows = np.nonzero((dev_m == dev) & (stream_m == stream))[0]
        other = (dev_k == dev) & (stream_k != stream)
        u_s, u_e = intervals.merge(ks[other], ke[other])
        overlapped[rows] = intervals.overlap_with_union(ms[rows], me[rows], u_s, u_e)
    m["overlapped_us"] = overlapped
    return m


def copy_compute_overlap(memcpys: pd.DataFrame, kernels: pd.DataFrame, *,
                         by: list[str] | None = None) -> pd.DataFrame:
    """Per group (default: device and copy kind): copies, copy_us, overlapped_us, overlap_fraction.

    A last row with every group column "all" gives the overall fraction.
    """
    by = ["device_id", "copy_kind_name"] if by is None else by
    m = memcpy_overlap(memcpys, kernels)
    cols = by + ["copies", "copy_us", "overlapped_us", "overlap_fraction"]
    if m.empty:
        return pd.DataFrame(columns=cols)
    out = m.groupby(by, dropna=False).agg(copies=("dur_us", "size"), copy_us=("dur_us", "sum"),
                                          overlapped_us=("overlapped_us", "sum")).reset_index()
    total = pd.DataFrame([{**{c: "all" for c in by}, "copies": len(m), "copy_us": m["dur_us"].sum(),
                           "overlapped_us": m["overlapped_us"].sum()}])
    out = pd.concat([out.astype({c: "object" for c in by}), total], ignore_index=True)
    out["overlap_fraction"] = out["overlapped_us"] / out["copy_us"].where(out["copy_us"] > 0)
    return out[cols]
