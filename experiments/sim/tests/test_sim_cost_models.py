"""Cost models: the committed CPU fit reproduces its own fitted points; fits recover exact data; roofline sane."""
from __future__ import annotations

import json

import pytest

from experiments.sim import cost_models
from experiments.sim.cost_models import FEATURES, LinearStepCost
from experiments.sim.errors import SimInputError


def synthetic_steps(n: int = 60) -> tuple[list[dict], list[float]]:
    rows = [{"prefill_tokens": (i * 37) % 2048, "decode_seqs": (i * 7) % 40, "context_tokens": (i * 911) % 30000}
            for i in range(n)]
    secs = [0.004 + 2e-5 * r["prefill_tokens"] + 3e-4 * r["decode_seqs"] + 1e-7 * r["context_tokens"] for r in rows]
    return rows, secs


def test_fit_recovers_an_exact_linear_cost():
    rows, secs = synthetic_steps()
    m = LinearStepCost.fit_steps("t", rows, secs, source="synthetic")
    assert m.overhead_s == pytest.approx(0.004, rel=1e-9)
    assert [m.coef[f] for f in FEATURES] == pytest.approx([2e-5, 3e-4, 1e-7], rel=1e-7)
    assert m.fit["held_out"]["median_abs_rel_error"] < 1e-9
    assert [m.step_seconds(r) for r in rows] == pytest.approx(secs, rel=1e-9)


def test_a_fit_over_more_features_carries_them_and_predicts_with_them():
    """The served model adds attention_pairs: fitted, stored under coef, used by step_seconds."""
    rows, _ = synthetic_steps()
    for i, r in enumerate(rows):
        r["attention_pairs"] = (i * 5003) % 400000
    secs = [0.004 + 2e-5 * r["prefill_tokens"] + 3e-4 * r["decode_seqs"] + 1e-7 * r["context_tokens"]
            + 2e-8 * r["attention_pairs"] for r in rows]
    m = LinearStepCost.fit_steps("t", rows, secs, source="synthetic", features=(*FEATURES, "attention_pairs"))
    assert m.coef == pytest.approx({"prefill_tokens": 2e-5, "decode_seqs": 3e-4, "context_tokens": 1e-7,
                                    "attention_pairs": 2e-8}, rel=1e-6)
    assert [m.step_seconds(r) for r in rows] == pytest.approx(secs, rel=1e-9)


def test_committed_cpu_model_reproduces_its_fitted_points():
    """Refitting the committed recorded steps gives the committed coefficients and errors."""
    committed = cost_models.load("cpu")
    recorded = json.loads((cost_models.CALIBRATION_DIR / "recorded-baseline.json").read_text())
    steps = recorded["steps"]
    refit = LinearStepCost.fit_steps("cpu", steps, [s["step_s"] for s in steps], source=committed.source)
    assert refit.overhead_s == pytest.approx(committed.overhead_s, rel=1e-9)
    assert refit.coef == pytest.approx(committed.coef, rel=1e-9)
    for part in ("train", "held_out"):
        assert refit.fit[part] == pytest.approx(committed.fit[part], rel=1e-9)
    # every coefficient is physical (no negative cost per token) and the held-out error is recorded
    assert committed.overhead_s > 0 and all(v >= 0 for v in committed.coef.values())
    assert committed.fit["held_out"]["n"] > 20


def test_gpu_csv_hook_fits_from_rows(tmp_path):
    rows, secs = synthetic_steps()
    csv_path = tmp_path / "gpu_steps.csv"
    csv_path.write_text("prefill_tokens,decode_seqs,context_tokens,seconds\n" + "".join(
        f"{r['prefill_tokens']},{r['decode_seqs']},{r['context_tokens']},{s!r}\n" for r, s in zip(rows, secs)))
    m = cost_models.load(f"gpu-csv:{csv_path}")
    assert m.overhead_s == pytest.approx(0.004, rel=1e-9)
    assert "gpu-csv:gpu_steps.csv" in m.label and "calibrated" in m.label
    bad = tmp_path / "bad.csv"
    bad.write_text("prefill_tokens,seconds\n1,2\n")
    with pytest.raises(SimInputError, match="missing column"):
        cost_models.load(f"gpu-csv:{bad}")


