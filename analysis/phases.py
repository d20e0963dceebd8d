"""Engine phases from profiling ranges: self time per phase, per-step timeline, step gaps.

Input: a ranges frame with name, ts_us, end_us and whichever of process/file/pid/tid
it has (`chrome_trace.user_annotations`, `chrome_trace.load_profiler_dir`,
`nsys_sqlite.nvtx_ranges` all qualify). Ranges nest per thread; a range's self
(exclusive) time is its duration minus its children's, so self times of one process
add up to the time its ranges cover and phase shares add up to 100%.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from analysis import intervals

PHASES = ("schedule", "prefix_lookup", "allocate", "forward", "sample", "update", "other")

# Range name -> phase. Extend freely; any name not here (nor matched by a prefix
# below) counts as "other".
PHASE_BY_NAME: dict[str, str] = {
    # EngineCore step (ranges of this repo's patch 0001); the step's own time
    # outside its children is loop overhead.
    "engine_core_step": "other",
    "scheduler_step": "schedule",
    # With worker processes the forward pass runs during the wait; with the
    # in-process executor inside the dispatch (its worker ranges nest there).
    "engine_core_execute_model_dispatch": "forward",
    "engine_core_execute_model_wait": "forward",
    "engine_core_grammar_bitmask": "sample",
    "engine_core_sample_tokens": "sample",
    "scheduler_update_from_output": "update",
    # Scheduler: upstream 0.32's running-loop scopes and patch 0001's waiting loop.
    "scheduler_waiting_get_computed_blocks": "prefix_lookup",
    "scheduler_waiting_get_num_new_matched_tokens": "prefix_lookup",
    "scheduler_waiting_allocate_slots": "allocate",
    "schedule: allocate_slots": "allocate",
    "schedule: make_cached_request_data": "schedule",
    "schedule: update_after_schedule": "schedule",
    # Block pool (patch 0001).
    "block_pool_get_new_blocks": "allocate",
    # Worker, upstream vLLM 0.32 (VLLM_CUSTOM_SCOPES_FOR_PROFILING=1).
    "gpu_model_runner: preprocess": "forward",
    "gpu_model_runner: forward": "forward",
    "gpu_model_runner: postprocess": "forward",  # unpacks the model output, before sampling
    "gpu_model_runner: draft": "forward",  # speculative draft model
    "gpu_model_runner: sample": "sample",
    "gpu_model_runner: bookkeep": "update",
    "gpu_model_runner: ModelRunnerOutput": "update",
    "gpu_model_runner: AsyncGPUModelRunnerOutput": "update",
    "gpu_model_runner: set_async_sampled_token_ids": "update",
}

# Name prefix -> phase, for names that carry per-step numbers.
PHASE_BY_PREFIX: dict[str, str] = {
    # The worker's per-step range, `execute_context_N(T)_generation_N(T)`: its own
    # time outside the runner scopes is worker overhead.
    "execute_context_": "other",
}

# Ranges that delimit one engine step (EngineCore and worker).
STEP_NAME_PATTERN = re.compile(r"^(?:engine_core_step$|execute_context_)")

_GROUP_CANDIDATES = ("file", "process", "pid", "tid")


def thread_keys(ranges: pd.DataFrame) -> list[str]:
    """Columns that identify one thread's timeline (nesting never crosses them)."""
    return [c for c in _GROUP_CANDIDATES if c in ranges.columns]


def process_keys(ranges: pd.DataFrame) -> list[str]:
    return ["process"] if "process" in ranges.columns else [c for c in ("file", "pid") if c in ranges.columns]


def phase_of(names: pd.Series, *, by_name: dict[str, str] | None = None,
             by_prefix: dict[str, str] | None = None) -> pd.Series:
    """Phase of each range name ("other" when unknown)."""
    by_name = PHASE_BY_NAME if by_name is None else by_name
    by_prefix = PHASE_BY_PREFIX if by_prefix is None else by_prefix
    names = names.astype("string")
    out = names.map(by_name)
    for prefix, phase in by_prefix.items():
        out = out.mask(out.isna() & names.str.startswith(prefix).fillna(False), phase)
    return out.fillna("other").astype("object")


def _with_end(ranges: pd.DataFrame) -> pd.DataFrame:
    if "end_us" not in ranges.columns:
        ranges = ranges.assign(end_us=ranges["ts_us"] + ranges["dur_us"])
    if "dur_us" not in ranges.columns:
        ranges = ranges.assign(dur_us=ranges["end_us"] - ranges["ts_us"])
    return ranges


def self_times(ranges: pd.DataFrame) -> pd.DataFrame:
    """The ranges with depth, parent (index label or -1) and self_us (exclusive time) added."""
    df = _with_end(ranges).copy()
    groups = intervals.group_codes(df, thread_keys(df))
    ts = df["ts_us"].to_numpy(dtype=np.float64)
    end = df["end_us"].to_numpy(dtype=np.float64)
    depth, parent = intervals.nesting(ts, end, groups)
    df["depth"] = depth
    labels = df.index.to_numpy()
    df["parent"] = np.where(parent >= 0, labels[np.maximum(parent, 0)], -1)
    df["self_us"] = intervals.self_time(ts, end, parent)
    return df


