"""Real vLLM engines on the trained tiny model: two starts (no speculation, n-gram k=4) in one child process."""
import pytest

from experiments.vllm.c5_speculative_decoding import spec_decoding as S

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if not (S.MODEL_DIR / "model.safetensors").exists():
        pytest.skip("no trained weights: run `python -m tools.train_tiny_model`")
    from experiments.vllm.c5_speculative_decoding.workloads import build_workloads

    w = build_workloads(S.MODEL_DIR / "tokenizer.json", 2)
    w.pop("_files")
    cfg = {"model": str(S.MODEL_DIR), "dtype": "float32", "max_tokens": 24, "workloads": w,
           "concurrency": [2], "repeats": 1, "max_num_seqs": 4, "sampled": False}
    base, spec = S.run_engines_pair({**cfg, "speculative": False}, {**cfg, "speculative": True})
    return w, base, spec


def test_greedy_identical_and_drafts_counted(runs):
    _, base, spec = runs
    rows = S.summarise(base, spec)
    assert all(r["greedy_identical"] for r in rows)
    rep = next(r for r in rows if r["workload"] == "repetitive")
    assert rep["num_drafts"] > 0 and 0 <= rep["num_accepted_tokens"] <= rep["num_draft_tokens"]
    assert all(r["num_drafts"] == 0 for r in base["runs"] for r in [r["spec"]])


def test_vllm_loads_trained_dir_and_matches_transformers(runs):
    w, base, _ = runs
    prompts = w["repetitive"] + w["non_repetitive"]
    vllm_ids = [ids for r in base["runs"] for ids in r["token_ids"]]
    assert vllm_ids == S.transformers_greedy(prompts, 24, "float32")
