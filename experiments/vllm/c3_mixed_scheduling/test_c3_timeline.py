"""Pure parts of c3: arrival schedule, step classification, TTFT, ITL spikes, head-of-line attribution."""
import pytest

from experiments.vllm.c3_mixed_scheduling import timeline as T
from experiments.vllm.c3_mixed_scheduling.engine import external_id
from experiments.vllm.c3_mixed_scheduling.report import fmt
from experiments.vllm.c3_mixed_scheduling.workload import poisson_arrivals

META = {
    "s0": {"kind": "short", "arrival_s": 0.0, "prompt_len": 4, "output_tokens": 4},
    "L": {"kind": "long", "arrival_s": 0.05, "prompt_len": 100, "output_tokens": 2},
    "s1": {"kind": "short", "arrival_s": 0.06, "prompt_len": 4, "output_tokens": 2},
}


def make_run():
    """s0 decodes at 10 ms a step; L's 100-token prefill takes one 100 ms step (no chunking);
    s1 arrives during it and waits for it."""
    steps = [
        {"t_start": 0.00, "t_end": 0.01, "reqs": [["s0", 4, 0]]},
        {"t_start": 0.01, "t_end": 0.02, "reqs": [["s0", 0, 1]]},
        {"t_start": 0.02, "t_end": 0.03, "reqs": [["s0", 0, 1]]},
        {"t_start": 0.05, "t_end": 0.15, "reqs": [["s0", 0, 1], ["L", 100, 0]]},
        {"t_start": 0.15, "t_end": 0.16, "reqs": [["L", 0, 1], ["s1", 4, 0]]},
        {"t_start": 0.16, "t_end": 0.17, "reqs": [["s1", 0, 1]]},
    ]
    tokens = {"s0": [[0, 0.01, 1], [1, 0.02, 1], [2, 0.03, 1], [3, 0.15, 1]],
              "L": [[3, 0.15, 1], [4, 0.16, 1]],
              "s1": [[4, 0.16, 1], [5, 0.17, 1]]}
    return {"steps": steps, "tokens": tokens, "wall_s": 0.17}


def test_poisson_arrivals_fixed_and_sorted():
    a = poisson_arrivals(200, 16.0, seed=3)
    assert a == poisson_arrivals(200, 16.0, seed=3)
    assert a != poisson_arrivals(200, 16.0, seed=4)
    assert a[0] == 0.0 and all(x < y for x, y in zip(a, a[1:]))
    # mean gap of a rate-16 process is 1/16 s
    assert (a[-1] / 199) == pytest.approx(1 / 16, rel=0.2)
    assert poisson_arrivals(0, 1.0, 0) == []
    with pytest.raises(ValueError):
        poisson_arrivals(3, 0.0, 0)


def test_build_steps_splits_long_short_prefill_and_decode():
    steps = T.build_steps(make_run()["steps"], META)
    s = steps[3]
    assert (s.long_prefill, s.short_prefill, s.decode, s.total) == (100, 0, 1, 101)
    assert s.has_long_prefill and not s.pure_decode
    assert steps[1].pure_decode and not steps[0].pure_decode
    assert s.duration == pytest.approx(0.1)


def test_ttft_from_scheduled_arrival():
    tt = T.ttfts(make_run()["tokens"], META)
    assert tt["s0"] == pytest.approx(0.01)
    assert tt["s1"] == pytest.approx(0.10)  # arrived at 0.06, first token at the end of step 4
    assert tt["L"] == pytest.approx(0.10)


def test_itl_gaps_tied_to_steps_and_spikes():
    run = make_run()
    steps = T.build_steps(run["steps"], META)
    gaps = T.itl_gaps(run["tokens"], META, steps)
    s0 = [g for g in gaps if g["rid"] == "s0"]
    assert [round(g["gap_s"], 3) for g in s0] == [0.01, 0.01, 0.12]
    assert [g["long_prefill_step"] for g in s0] == [False, False, True]
    thr = T.spike_threshold(gaps, steps)
    assert thr == pytest.approx(3 * 0.01)
    sp = T.spikes(gaps, thr)
    assert len(sp) == 1 and sp[0]["rid"] == "s0" and sp[0]["long_prefill_tokens"] == 100


def test_spike_threshold_needs_pure_decode():
    run = make_run()
    steps = T.build_steps(run["steps"][:1], META)
    with pytest.raises(ValueError):
        T.spike_threshold([], steps)


