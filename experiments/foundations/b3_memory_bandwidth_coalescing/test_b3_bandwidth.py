"""b3: sector model by hand, kernels vs specs, CPU analogue directions, KV arithmetic, GPU half."""

from __future__ import annotations

import pytest

from experiments.foundations.b3_memory_bandwidth_coalescing import bandwidth as B
from experiments.foundations.b3_memory_bandwidth_coalescing import kv_cache as KV
from experiments.foundations.b_common.testing import run_gpu_half
from experiments.foundations.b_common.cuda_env import numba_cuda_skip_reason
from experiments.foundations.b_common.specs import H100_SXM, MiB, ridge_point
from experiments.foundations.b_common.warp_model import mean_request, warp_request


@pytest.mark.parametrize(
    "kw,sectors",
    [
        (dict(pattern="contiguous"), 4),
        (dict(pattern="contiguous", offset=1), 5),
        (dict(pattern="strided", stride=2), 8),
        (dict(pattern="strided", stride=4), 16),
        (dict(pattern="strided", stride=8), 32),
        (dict(pattern="strided", stride=100), 32),
    ],
)
def test_sectors_per_request_by_hand(kw, sectors):
    assert mean_request(elem_bytes=4, **kw)["sectors_per_request"] == sectors


def test_sector_edge_cases():
    assert mean_request("random", n_elements=2**28)["sectors_per_request"] > 31.9
    assert mean_request("contiguous", elem_bytes=2)["sectors_per_request"] == 2
    assert warp_request([0] * 32, 4).sectors == 1  # broadcast: one sector
    assert warp_request([30], 4).sectors == 2  # an access straddling a sector boundary
    assert warp_request(list(range(0, 128, 4)), 4, active=[i < 8 for i in range(32)]).sectors == 1


def test_kernels_match_specs():
    rows = B.simulator_checks(quick=True)
    assert rows and all(r["ok"] for r in rows), rows


def test_cpu_analogue_measurements_are_well_formed():
    """The measuring code runs and reports positive bandwidths; no timing ratio is asserted here
    (under make test's two workers a random/sequential ratio of 0.89 was seen against 0.47 in
    the lab's own run): the directions are checked on the lab's committed run below."""
    g = B.measure_gather(4 * MiB, 2**16, repeats=1)
    assert all(v["median"] > 0 for v in g.values() if isinstance(v, dict) and "median" in v)
    s = B.measure_stride_sweep(4 * MiB, [1, 16], 1)
    assert [r["stride_bytes"] for r in s] == [4, 64] and all(r["useful_GBps"]["median"] > 0 for r in s)
    rows = B.measure_paged_rows(4 * MiB, [64], 1 * MiB, 1)
    assert rows[0]["random_over_sequential"] > 0


def test_committed_cpu_run_shows_the_directions():
    """What the lab's own run (quiet cores, 7 repeats) measured: random access costs bandwidth."""
    from experiments.common.results import read_result

    r = read_result(B.LAB_DIR / "results" / "cpu_access_patterns.json")["results"]
    g = r["gather"]
    assert g["np.take random"]["median"] < 0.7 * g["np.take contiguous"]["median"]
    s = {x["stride_bytes"]: x["useful_GBps"]["median"] for x in r["stride_sweep"]}
    assert s[64] < 0.7 * s[4]
    assert r["paged_rows"][0]["row_bytes"] == 64 and r["paged_rows"][0]["random_over_sequential"] < 0.8


def test_kv_arithmetic_by_hand():
    llama, qwen = KV.MODELS["Llama-3-8B"], KV.MODELS["Qwen2.5-0.5B"]
    assert KV.kv_bytes_per_token(llama) == 2 * 32 * 8 * 128 * 2 == 131072
    assert KV.kv_bytes_per_token(qwen) == 2 * 24 * 2 * 64 * 2 == 12288
    assert KV.attention_flops_per_token(llama, 1) / KV.kv_bytes_per_token(llama) == 32 / 8
    assert KV.attention_flops_per_token(qwen, 1) / KV.kv_bytes_per_token(qwen) == 14 / 2
    assert KV.matmul_params(llama) + 128256 * 4096 == pytest.approx(8.03e9, rel=0.01)  # + input embedding
    assert ridge_point(989, 3350) == pytest.approx(295, abs=1)
    step = KV.decode_step(llama, batch=64, context=4096)
    assert step["intensity_attention"] == 4 and step["kv_share_of_bytes"] > 0.5
    assert KV.step_time_bounds(step, tflops=989, bandwidth_GBps=3350)["bound"] == "bandwidth"
    assert B.kv_analysis(H100_SXM)["ridge_flop_per_byte"] > 100


@pytest.mark.gpu
def test_gpu_half(tmp_path):
    files = run_gpu_half(B.run_gpu, B.LAB_DIR, tmp_path, numba_cuda_skip_reason)
    r = files.read("gpu_access_patterns")["results"]
    assert r["gather"]["random"]["useful_GBps"]["median"] < r["gather"]["contiguous"]["useful_GBps"]["median"]
