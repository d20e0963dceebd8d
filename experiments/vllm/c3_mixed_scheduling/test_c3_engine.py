"""The real engine (two in-process engines of the shared c-lab session): what the recorder sees must match
what the scheduler is configured to do, and every request must get its tokens."""
import math

import pytest

from experiments.vllm.c3_mixed_scheduling import lab
from experiments.vllm.c3_mixed_scheduling import timeline as T
from experiments.vllm.conftest import C3_BUDGET_ON as BUDGET_ON

pytestmark = [pytest.mark.vllm, pytest.mark.slow]



@pytest.fixture(scope="module")
def recorded(engine_session):
    # the two engines of the shared c-lab session (experiments/vllm/conftest.py)
    return lab.request_meta(engine_session["_c3_requests"]), {"off": engine_session["c3-off"],
                                                              "on": engine_session["c3-on"]}


def per_request_tokens(run):
    pre, dec = {}, {}
    for s in run["steps"]:
        for rid, p, d in s["reqs"]:
            pre[rid] = pre.get(rid, 0) + p
            dec[rid] = dec.get(rid, 0) + d
    return pre, dec


@pytest.mark.parametrize("name", ["off", "on"])
def test_every_request_gets_its_tokens_and_accounting_adds_up(recorded, name):
    meta, out = recorded
    assert out[name]["scheduler_config"]["enable_chunked_prefill"] is (name == "on")
    run = out[name]["runs"][0]
    pre, dec = per_request_tokens(run)
    for rid, m in meta.items():
        assert sum(n for _, _, n in run["tokens"][rid]) == m["output_tokens"]
        assert pre[rid] == m["prompt_len"]           # every prompt token prefilled once (no prefix cache)
        assert dec[rid] == m["output_tokens"] - 1    # the first token comes from the prefill step
    assert T.summarize_run(run, meta, 2048)["requests_incomplete"] == 0


def test_chunked_off_prefills_a_long_prompt_in_one_step(recorded):
    meta, out = recorded
    steps = out["off"]["runs"][0]["steps"]
    for rid, m in meta.items():
        chunks = [p for s in steps for r, p, _ in s["reqs"] if r == rid and p > 0]
        assert chunks == [m["prompt_len"]]


def test_chunked_on_respects_the_budget_and_splits_long_prompts(recorded):
    meta, out = recorded
    steps = out["on"]["runs"][0]["steps"]
    assert max(s["total"] for s in steps) <= BUDGET_ON
    assert all(sum(p + d for _, p, d in s["reqs"]) == s["total"] for s in steps)
    for rid, m in meta.items():
        if m["kind"] == "long":
            chunks = [p for s in steps for r, p, _ in s["reqs"] if r == rid and p > 0]
            assert len(chunks) >= math.ceil(m["prompt_len"] / BUDGET_ON)
