"""b2: the kernel against its spec (simulator on CPU), the divergence model by hand, GPU half."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.foundations.b2_warp_divergence import divergence as D
from experiments.foundations.b2_warp_divergence import kernels as K
from experiments.foundations.b_common.testing import run_gpu_half
from experiments.foundations.b_common.cuda_env import numba_cuda_skip_reason
from experiments.foundations.b_common.warp_model import divergence, expected_paths_random_branch


@pytest.mark.parametrize("pattern", D.PATTERNS, ids=[p["name"] for p in D.PATTERNS])
def test_kernel_matches_spec_on_small_grid(pattern):
    # 160 threads: one partial block, a partial last warp; tid >= n must not write.
    check = D.check_kernel(K.cuda, pattern, 160, 3)
    assert check["ok"], check


def test_lane_parity_and_warp_uniform_by_hand():
    tid = np.arange(32 * 8)
    assert divergence(tid % 2)["lane_utilisation"] == 0.5
    assert divergence(tid % 2)["mean_paths_per_warp"] == 2.0
    assert divergence((tid // 32) % 2)["lane_utilisation"] == 1.0
    # one lane of each warp on the other side still costs a whole second pass
    one_odd = (tid % 32 == 5).astype(int)
    assert divergence(one_odd)["mean_paths_per_warp"] == 2.0
    # unequal path costs: 31 lanes on a cost-1 path and 1 lane on a cost-3 path
    r = divergence(one_odd, path_cost={0: 1.0, 1: 3.0})
    assert r["lane_utilisation"] == pytest.approx((31 * 1 + 1 * 3) / (32 * 4))


def test_model_patterns():
    util = {p["name"]: D.model_pattern(p, 2**14)["lane_utilisation"] for p in D.PATTERNS}
    assert util["warp-uniform"] == 1.0 and util["tid % 2"] == 0.5
    assert util["data, p=0.5"] == pytest.approx(0.5, abs=0.01)
    assert util["data, p=0.5, sorted input"] > 0.99  # at most one mixed warp at the boundary
    assert 0.5 < util["data, p=0.05"] < 0.6


def test_random_branch_formula_matches_model():
    for p in (0.01, 0.05, 0.2):
        got = D.model_pattern({"condition": K.DATA_DEPENDENT, "fraction": p, "sorted": False}, 2**16)
        assert got["mean_paths_per_warp"] == pytest.approx(expected_paths_random_branch(p), abs=0.04)


@pytest.mark.gpu
def test_gpu_half(tmp_path):
    files = run_gpu_half(D.run_gpu, D.LAB_DIR, tmp_path, numba_cuda_skip_reason)
    rows = files.read("gpu_divergence_timings")["results"]["patterns"]
    assert all(r["spot_check_ok"] for r in rows)