def test_roofline_is_labelled_modeled_and_memory_bound_for_decode():
    m = cost_models.load("roofline-h100", cost_models.REPO_ROOT / "models" / "tiny-llama-trained")
    assert "modeled" in m.label and "not measured" in m.label
    h200 = cost_models.load("roofline-h200", cost_models.REPO_ROOT / "models" / "tiny-llama-trained")
    decode = {"prefill_tokens": 0, "decode_seqs": 8, "context_tokens": 8000, "attention_pairs": 8 * 1001,
              "num_reqs": 8, "total_tokens": 8}
    # decode is bandwidth-bound: the H200's extra bandwidth shows up in full
    assert m.step_seconds(decode) / h200.step_seconds(decode) == pytest.approx(4.8 / 3.35, rel=1e-9)


def test_bad_cost_model_names_fail_clearly(tmp_path):
    with pytest.raises(SimInputError, match="unknown cost model"):
        cost_models.load("fastest")
    with pytest.raises(SimInputError, match="not calibrated"):
        cost_models.load(str(tmp_path / "missing.json"))
    with pytest.raises(SimInputError, match="unknown GPU"):
        cost_models.load("roofline-a100", "models/tiny-llama-trained")
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"name": "odd", "overhead_s": 0.001,
                               "coef": {**dict.fromkeys(FEATURES, 0.0), "kv_bytes": 1.0}}))
    with pytest.raises(SimInputError, match="unknown step features"):
        cost_models.load(str(odd))


def test_arrivals_while_a_step_runs_lengthen_it():
    """A step with an arrivals cost counts the requests reaching the scheduler before it ends, and the
    longer step lets more reach it, until the count stops growing; the added ones are not counted again."""
    from experiments.sim.driver import cost_with_arrivals

    m = LinearStepCost(name="t", overhead_s=0.01, coef={"decode_seqs": 0.0, "arrivals": 0.01})
    reach = [0.0, 0.005, 0.015, 0.025, 0.05]
    assert cost_with_arrivals(m, {"decode_seqs": 1}, reach, 1, 0.0) == (3, pytest.approx(0.04))
    assert cost_with_arrivals(m, {"decode_seqs": 1}, reach, 4, 0.0) == (0, pytest.approx(0.01))
    no_arrival_cost = LinearStepCost(name="t", overhead_s=0.01, coef={"decode_seqs": 0.0})
    assert cost_with_arrivals(no_arrival_cost, {"decode_seqs": 1}, reach, 1, 0.0) == (1, pytest.approx(0.01))


def test_context_in_blocks_several_requests_hold_counts_once():
    """Two decodes behind the same two cached prefix blocks (block size 4, 8 and 10 tokens computed): 8
    tokens are attended twice, so the unique context is 18 - 8; a partial block is never shared."""
    import types

    from experiments.sim.cost_models import shared_context_tokens, step_features

    blocks = {"a": [7, 8], "b": [7, 8, 9], "c": [3, 4]}
    sched = types.SimpleNamespace(block_size=4, kv_cache_manager=types.SimpleNamespace(
        get_block_ids=lambda rid: (blocks[rid],)))
    n, before = {"a": 1, "b": 1}, {"a": 8, "b": 10}
    assert shared_context_tokens(sched, n, before) == 8
    feats = step_features(n, before, {"a": 6, "b": 6}, shared_context_tokens(sched, n, before))
    assert (feats["context_tokens"], feats["unique_context_tokens"]) == (18, 10)
    assert shared_context_tokens(sched, {"a": 1, "c": 1}, {"a": 8, "c": 8}) == 0
    assert shared_context_tokens(sched, {"a": 1, "b": 1}, {"a": 7, "b": 7}) == 4  # only the first block is full
