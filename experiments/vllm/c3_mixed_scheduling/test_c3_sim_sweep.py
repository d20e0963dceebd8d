"""c3's simulated sweep over max_num_batched_tokens: what the simulated scheduler did, not only that a file exists.

The committed sweep is checked for the behaviour the README reads from it (more budget -> fewer steps and more
throughput up to the plateau, every prompt token computed once, every output token produced, no step over its
budget, simulated figures labelled); the slow test re-runs part of it and needs the same numbers (no engine start:
the simulator imports vLLM's scheduler in a child process, ~30 s).
"""
from __future__ import annotations

import copy

import pytest

from experiments.vllm.c3_mixed_scheduling import sim_sweep as S


@pytest.fixture(scope="module")
def sweep():
    doc = S.sim_doc()
    if doc is None:
        pytest.skip("no committed simulated sweep (python -m experiments.vllm.c3_mixed_scheduling.sim_sweep)")
    return doc


def test_every_budget_of_the_sweep_was_simulated_and_labelled(sweep):
    res = sweep["results"]
    assert [p["max_num_batched_tokens"] for p in res["points"]] == S.BUDGETS
    assert res["label"].startswith("simulated (cost model cpu")
    assert all(p["label"] == res["label"] for p in res["points"])


def test_tokens_conserve_and_budget_holds(sweep):
    wl = sweep["results"]["workload"]
    for p in sweep["results"]["points"]:
        b = p["max_num_batched_tokens"]
        assert p["prefill_tokens"] == wl["prompt_tokens"], b      # each prompt token computed exactly once
        assert p["decode_tokens"] + wl["num_requests"] == p["output_tokens"] == wl["output_tokens"], b
        assert p["steps_over_budget"] == 0 and p["max_step_tokens"] == b, b  # saturated: every budget filled
        assert p["scheduler_config"]["max_num_batched_tokens"] == b
        assert p["scheduler_config"]["max_num_seqs"] == min(64, b)
        assert p["enable_prefix_caching"] is False


def test_more_budget_means_fewer_steps_and_more_throughput_up_to_the_plateau(sweep):
    pts = sweep["results"]["points"]
    steps = [p["steps"] for p in pts]
    tput = [p["output_tokens_per_s"] for p in pts]
    assert steps == sorted(steps, reverse=True) and steps[0] > 10 * steps[-1]
    plateau = sweep["results"]["saturation"]["first_budget_on_plateau"]
    upto = [t for p, t in zip(pts, tput) if p["max_num_batched_tokens"] <= plateau]
    assert upto == sorted(upto) and len(upto) >= 5, "throughput must not fall as the budget grows to the plateau"
    assert tput[0] < 0.5 * max(tput), "the smallest budget is far below saturation"
    # the fixed per-step cost is what a small budget pays: it falls with the step count, the token work does not
    fixed = [p["time_split_s"]["fixed"] for p in pts]
    prefill = {round(p["time_split_s"]["prefill_tokens"], 9) for p in pts}
    assert fixed == sorted(fixed, reverse=True) and len(prefill) == 1


def test_saturation_is_the_first_budget_near_the_best():
    pts = [{"max_num_batched_tokens": b, "output_tokens_per_s": t} for b, t in [(16, 100), (64, 970), (256, 990),
                                                                                (1024, 1000)]]
    assert S.saturation(pts, 0.05)["first_budget_on_plateau"] == 64
    assert S.saturation(pts, 0.005)["first_budget_on_plateau"] == 1024


def test_engine_args_follow_the_lab_and_vllms_seq_limit():
    a = S.sim_engine_args(16)
    assert a["max_num_seqs"] == 16 and a["max_num_batched_tokens"] == 16 and "model" not in a
    b = S.sim_engine_args(2048)
    assert b["max_num_seqs"] == 64 and b["enable_chunked_prefill"] and b["enable_prefix_caching"] is False


def test_comparison_uses_every_real_pass_and_flags_disagreement(sweep):
    real = S.real_doc()
    if real is None:
        pytest.skip("no real saturating run committed")
    rows = S.compare(sweep, real)
    assert {r["budget"] for r in rows} == {int(b) for b in real["results"]["budgets"]}
    fake = copy.deepcopy(real)
    r0 = next(iter(fake["results"]["budgets"].values()))
    sim_tput = next(p["output_tokens_per_s"] for p in sweep["results"]["points"]
                    if p["max_num_batched_tokens"] == r0["max_num_batched_tokens"])
    r0["across_repeats"]["output_tokens_per_s"] = {"median": sim_tput, "min": sim_tput / 2, "max": sim_tput * 2,
                                                   "all": [sim_tput / 2, sim_tput, sim_tput * 2]}
    row = next(r for r in S.compare(sweep, fake) if r["budget"] == r0["max_num_batched_tokens"])
    assert row["output_tokens_per_s"]["inside_real_range"] and row["output_tokens_per_s"]["real_over_sim"] == 1.0


def test_readme_block_labels_every_simulated_figure(sweep):
    text = S.readme_block()
    label = sweep["results"]["label"]
    header = next(line for line in text.splitlines() if line.startswith("| max_num_batched_tokens"))
    assert label in header and text.count(label) >= 2
    assert "simulated" in next(line for line in text.splitlines() if "output tok/s simulated" in line)


@pytest.mark.slow
def test_rerun_is_deterministic_and_matches_the_committed_sweep(sweep):
    budgets = [64, 2048]
    fresh = S.measure(budgets)
    committed = {p["max_num_batched_tokens"]: p for p in sweep["results"]["points"]}
    for p in fresh["points"]:
        c = committed[p["max_num_batched_tokens"]]
        for key in ("steps", "wall_s", "output_tokens_per_s", "short_ttft", "long_ttft", "time_split_s"):
            assert p[key] == c[key], (p["max_num_batched_tokens"], key)
