"""b5: both forward paths agree, trace parsing on traces made here, nsys CSV parsing, GPU half."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from experiments.foundations.b5_launch_overhead_trace import chrome_trace as CT
from experiments.foundations.b5_launch_overhead_trace import nsys_cpu
from experiments.foundations.b5_launch_overhead_trace import trace as T
from experiments.foundations.b5_launch_overhead_trace.tiny_model import TinyConfig, make_model, make_tokens
from experiments.foundations.b_common.cuda_env import torch_cuda_skip_reason
from experiments.foundations.b_common.testing import assert_readme_matches_results, run_gpu_half

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


def test_kernel_gaps_are_taken_inside_the_nvtx_ranges(tmp_path):
    """On the synthetic export (CUDA tables a CPU trace cannot hold): only kernels launched inside a range count."""
    from analysis import nsys_sqlite, synthetic_nsys as S

    path = S.write_export(tmp_path / "s.sqlite", steps=3, jitter=False)["path"]
    r = T.kernel_gaps_in_ranges(nsys_sqlite.kernels_with_launch(path), nsys_sqlite.nvtx_ranges(path),
                                prefix="gpu_model_runner: forward")
    assert [x["kernels"] for x in r["ranges"]] == [S.KERNELS_PER_STEP] * 3
    slots = S.kernel_slots()
    gap = (slots[1][1] - slots[0][1]) - slots[0][2]  # stride minus duration, in us
    assert all(x["gaps_us"]["median"] == pytest.approx(gap) for x in r["ranges"])
    assert r["ranges"][0]["busy_fraction"] == pytest.approx(
        S.KERNELS_PER_STEP * slots[0][2] / (slots[-1][1] + slots[-1][2] - slots[0][1]))
    # a range that launches nothing (the sampling scope launches no kernel here) reports 0 kernels, no gaps
    none = T.kernel_gaps_in_ranges(nsys_sqlite.kernels_with_launch(path), nsys_sqlite.nvtx_ranges(path),
                                   prefix="gpu_model_runner: bookkeep")
    assert all(x["kernels"] == 0 and "gaps_us" not in x for x in none["ranges"])


def test_nsys_cpu_analysis_of_nested_ranges():
    import pandas as pd

    rows = []
    for name in nsys_cpu.PATHS:
        for i, t in enumerate((0, 1000)):
            base = t + (0 if name == "small_ops" else 5000)
            rows += [(f"{name} forward[{i}]", base, base + 900), ("embed", base + 10, base + 50),
                     ("layer[0]", base + 60, base + 400), ("layer[1]", base + 410, base + 850),
                     ("head", base + 850, base + 890)]
    ranges = pd.DataFrame(rows, columns=["name", "ts_us", "end_us"]).assign(pid=1, tid=1)
    ranges["dur_us"] = ranges["end_us"] - ranges["ts_us"]
    a = nsys_cpu.analyse(ranges)
    f = a["small_ops"]["forwards"][0]
    assert f["children"] == 4 and f["gaps_between_children_us"] == [10, 10, 0]
    assert f["white_space_us"] == pytest.approx(900 - 40 - 340 - 440 - 40)
    assert a["fused"]["gap_between_forwards_us"]["median"] == pytest.approx(100)
    ranges.loc[ranges["name"] == "small_ops forward[1]", ["end_us", "dur_us"]] = [1950, 950]
    rows_ = nsys_cpu.median_forward_rows(ranges)  # of two: the shorter
    assert rows_["small_ops"][0] == {"name": "small_ops forward[0]", "start_us": 0.0, "dur_us": 900.0}


@pytest.mark.skipif(shutil.which("nsys") is None,
                    reason="nsys not installed (`make nsys` installs Debian's nsight-systems as root)")
def test_real_nsys_capture_of_the_cpu_forwards(tmp_path):
    from analysis import nsys_sqlite

    rep, sqlite = nsys_cpu.capture(tmp_path)
    names = set(nsys_sqlite.nvtx_ranges(sqlite)["name"])
    assert {f"{p} forward[{nsys_cpu.N_FORWARDS - 1}]" for p in nsys_cpu.PATHS} <= names
    assert {"embed", "head"} | {f"layer[{j}]" for j in range(TinyConfig().n_layers)} <= names


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
    files = run_gpu_half(T.run_gpu, T.LAB_DIR, tmp_path, torch_cuda_skip_reason)
    g = files.read("gpu_launch_overhead")["results"]["cuda_graph"]
    assert g["max_abs_diff"] < 1e-3
