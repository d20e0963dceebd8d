"""make gpu-evidence: the dry run validates the whole plan on CPU (what CI runs; no GPU here)."""
from __future__ import annotations

import csv
import json

import pytest

from experiments.gpu_evidence import __main__ as ge
from experiments.gpu_evidence import forward_grid as fg


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-evidence")
    assert ge.main(["--dry-run", "--out", str(out)]) == 0
    (final,) = list(out.iterdir())
    return final


def test_dry_run_writes_a_plan_and_no_gpu_result(dry_run):
    assert dry_run.name.startswith("dry-run-nvidia-h200-") and not dry_run.name.endswith(".partial")
    assert sorted(p.name for p in dry_run.iterdir()) == ["dry_run_tiny_cpu.csv", "plan.json"]
    meta = json.loads((dry_run / "plan.json").read_text())
    assert meta["dry_run"] is True and "not vLLM's kernels" in meta["label"]
    plan = meta["plan"]
    assert plan["points"] and plan["estimated_measure_s"] < ge.MEASURE_BUDGET_S < ge.TIME_BUDGET_S
    for p in plan["points"]:  # every planned point fits next to the 8B weights
        assert p["memory_gib"] <= plan["memory_budget_gib"]
    assert all("GiB left" in s["reason"] for s in plan["skipped"])
    assert 14 < plan["weight_gib"] < 16  # Llama-3-8B in bf16


def test_the_tiny_cpu_run_wrote_the_simulators_columns(dry_run):
    from experiments.sim.cost_models import FEATURES, LinearStepCost

    with open(dry_run / "dry_run_tiny_cpu.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(fg.tiny_grid())
    assert set(FEATURES) | {"seconds"} <= set(rows[0])
    assert all(float(r["seconds"]) > 0 for r in rows)
    assert [int(r["context_tokens"]) for r in rows] == [p.decode_seqs * p.context_len for p in fg.tiny_grid()]
    LinearStepCost.from_csv(dry_run / "dry_run_tiny_cpu.csv")  # the simulator's GPU hook reads it


def test_llama3_8b_shape_arithmetic():
    s = fg.LLAMA3_8B
    assert 8.0e9 < s.weight_params() < 8.1e9
    assert s.kv_bytes_per_token() == 128 * 1024  # 2 x 32 layers x 8 KV heads x 128 x bf16


def test_without_a_gpu_the_real_run_says_so(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit, match="no CUDA device"):
        ge.main(["--out", str(tmp_path)])
    assert list(tmp_path.iterdir()) == []