def test_hol_attribution():
    run = make_run()
    steps = T.build_steps(run["steps"], META)
    hol = {h["rid"]: h for h in T.hol_per_request(run["tokens"], META, steps)}
    assert hol["s1"]["steps_waited"] == 2  # the long step it arrived during, then its own prefill
    assert hol["s1"]["long_prefill_tokens_ahead"] == 100
    # TTFT 0.10 s, of which 0.06..0.15 was inside the long-prefill step
    assert hol["s1"]["long_prefill_time_s"] == pytest.approx(0.09)
    assert hol["s0"]["long_prefill_tokens_ahead"] == 0 and hol["s0"]["steps_waited"] == 1
    assert "L" not in hol


def test_summarize_run_and_repeats():
    s = T.summarize_run(make_run(), META, budget=128)
    assert s["requests_incomplete"] == 0 and s["steps_over_budget"] == 0
    assert s["max_step_tokens"] == 101 and s["max_long_prefill_tokens_per_step"] == 100
    assert s["itl_spikes"] == 1 and s["itl_spikes_in_long_prefill_steps"] == 1
    assert s["short_ttft"]["max_ms"] == pytest.approx(100)
    assert s["shorts_behind_long_prefill"] == 1 and s["shorts"] == 2
    assert s["short_ttft_share_in_long_prefill_steps"] == pytest.approx(0.09 / 0.11)
    agg = T.across_repeats([s, {**s, "itl_spikes": 5}], ["itl_spikes", "short_ttft.max_ms"])
    assert agg["itl_spikes"] == {"median": 3, "min": 1, "max": 5, "all": [1, 5]}


def test_incomplete_request_is_counted():
    run = make_run()
    run["tokens"]["s1"] = run["tokens"]["s1"][:1]
    assert T.summarize_run(run, META, budget=128)["requests_incomplete"] == 1


def test_external_id_strips_vllm_suffix():
    assert external_id("short-03.1-1a2b3c4d") == "short-03.1"
    assert external_id("plain") == "plain"


def test_fmt_median_and_range():
    assert fmt({"median": 12.0, "min": 10.0, "max": 15.0}) == "12 [10-15]"
    assert fmt({"median": 0.5, "min": 0.5, "max": 0.5}, pct=True) == "50%"
    assert fmt({"median": None, "min": None, "max": None}) == "-"


def test_step_columns_round_trip():
    steps = T.build_steps(make_run()["steps"], META)
    back = T.steps_from_columns(T.steps_to_columns(steps))
    assert [(s.long_prefill, s.short_prefill, s.decode) for s in back] == \
        [(s.long_prefill, s.short_prefill, s.decode) for s in steps]
    assert back[3].duration == pytest.approx(0.1)


def test_compare_needs_separated_ranges():
    from experiments.vllm.c3_mixed_scheduling.answer import compare

    assert compare({"min": 1, "max": 2}, {"min": 3, "max": 4}) == "lower"
    assert compare({"min": 5, "max": 6}, {"min": 3, "max": 4}) == "higher"
    assert compare({"min": 1, "max": 3.5}, {"min": 3, "max": 4}) == "within the repeat spread"


def test_summarise_config_uses_clean_passes():
    from experiments.vllm.c3_mixed_scheduling import lab

    runs = []
    for i, share in enumerate([2.0, 1.2, 1.95, 1.9]):
        r = make_run()
        for st in r["steps"]:
            st["cpu_s"] = share * (st["t_end"] - st["t_start"])
        runs.append({"repeat": i, "cpu_share": share, **r})
    raw = {"name": "x", "startup_s": 1.0, "scheduler_config": {}, "best_cpu_share": 1.9, "runs": runs}
    s = lab.summarise_config(raw, META, 128)
    assert s["passes_used"] == [0, 2, 3] and s["only_clean"]
    assert [r["clean"] for r in s["per_run"]] == [True, False, True, True]
    assert s["step_cost"]["steps_dropped"] == 0  # steps of unclean passes are not even considered
    # fewer than MIN_CLEAN clean passes: fall back to all, and say so
    raw["runs"] = runs[:2]
    s = lab.summarise_config(raw, META, 128)
    assert s["passes_used"] == [0, 1] and not s["only_clean"]


def test_busiest_window_holds_most_long_arrivals():
    from experiments.vllm.c3_mixed_scheduling.report import busiest_window

    lo, hi = busiest_window([0.5, 2.1, 2.2, 2.7, 2.75, 2.8], width=0.5)
    assert (lo, hi) == pytest.approx((2.65, 3.15))
    assert busiest_window([1.0], width=0.5) == pytest.approx((0.95, 1.45))
