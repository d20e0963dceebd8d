"""One real vLLM engine (in-process EngineCore), a few requests: the step records must add up."""
import tempfile
from pathlib import Path

import pytest

from experiments.vllm.c1_prefill_decode_batching import analysis as A
from experiments.vllm.c1_prefill_decode_batching import lab as L

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

CFG = {**L.ENGINE, "max_num_seqs": 8, "repeats": 1, "prefill_lengths": [40, 300], "decode_batches": [1, 3],
       "decode_prompt": 24, "decode_tokens": 6, "context_batch": 2, "context_lengths": [600], "context_tokens": 4,
       "context_repeats": 1, "batching_repeats": 1,
       "batching": {"slots": 2, "prompt_lengths": [30, 40, 50, 60, 70], "output_lengths": [2, 9, 3, 3, 5]}}


@pytest.fixture(scope="module")
def raw():
    if not (L.MODEL_DIR / "model.safetensors").exists():
        pytest.skip("no trained weights: run `python -m tools.train_tiny_model`")
    with tempfile.TemporaryDirectory() as tmp:
        return L.run_engine({"model": str(L.MODEL_DIR), **CFG}, Path(tmp))


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
