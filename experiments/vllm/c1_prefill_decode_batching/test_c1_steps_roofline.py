"""Pure parts: prefill/decode split, line fit, roofline arithmetic (no engine)."""
import json
import math
import struct

import pytest

from experiments.vllm.c1_prefill_decode_batching import roofline as R
from experiments.vllm.c1_prefill_decode_batching.lab import MODEL_DIR
from experiments.vllm.c1_prefill_decode_batching.steps import classify_step, fit_line, split_tokens

SHAPE = R.LlamaShape.from_config(MODEL_DIR / "config.json")


def test_split_whole_prompt_chunk_and_decode():
    assert split_tokens(100, 0, 100) == (100, 0)        # whole prompt in one step
    assert split_tokens(64, 0, 100) == (64, 0)          # first chunk of a chunked prefill
    assert split_tokens(36, 64, 100) == (36, 0)         # last chunk
    assert split_tokens(1, 100, 100) == (0, 1)          # decode
    assert split_tokens(5, 98, 100) == (2, 3)           # spans the boundary (e.g. recompute after preemption)


def test_classify_step_kinds_and_context():
    prompts = {"a": 10, "b": 20, "c": 30}
    rec = classify_step({"a": 1, "b": 1}, {"a": 10, "b": 24}, prompts)
    assert (rec["kind"], rec["prefill_tokens"], rec["decode_tokens"], rec["decode_reqs"]) == ("decode", 0, 2, 2)
    assert rec["decode_context_mean"] == 17
    rec = classify_step({"a": 1, "c": 30}, {"a": 12, "c": 0}, prompts)
    assert (rec["kind"], rec["prefill_tokens"], rec["decode_tokens"], rec["prefill_reqs"]) == ("mixed", 30, 1, 1)
    assert classify_step({"c": 30}, {}, prompts)["kind"] == "prefill"
    assert classify_step({}, {}, prompts)["kind"] == "idle"


def test_fit_line_recovers_intercept_and_slope():
    xs = [1, 2, 4, 8, 16]
    f = fit_line(xs, [3.0 + 0.5 * x for x in xs])
    assert f["intercept"] == pytest.approx(3.0) and f["slope"] == pytest.approx(0.5) and f["r2"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        fit_line([1, 1], [2, 3])


def test_param_count_matches_the_checkpoint():
    path = MODEL_DIR / "model.safetensors"
    if not path.exists():
        pytest.skip("no trained weights")
    with open(path, "rb") as fh:
        header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
    stored = sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    assert R.param_counts(SHAPE)["total"] == stored


def test_decode_and_prefill_costs():
    pc = R.param_counts(SHAPE)
    kv = R.kv_bytes_per_token(SHAPE, 4)
    assert kv == 2 * 4 * 3 * 64 * 4
    c1 = R.decode_step_cost(SHAPE, 1, 0, 4)
    assert c1["bytes"] == pc["total"] * 4 + kv                       # weights once + the new token's K, V
    c8 = R.decode_step_cost(SHAPE, 8, 100, 4)
    assert c8["weight_bytes"] == c1["weight_bytes"]                  # the batch shares one read of the weights
    assert c8["kv_bytes"] == 8 * 101 * kv
    assert c1["flops"] / c1["bytes"] == pytest.approx(0.5, rel=0.05)  # fp32: 2 FLOPs per 4-byte weight
    p = R.prefill_step_cost(SHAPE, 1000, 4)
    assert p["flops"] / p["bytes"] > 100                             # prefill: high arithmetic intensity
    # the LM head runs once per prefill (last position), once per token in decode
    assert R.prefill_step_cost(SHAPE, 2, 4)["flops"] < 2 * R.decode_step_cost(SHAPE, 1, 0, 4)["flops"]


def test_roofline_bound_and_crossover():
    cost = {"bytes": 1e6, "flops": 1e6}
    assert R.roofline_time(cost, 1e9, 1e12)["bound"] == "memory"
    assert R.roofline_time(cost, 1e12, 1e9)["roofline_s"] == pytest.approx(1e-3)
    b = R.compute_bound_batch(SHAPE, 4, 10.0)
    at = R.decode_step_cost(SHAPE, round(b), 0, 4)
    assert at["flops"] / at["bytes"] == pytest.approx(10.0, rel=0.1)


def test_bandwidth_and_gemm_measurements_run():
    bw = R.measure_copy_bandwidth(1 << 20, 2)
    assert bw["GBps"]["n"] == 2 and bw["GBps"]["median"] > 0
    assert R.measure_matmul_flops(64, 2)["GFLOPs"]["median"] > 0
