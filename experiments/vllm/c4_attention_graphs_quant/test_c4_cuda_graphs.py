import pytest
import torch

from experiments.vllm.c4_attention_graphs_quant import cuda_graphs as G


def test_cpu_skips_with_reason():
    if torch.cuda.is_available():
        pytest.skip("GPU present: covered by test_graph_replay_matches_eager")
    r = G.measure_cuda_graph()
    assert "skipped" in r and "GPU" in r["skipped"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA Graphs need an NVIDIA GPU")
def test_graph_replay_matches_eager():
    r = G.measure_cuda_graph(n_layers=2, iters=10, repeats=3)
    assert r["max_abs_diff_graph_vs_eager"] < 1e-4
