"""b5: both forward paths agree, trace parsing on traces made here, nsys CSV parsing, GPU half."""

from __future__ import annotations

import json

import pytest
import torch

from experiments.foundations.b5_launch_overhead_trace import chrome_trace as CT
from experiments.foundations.b5_launch_overhead_trace import trace as T
from experiments.foundations.b5_launch_overhead_trace.tiny_model import TinyConfig, make_model, make_tokens
from experiments.foundations.b_common.cuda_env import torch_cuda_skip_reason
from experiments.foundations.b_common.testing import assert_readme_matches_results

SMALL = TinyConfig(d_model=64, n_heads=2, n_layers=2, seq_len=8, vocab=128)


def test_fused_and_small_ops_compute_the_same():
    tokens = make_tokens(SMALL)
    with torch.inference_mode():
        a = make_model(SMALL, fused=False)(tokens)
        b = make_model(SMALL, fused=True)(tokens)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_hand_built_trace_top_level_and_gaps(tmp_path):
    ev = [
        {"ph": "X", "cat": "user_annotation", "name": "forward[0]", "ts": 0, "dur": 100, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "aten::linear", "ts": 10, "dur": 20, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "aten::addmm", "ts": 12, "dur": 15, "tid": 1},  # nested
        {"ph": "X", "cat": "cpu_op", "name": "aten::add", "ts": 35, "dur": 5, "tid": 1},
        {"ph": "X", "cat": "cpu_op", "name": "aten::mul", "ts": 50, "dur": 10, "tid": 1},
        {
            "ph": "X",
            "cat": "cpu_op",
            "name": "aten::late",
            "ts": 150,
            "dur": 10,
            "tid": 1,
        },  # outside the region
    ]
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"traceEvents": ev}))
    events = CT.load_events(path)
    reg = CT.regions(events, "forward")
    ops = CT.top_level(CT.within(events, reg[0], "cpu_op"))
    assert [e["name"] for e in ops] == ["aten::linear", "aten::add", "aten::mul"]
    assert CT.gaps_us(ops) == [5, 10]
    s = CT.analyse(events)["regions"][0]["cpu_ops"]
    assert s["count"] == 3 and s["busy_fraction"] == pytest.approx(35 / 100)


def test_profiled_trace_has_more_ops_when_unfused(tmp_path):
    counts = {}
    for fused in (False, True):
        path = T.profile_trace(SMALL, fused, 2, tmp_path / f"{fused}.json")
        events = CT.load_events(path)
        regs = CT.analyse(events)["regions"]
        assert [r["region"] for r in regs] == ["forward[0]", "forward[1]"]
        assert all(
            g >= 0
            for g in CT.gaps_us(CT.top_level(CT.within(events, CT.regions(events, "forward")[0], "cpu_op")))
        )
        counts[fused] = regs[0]["cpu_ops"]["count"]
        small = CT.trim(events, CT.regions(events, "forward")[-1])
        assert len(json.dumps(small)) < T.MAX_TRACE_BYTES
    assert counts[False] > 1.5 * counts[True]


def test_tiny_ops_cost_more_than_one_batched_op():
    r = T.tiny_op_overhead(512, 64, repeats=3)
    assert r["ratio"] > 3  # observed ~100x+; only the direction matters


def test_nsys_csv_parsing():
    csv = (
        "some banner line\n"
        "Start (ns),Duration (ns),CorrId,Name\n"
        "1000,500,1,kernel_a\n2000,500,2,kernel_b\n2600,100,3,[CUDA memcpy HtoD]\n3500,500,4,kernel_c\n"
    )
    r = T.kernel_gaps_from_nsys_csv(csv)
    assert r["kernels"] == 3
    assert r["gaps_us"]["min"] == pytest.approx(0.5) and r["gaps_us"]["max"] == pytest.approx(1.0)
    assert r["busy_fraction"] == pytest.approx(1500 / 3000)


@pytest.mark.slow
def test_torch_compile_matches_eager():
    tokens = make_tokens(SMALL)
    model = make_model(SMALL, fused=False)
    with torch.inference_mode():
        torch.testing.assert_close(torch.compile(model)(tokens), model(tokens), rtol=1e-4, atol=1e-5)


def test_readme_matches_committed_results(tmp_path):
    assert_readme_matches_results(T.render, T.LAB_DIR, tmp_path)


@pytest.mark.gpu
def test_gpu_half(tmp_path):
    reason = torch_cuda_skip_reason()
    if reason:
        pytest.skip(reason)
    files = T.lab.LabFiles(T.LAB_DIR, tmp_path)
    assert T.run_gpu(files, quick=True)
    g = files.read("gpu_launch_overhead")["results"]["cuda_graph"]
    assert g["max_abs_diff"] < 1e-3
