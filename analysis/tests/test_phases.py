"""Phase shares and step views: on the real torch trace, what was put in must come out."""
from __future__ import annotations

import pandas as pd
import pytest

from analysis import chrome_trace, examples, phases

SLACK = 0.03  # absolute share: profiler and Python overhead land in parent ranges


def test_phase_shares_match_the_time_put_in_and_add_up(torch_traces):
    ranges = chrome_trace.load_profiler_dir(torch_traces["dir"], categories=(chrome_trace.USER_ANNOTATION,))
    shares = phases.phase_shares(ranges)
    assert set(shares["phase"]) == set(phases.PHASES)
    for process, expected in torch_traces["expected_shares"].items():
        got = shares[shares["process"] == process].set_index("phase")["share"]
        assert got.sum() == pytest.approx(1.0)
        for phase in phases.PHASES:
            assert got[phase] == pytest.approx(expected.get(phase, 0.0), abs=SLACK), (process, phase)
    # Self times per range name: each range's own (slept) time, nested children excluded. A parent
    # also gets the cost of entering its children's ranges (tens of us each, up to ~130 us each on a
    # slow 2-core VM), hence the one-sided slack per nested range.
    st = phases.self_times(ranges)
    for process, own in torch_traces["expected_self_us"].items():
        got = st[st["process"] == process].groupby("name")["self_us"].sum()
        children = _descendant_counts(examples.EXAMPLE_PROCESSES[process])
        for name, us in own.items():
            allowance = 300 * children[name] * 4  # us per range entered below it, 4 steps
            assert 0.9 * us <= got[name] <= 1.1 * us + 250 * 4 + allowance, (process, name, got[name], us)


def _descendant_counts(node, out=None) -> dict[str, int]:
    """{range name: number of ranges nested under it} for an examples step plan."""
    out = {} if out is None else out
    name, _, children = node
    out[name] = sum(1 + _descendant_counts(c, out)[c[0]] for c in children)
    return out


def test_step_table_and_gaps(torch_traces):
    ranges = chrome_trace.load_profiler_dir(torch_traces["dir"], categories=(chrome_trace.USER_ANNOTATION,))
    steps = phases.step_table(ranges)
    assert steps.groupby("process").size().to_dict() == {p: 4 for p in torch_traces["expected_shares"]}
    gaps = steps["gap_before_us"].dropna()
    assert len(gaps) == 6 and (gaps >= 900).all()  # 1 ms sleep between steps
    phase_cols = [f"{p}_us" for p in phases.PHASES]
    # float64 timestamps near 5e12 us carry ~1e-3 us of rounding
    assert (steps[phase_cols].sum(axis=1) <= steps["dur_us"] + 0.05).all()
    assert (steps[phase_cols].sum(axis=1) >= 0.97 * steps["dur_us"]).all()
    summary = phases.step_gap_summary(steps)
    assert (summary["steps"] == 4).all()


def test_phase_table_is_extensible_and_unknown_is_other():
    names = pd.Series(["scheduler_step", "execute_context_2(7)_generation_0(0)", "my: new scope", None])
    assert phases.phase_of(names).tolist() == ["schedule", "other", "other", "other"]
    custom = {**phases.PHASE_BY_NAME, "my: new scope": "allocate"}
    assert phases.phase_of(names, by_name=custom).tolist()[2] == "allocate"


def test_nested_steps_count_once_and_shares_by_group():
    # In-process executor: the worker step runs inside the EngineCore step on one thread.
    r = pd.DataFrame({
        "name": ["engine_core_step", "scheduler_step", "execute_context_1(4)_generation_0(0)",
                 "gpu_model_runner: forward", "engine_core_step"],
        "ts_us": [0.0, 0.0, 10.0, 12.0, 100.0], "end_us": [50.0, 10.0, 40.0, 38.0, 130.0],
        "pid": 1, "tid": 1, "process": "inproc"})
    steps = phases.step_table(r)
    assert steps["name"].tolist() == ["engine_core_step", "engine_core_step"]
    assert steps["gap_before_us"].iloc[1] == 50
    assert steps.loc[0, "forward_us"] == 26 and steps.loc[0, "other_us"] == 10 + 4
    shares = phases.phase_shares(r, by=["tid"]).set_index("phase")["share"]
    assert shares.sum() == pytest.approx(1.0) and shares["schedule"] == pytest.approx(10 / 80)
