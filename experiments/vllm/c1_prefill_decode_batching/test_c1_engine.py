"""One real vLLM engine (in-process EngineCore, in the shared c-lab session), a few requests: the step records must add up."""
import pytest

from experiments.vllm.c1_prefill_decode_batching import analysis as A
from experiments.vllm.conftest import C1_CFG as CFG

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def raw(engine_session):
    return engine_session["c1"]  # the shared c-lab engine session (experiments/vllm/conftest.py)


def _phase(raw, prefix):
    return [s for s in raw["steps"] if s["phase"].startswith(prefix)]


def test_prefill_steps_are_whole_prompts(raw):
    for p in CFG["prefill_lengths"]:
        steps = _phase(raw, f"prefill:{p}:")
        assert [(s["kind"], s["prefill_tokens"], s["decode_tokens"]) for s in steps] == [("prefill", p, 0)]
        assert steps[0]["step_s"] > 0


def test_decode_steps_carry_one_token_per_running_request(raw):
    for b in CFG["decode_batches"]:
        steps = _phase(raw, f"decode:{b}:")
        assert sum(s["prefill_tokens"] for s in steps) == b * CFG["decode_prompt"]
        decode = [s for s in steps if s["kind"] == "decode"]
        assert len(decode) == CFG["decode_tokens"] - 1  # the prefill step already sampled token 1
        assert all(s["decode_tokens"] == s["decode_reqs"] == s["running_before"] == b for s in decode)


def test_batching_totals_and_cap(raw):
    w = CFG["batching"]
    for mode in ("static", "continuous"):
        steps = _phase(raw, f"batching:{mode}:0")
        assert sum(s["prefill_tokens"] for s in steps) == sum(w["prompt_lengths"])
        assert sum(s["decode_tokens"] for s in steps) == sum(n - 1 for n in w["output_lengths"])
        assert max(s["num_reqs"] for s in steps) <= w["slots"]
    run = {r["mode"]: r for r in raw["phases"]["batching"]}
    for mode, r in run.items():
        assert [q["output_tokens"] for q in r["requests"]] == w["output_lengths"]
        assert all(0 < q["ttft_s"] <= q["e2e_s"] for q in r["requests"])
    # continuous starts request 2 as soon as request 0 (2 tokens) finishes; static waits for request 1 (9 tokens)
    ttft = {m: run[m]["requests"][2]["ttft_s"] for m in run}
    assert ttft["continuous"] < ttft["static"]


def test_split_agrees_with_vllm_iteration_details(raw):
    assert A.check_against_vllm(raw["steps"])["mismatched"] == 0
    assert all(p["wall_s"] > 0 for p in raw["phase_load"])
