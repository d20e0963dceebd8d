"""Pure parts: static waves vs continuous batching counted in steps, and the analysis tables."""
import pytest

from experiments.vllm.c1_prefill_decode_batching import analysis as A
from experiments.vllm.c1_prefill_decode_batching import batching_sim as S


def test_static_waves_wait_for_the_longest():
    r = S.simulate_static([1, 5, 2, 2], slots=2)
    assert r["steps"] == 5 + 2
    assert r["first_step"] == [0, 0, 5, 5]
    assert r["occupancy"][:5] == [2, 1, 1, 1, 1]


def test_continuous_refills_freed_slots():
    r = S.simulate_continuous([1, 5, 2, 2], slots=2)
    # step 0: {0,1}; request 0 done -> step 1: {1,2}; step 2 {1,2} done 2 -> step 3: {1,3}; step 4: {1,3} all done
    assert r["steps"] == 5
    assert r["first_step"] == [0, 0, 1, 3]
    assert r["last_step"] == [0, 4, 2, 4]
    assert sum(r["occupancy"]) == sum([1, 5, 2, 2])


def test_equal_lengths_make_both_the_same():
    c = S.compare([8] * 12, slots=4)
    assert c["static"]["steps"] == c["continuous"]["steps"] == 24
    assert c["predicted_speedup"] == 1.0


def test_time_prediction_uses_the_step_fit():
    c = S.compare([1, 5, 2, 2], slots=2, step_fit={"intercept": 1.0, "slope": 0.5})
    # static occupancy [2,1,1,1,1,2,2] -> 7 + 0.5*10; continuous [2,2,2,2,2] -> 5 + 0.5*10
    assert c["static"]["predicted_time_s"] == pytest.approx(12.0)
    assert c["continuous"]["predicted_time_s"] == pytest.approx(10.0)
    assert c["predicted_time_speedup"] == pytest.approx(1.2)


def test_long_tail_favours_continuous():
    lengths = S.output_lengths(128, seed=0, hi=400)
    assert min(lengths) >= 4 and max(lengths) <= 400
    c = S.compare(lengths, slots=16)
    assert c["continuous"]["slot_utilisation"] > c["static"]["slot_utilisation"]
    assert c["predicted_speedup"] > 1.5
    assert c["continuous"]["mean_first_step"] < c["static"]["mean_first_step"]


def _step(phase, kind, p, d, t, start=0.0, dreqs=None, preqs=None):
    return {"phase": phase, "kind": kind, "prefill_tokens": p, "decode_tokens": d, "step_s": t, "start_s": start,
            "decode_reqs": d if dreqs is None else dreqs, "prefill_reqs": (1 if p else 0) if preqs is None else preqs,
            "vllm_ctx_tokens": p, "vllm_gen_tokens": d, "schedule_s": 0.0001, "decode_context_mean": 40.0}


def test_time_split_and_vllm_check():
    steps = [_step("batching:continuous:0", "prefill", 100, 0, 0.02), _step("batching:continuous:0", "decode", 0, 4, 0.01),
             _step("batching:continuous:0", "mixed", 50, 3, 0.03), _step("other", "decode", 0, 1, 9.0)]
    ts = A.time_split(steps, "batching:continuous:")
    assert ts["steps"] == 3 and ts["prefill_steps"] == 2 and ts["decode_only_steps"] == 1
    assert ts["decode_only_time_share"] == pytest.approx(0.01 / 0.06)
    assert (ts["prefill_tokens"], ts["decode_tokens"]) == (150, 7)
    assert A.check_against_vllm(steps)["mismatched"] == 0


def test_batching_table_throughput_and_latency():
    runs = [{"mode": m, "repeat": 0, "wall_s": w,
             "requests": [{"output_tokens": 10, "ttft_s": 0.1 * i, "e2e_s": 0.5 * (i + 1)} for i in range(4)]}
            for m, w in (("static", 2.0), ("continuous", 1.0))]
    steps = [_step(f"batching:{m}:0", "decode", 0, 2, 0.01) for m in ("static", "continuous")]
    load = [{"phase": "batching:static:0", "wall_s": 2.0, "foreign_cpu_cores": 0.5},
            {"phase": "batching:continuous:0", "wall_s": 1.0, "foreign_cpu_cores": 0.1}]
    t = A.batching_table(runs, steps, slots=2, output_lengths=[10, 10, 10, 10], phase_load=load)
    assert t["modes"]["static"]["foreign_cpu_cores_all"] == [0.5]
    assert A.quietest_repeat(t, "continuous") == 0
    assert A.load_summary(load)["mean_cores"] == pytest.approx((0.5 * 2 + 0.1) / 3)
    cols = A.timeline_columns(steps, "batching:static:0")
    assert cols["decode_tokens"] == [2] and cols["step_us"] == [10000]
    assert t["modes"]["static"]["output_tokens_per_s"]["median"] == 20
    assert t["measured_speedup"] == 2
    assert t["modes"]["continuous"]["mean_batch_over_slots"]["median"] == 1.0
    assert t["simulated"]["predicted_speedup"] == 1.0
