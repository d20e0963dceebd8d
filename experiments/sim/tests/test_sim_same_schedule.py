"""Arms that make identical scheduling decisions are found by replaying them on the same arrivals."""
from __future__ import annotations

from experiments.bench import presets
from experiments.sim import same_schedule


def arm(name: str) -> dict:
    v = presets.VARIANTS[name]
    return {**v, "engine_args": {**presets.LONG_DOCS_ENGINE_ARGS, **v["engine_args"]}}


def test_threshold_and_its_adaptive_floor_schedule_identically_at_half_the_budget():
    # At a 512-token budget and threshold 256, 0.32.0's adaptive floor (512 // n for n >= 2 long
    # prefills) never exceeds 256 and a request alone is not chunked by either: the same decisions.
    points = {name: arm(name) for name in ("baseline", "baseline-threshold", "baseline-threshold-adaptive")}
    per_arm = same_schedule.digests(points, "long_docs", 16, [0], "cpu", workload_overrides={"num_requests": 24})
    groups = same_schedule.group_by_digest(per_arm)
    assert ["baseline-threshold", "baseline-threshold-adaptive"] in groups
    assert ["baseline"] in groups  # the threshold does change what the untouched engine schedules


def test_group_by_digest_needs_every_seed_to_agree():
    assert same_schedule.group_by_digest({"a": ["x", "y"], "b": ["x", "y"], "c": ["x", "z"]}) == [["a", "b"], ["c"]]


def test_a_bench_the_replay_cannot_stand_for_says_why():
    offline = presets.resolve("smoke")
    assert same_schedule.for_bench(offline) == {"skipped": "no served workload"}
    cuda = presets.resolve("default", backend="cuda")
    assert "backend cuda" in same_schedule.for_bench(cuda)["skipped"]
    assert same_schedule.describe({"skipped": "x"}) == "not checked (x)"


def test_uncached_estimate_is_what_no_earlier_prompt_shares():
    from experiments.sim import driver

    assert driver.uncached_estimates([[1, 2, 3], [1, 2, 3, 4, 5], [9, 9], [1, 2, 7]]) == [3, 2, 2, 1]


def test_priority_from_uncached_length_serves_cache_hit_follow_ups_first():
    from experiments.sim import api

    small = {"num_sessions": 2, "turns_per_session": 8, "num_cold": 2}
    args = dict(presets.LONG_DOCS_ENGINE_ARGS)
    fcfs = api.make_job("baseline", args, "agentic", "inf", 0, "cpu", workload_overrides=small)
    prio = api.make_job({"engine": "baseline", "engine_args": {"scheduling_policy": "priority"},
                         "priority_from": "uncached"}, args, "agentic", "inf", 0, "cpu", workload_overrides=small)
    a, b = api.run_jobs([fcfs, prio])
    assert b["summary"]["short_p50_ttft_ms"] < a["summary"]["short_p50_ttft_ms"]
    assert b["summary"]["long_p90_ttft_ms"] >= a["summary"]["long_p90_ttft_ms"]


def test_arms_with_the_same_engine_and_arguments_need_no_replay():
    cfg = presets.resolve("aa")  # baseline and baseline-aa: one definition
    found = same_schedule.for_bench(cfg)
    assert found["workloads"] == {wl: [["baseline", "baseline-aa"]] for wl in cfg["request_rate"]}
