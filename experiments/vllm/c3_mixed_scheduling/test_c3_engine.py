"""The real engine (one child process, two in-process engines): what the recorder sees must match
what the scheduler is configured to do, and every request must get its tokens."""
import json
import math
import os
import subprocess
import sys

import pytest

from experiments.vllm.c3_mixed_scheduling import lab
from experiments.vllm.c3_mixed_scheduling import timeline as T
from experiments.vllm.c3_mixed_scheduling.workload import MODEL_DIR, build_requests, to_jsonable

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

BUDGET_ON = 256


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    if not (MODEL_DIR / "model.safetensors").exists():
        pytest.skip("no trained weights: run `python -m tools.train_tiny_model`")
    reqs = to_jsonable(build_requests(num_requests=8, rate_per_s=40, long_fraction=0.25, long_words=700,
                                      short_words=32, output_tokens=8))
    cfgs = [{"name": name, "warmup": 0, "repeats": 1, "max_extra": 0, "requests": reqs,
             "engine_args": lab.engine_args(chunked, budget)}
            for name, chunked, budget in (("off", False, 2048), ("on", True, BUDGET_ON))]
    tmp = tmp_path_factory.mktemp("c3")
    (tmp / "cfg.json").write_text(json.dumps(cfgs))
    subprocess.run([sys.executable, "-m", "experiments.vllm.c3_mixed_scheduling.engine", str(tmp / "cfg.json"),
                    str(tmp / "out.json")], check=True, cwd=lab.REPO, env=dict(os.environ), timeout=240)
    out = {r["name"]: r for r in json.loads((tmp / "out.json").read_text())}
    return lab.request_meta(reqs), out


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
