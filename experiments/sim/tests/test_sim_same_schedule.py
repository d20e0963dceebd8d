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
