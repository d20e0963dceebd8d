"""Vectorised interval algebra on numpy arrays: nesting, self time, union, overlap.

Traces hold up to millions of ranges, so nothing here loops over rows in Python;
the only Python loops run over nesting depth (a handful of levels).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def group_codes(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """One integer per distinct combination of `cols` (0 everywhere when cols is empty)."""
    if not cols:
        return np.zeros(len(df), dtype=np.int64)
    return df.groupby(cols, sort=False, dropna=False).ngroup().to_numpy(dtype=np.int64)


def nesting(starts: np.ndarray, ends: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth and parent of each range, ranges nesting only within their group (thread).

    Returns (depth, parent) aligned with the inputs; parent is the position of the
    innermost enclosing range or -1. At equal start times the longer range is the
    parent; a range that ends exactly where another starts does not enclose it.
    Ranges that overlap without nesting get the earlier one as parent (their
    child time is clipped to the parent in `self_time`).
    """
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    groups = np.asarray(groups, dtype=np.int64)
    n = len(starts)
    depth = np.zeros(n, dtype=np.int64)
    parent = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return depth, parent
    # Order ranges: by group, start, longest first (an enclosing range precedes its children).
    order = np.lexsort((-(ends - starts), starts, groups))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    # Sweep events: ends (kind 0) before starts (kind 1) at the same time, so touching
    # ranges are siblings; a zero-length range's own end (kind 2) follows its start.
    zero = ends <= starts
    ev_time = np.concatenate([starts, ends])
    ev_group = np.concatenate([groups, groups])
    ev_kind = np.concatenate([np.ones(n, np.int64), np.where(zero, 2, 0)])
    ev_delta = np.concatenate([np.ones(n, np.int64), -np.ones(n, np.int64)])
    ev_tie = np.concatenate([rank, -rank])  # starts in sorted order; inner ends first
    ev_order = np.lexsort((ev_tie, ev_kind, ev_time, ev_group))
    open_after = np.cumsum(ev_delta[ev_order])
    is_start = ev_order < n
    depth[ev_order[is_start]] = open_after[is_start] - 1
    # Parent of a range at depth d: the latest range at depth d-1 before it (sorted order)
    # in the same group. Forward-fill positions level by level.
    d_sorted = depth[order]
    g_sorted = groups[order]
    pos = np.arange(n)
    for level in range(1, int(d_sorted.max()) + 1 if n else 1):
        cand = np.where(d_sorted == level - 1, pos, -1)
        last = np.maximum.accumulate(cand)
        rows = np.nonzero(d_sorted == level)[0]
        p = last[rows]
        ok = (p >= 0) & (g_sorted[np.maximum(p, 0)] == g_sorted[rows])
        parent[order[rows[ok]]] = order[p[ok]]
    return depth, parent


def self_time(starts: np.ndarray, ends: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Duration minus time covered by direct children (exclusive time), never negative."""
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    dur = ends - starts
    has = parent >= 0
    child = np.nonzero(has)[0]
    p = parent[child]
    clipped = np.minimum(ends[child], ends[p]) - np.maximum(starts[child], starts[p])
    covered = np.bincount(p, weights=np.clip(clipped, 0, None), minlength=len(starts))
    return np.clip(dur - covered, 0, None)


def merge(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of intervals as sorted, disjoint (starts, ends)."""
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    if len(starts) == 0:
        return starts, ends
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    new_block = np.ones(len(s), dtype=bool)
    new_block[1:] = s[1:] > reach[:-1]
    block = np.cumsum(new_block) - 1
    m_start = s[new_block]
    m_end = np.zeros(len(m_start))
    np.maximum.at(m_end, block, e)
    return m_start, m_end


def union_length(starts: np.ndarray, ends: np.ndarray) -> float:
    s, e = merge(starts, ends)
    return float(np.sum(e - s))


def overlap_with_union(q_starts: np.ndarray, q_ends: np.ndarray,
                       u_starts: np.ndarray, u_ends: np.ndarray) -> np.ndarray:
    """For each query interval, the length covered by the disjoint sorted union (u_starts, u_ends)."""
    q_starts = np.asarray(q_starts, dtype=np.float64)
    q_ends = np.asarray(q_ends, dtype=np.float64)
    if len(u_starts) == 0:
        return np.zeros(len(q_starts))
    lens = u_ends - u_starts
    before = np.concatenate([[0.0], np.cumsum(lens)])

    def covered_until(t: np.ndarray) -> np.ndarray:
        i = np.searchsorted(u_starts, t, side="right") - 1
        inside = np.clip(t - u_starts[np.maximum(i, 0)], 0, lens[np.maximum(i, 0)])
        return np.where(i >= 0, before[np.maximum(i, 0)] + inside, 0.0)

    return np.clip(covered_until(q_ends) - covered_until(q_starts), 0, None)
