"""Pooled noise floors: the A/A pair and every pair of arms that schedules identically."""
from __future__ import annotations

import pytest

from experiments.bench import aggregate, floors


def rows(values: dict[str, list[float]]) -> list[dict]:
    return [{"variant": v, "repeat": i, "value": x} for v, xs in values.items() for i, x in enumerate(xs)]


def test_one_group_unpaired_is_max_pairwise_difference_over_the_median():
    got = floors.pooled_floor(rows({"baseline": [100.0, 102.0, 99.0]}), [["baseline"]], paired=False)
    assert got["floor"] == pytest.approx(3.0 / 100.0)
    assert got["pairs"] == 3 and got["false_alarm"] == pytest.approx(1 / 4)
    assert floors.pooled_floor(rows({"baseline": [100.0]}), [["baseline"]], paired=False)["floor"] is None


def test_paired_compares_within_a_repeat_only():
    r = rows({"baseline": [100.0, 200.0], "baseline-aa": [101.0, 202.0]})
    got = floors.pooled_floor(r, [["baseline", "baseline-aa"]], paired=True)
    assert got["floor"] == pytest.approx(0.01) and got["pairs"] == 2


def test_merge_groups_is_transitive():
    assert floors.merge_groups([["a", "b"], ["c", "d"], ["b", "c"], ["e"]]) == [["a", "b", "c", "d"], ["e"]]


def run(variant, repeat, value, workload="long_docs"):
    return {"variant": variant, "repeat": repeat, "mode": "serve", "machine": {},
            "result": {"workloads": {workload: {"short_p90_ttft_ms": value}}, "peak_rss_bytes": None}}


DEFS = {v: {"engine": "baseline", "env": {}, "engine_args": a} for v, a in (
    ("baseline", {}), ("baseline-aa", {}), ("threshold", {"long_prefill_token_threshold": 256}),
    ("adaptive", {"long_prefill_token_threshold": 256, "long_prefill_token_threshold_adaptive": True}),
    ("cap", {"x": 1}))}


def test_arms_that_schedule_identically_raise_the_floor_they_measured_apart():
    # The accident the floor must catch: two arms with identical decisions measured 46% apart while
    # the reference's own runs lay 2.8% apart.
    runs = [run("baseline", i, v) for i, v in enumerate((43.0, 44.2, 43.5))]
    runs += [run("baseline-aa", i, v) for i, v in enumerate((43.9, 43.1, 44.0))]
    runs += [run("threshold", i, v) for i, v in enumerate((80.9, 79.0, 82.0))]
    runs += [run("adaptive", i, v) for i, v in enumerate((43.9, 45.0, 44.5))]
    runs += [run("cap", i, v) for i, v in enumerate((60.0, 61.0, 59.5))]
    alone = aggregate.summarize_runs(runs, DEFS)
    row = next(r for r in alone if r["metric"] == "short_p90_ttft_ms")
    assert row["noise_floor"] < 0.05 and row["vs_baseline"]["cap"]["verdict"] == "worse"
    pooled = aggregate.summarize_runs(runs, DEFS, same_schedule={"long_docs": [["threshold", "adaptive"]]})
    row = next(r for r in pooled if r["metric"] == "short_p90_ttft_ms")
    assert row["noise_floor"] > 0.4 and row["noise_floor_pairs"] == 15 + 15
    assert row["noise_floor_groups"] == [["baseline", "baseline-aa"], ["threshold", "adaptive"]]
    assert row["vs_baseline"]["cap"]["verdict"] == "within noise"  # +37% is below what A/A arms reach here


def test_a_pair_that_schedules_identically_is_labelled_so_not_judged():
    runs = [run(v, i, x) for v, xs in (("baseline", (43.0, 44.0)), ("baseline-aa", (43.5, 44.5)),
                                       ("threshold", (80.9, 79.0)), ("adaptive", (43.9, 45.0)))
            for i, x in enumerate(xs)]
    defs = {v: DEFS[v] for v in ("baseline", "baseline-aa", "threshold", "adaptive")}
    summary = aggregate.summarize_runs(runs, defs, pairs=[["threshold", "adaptive"]],
                                       same_schedule={"long_docs": [["threshold", "adaptive"]]})
    row = next(r for r in summary if r["metric"] == "short_p90_ttft_ms")
    assert row["pairs"]["threshold vs adaptive"]["verdict"] == aggregate.SAME_SCHEDULE
    assert row["vs_baseline"]["baseline-aa"]["verdict"] == aggregate.SAME_SCHEDULE
    # the identical pair's runs lie (80.9 - 43.9) / 62 apart over their median: +84% is beyond even that
    assert row["noise_floor"] == pytest.approx(37.0 / 62.0)
    assert row["vs_baseline"]["threshold"]["verdict"] == "worse"