def phase_self_times(ranges: pd.DataFrame, **mapping) -> pd.DataFrame:
    """self_times plus a `phase` column."""
    df = self_times(ranges)
    df["phase"] = phase_of(df["name"], **mapping)
    return df


def phase_shares(ranges: pd.DataFrame, *, by: list[str] | None = None, **mapping) -> pd.DataFrame:
    """Self time and share per phase, per process (or `by`).

    Returns columns by..., phase, self_us, share; every phase in PHASES appears for
    every group (0 when absent) and shares add up to 1 within a group.
    `mapping` may pass by_name= / by_prefix= to override the phase tables.
    """
    df = phase_self_times(ranges, **mapping)
    by = process_keys(df) if by is None else list(by)
    sums = df.groupby(by + ["phase"])["self_us"].sum()
    phases = list(PHASES) + sorted(set(df["phase"]) - set(PHASES))
    groups = sums.index.droplevel("phase").unique() if len(sums) else []
    full = pd.MultiIndex.from_tuples(
        [(*(g if isinstance(g, tuple) else (g,)), p) for g in groups for p in phases], names=by + ["phase"])
    out = sums.reindex(full, fill_value=0.0).rename("self_us").reset_index()
    total = out.groupby(by)["self_us"].transform("sum")
    out["share"] = out["self_us"] / total.where(total > 0)
    return out


def is_step(names: pd.Series, pattern: re.Pattern = STEP_NAME_PATTERN) -> pd.Series:
    return names.astype("string").str.contains(pattern).fillna(False).astype(bool)


def step_table(ranges: pd.DataFrame, *, pattern: re.Pattern = STEP_NAME_PATTERN, **mapping) -> pd.DataFrame:
    """One row per engine step: when it ran, the gap before it, self time per phase inside it.

    Steps are the outermost ranges matching `pattern` on each thread. Columns: the
    thread keys, step (0, 1, ... per thread), name, ts_us, end_us, dur_us,
    gap_before_us (idle time since the previous step on that thread; NaN for the
    first), ranges (how many ranges it holds), and <phase>_us for each phase.
    """
    df = phase_self_times(ranges, **mapping)
    keys = thread_keys(df)
    steps = df[is_step(df["name"], pattern)].sort_values(keys + ["ts_us", "dur_us"],
                                                          ascending=[True] * (len(keys) + 1) + [False])
    # Drop a step inside another step (an in-process executor runs the worker step
    # inside the EngineCore step, on the same thread): an earlier step reaches past its end.
    reach = (steps.groupby(keys, sort=False)["end_us"] if keys else steps["end_us"]).cummax()
    prev_reach = reach.groupby([steps[k] for k in keys], sort=False).shift() if keys else reach.shift()
    steps = steps[~(prev_reach >= steps["end_us"])]
    cols = keys + ["step", "name", "ts_us", "end_us", "dur_us", "gap_before_us", "ranges"] + [
        f"{p}_us" for p in PHASES]
    if steps.empty:
        return pd.DataFrame(columns=cols)
    steps = steps.assign(step_id=steps.index)
    g = steps.groupby(keys, sort=False) if keys else None
    steps["step"] = g.cumcount() if keys else np.arange(len(steps))
    prev_end = g["end_us"].shift() if keys else steps["end_us"].shift()
    steps["gap_before_us"] = steps["ts_us"] - prev_end
    # Assign every range to the step that encloses its start (same thread).
    left = df.sort_values("ts_us")
    right = steps[keys + ["ts_us", "end_us", "step_id"]].rename(columns={"end_us": "step_end_us"}).sort_values("ts_us")
    joined = pd.merge_asof(left, right, on="ts_us", by=keys or None, direction="backward")
    joined = joined[joined["ts_us"] < joined["step_end_us"]]
    per_phase = joined.pivot_table(index="step_id", columns="phase", values="self_us", aggfunc="sum", fill_value=0.0)
    per_phase = per_phase.reindex(columns=list(PHASES), fill_value=0.0).add_suffix("_us")
    counts = joined.groupby("step_id").size().rename("ranges")
    out = steps.join(per_phase, on="step_id").join(counts, on="step_id")
    out[list(per_phase.columns)] = out[list(per_phase.columns)].fillna(0.0)
    return out[cols].reset_index(drop=True)


def step_gap_summary(steps: pd.DataFrame) -> pd.DataFrame:
    """Per process/thread: steps, median/p90/max step time and gap between steps (us)."""
    keys = [c for c in _GROUP_CANDIDATES if c in steps.columns]
    g = steps.groupby(keys) if keys else steps.groupby(lambda _: 0)
    return g.agg(
        steps=("dur_us", "size"),
        step_median_us=("dur_us", "median"),
        step_p90_us=("dur_us", lambda s: s.quantile(0.9)),
        gap_median_us=("gap_before_us", "median"),
        gap_p90_us=("gap_before_us", lambda s: s.quantile(0.9)),
        gap_max_us=("gap_before_us", "max"),
        gap_total_us=("gap_before_us", "sum"),
    ).reset_index()
