import numpy as np
import pytest

from experiments.vllm.c4_attention_graphs_quant import tiled_attention as T


@pytest.mark.parametrize("n,d,bq,bk,causal", [(64, 16, 16, 16, False), (100, 32, 32, 24, False),
                                              (97, 16, 16, 32, True), (8, 8, 64, 64, False)])
def test_tiled_equals_reference(n, d, bq, bk, causal):
    rng = np.random.default_rng(n)
    q, k, v = (rng.standard_normal((n, d)) * 3 for _ in range(3))  # large scores: online max matters
    ref = T.attention_reference(q, k, v, causal)
    np.testing.assert_allclose(T.attention_tiled(q, k, v, bq, bk, causal), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n,d,b", [(128, 16, 32), (100, 32, 32), (64, 8, 64)])
def test_counted_traffic_matches_formula(n, d, b):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((n, d)) for _ in range(3))
    c = T.TrafficCounter()
    T.attention_tiled(q, k, v, b, b, counter=c)
    assert c.read + c.written == T.tiled_traffic_elements(n, d, b)
    c2 = T.TrafficCounter()
    np.testing.assert_allclose(T.attention_naive_counted(q, k, v, c2), T.attention_reference(q, k, v))
    assert c2.read + c2.written == T.naive_traffic_elements(n, d)


def test_tiling_wins_for_long_sequences_and_bigger_tiles():
    rows = T.traffic_table([4096], 64, [32, 64, 128, 256])
    ratios = [r["ratio"] for r in rows]
    assert ratios == sorted(ratios) and ratios[0] > 1.0
    # for N >> B the ratio tends to 4N^2 / (2 N d N / B) = 2B/d
    assert abs(ratios[-1] - 2 * 256 / 64) < 0.5
