"""The simulator driving vLLM's real Scheduler (baseline and patched): one simulator process per engine.

No engine start: the Scheduler runs with the cost model instead of a model. Checks
determinism, conservation, the step-by-step decision match against the committed
recorded real runs, the `vllm bench serve` JSON keys, and patch 0002's direction.
"""
from __future__ import annotations

import json

import pytest

from experiments.bench import aggregate, presets
from experiments.sim import api, decisions
from experiments.sim.cost_models import CALIBRATION_DIR
from tools.pins import REPO_ROOT

# The long-document A/B: the long_docs workload and engine shape of the bench's long-docs preset
# (documents 4-7x a 512-token step budget) when the bench has it, else mixed_long_short with the
# prefill-cap preset's settings. 16 req/s: at the preset's 2 req/s the calibrated engine is idle when
# most short turns arrive, so no cap can change their TTFT.
if "long-docs" in presets.PRESETS:
    LONG = ("long_docs", presets.PRESETS["long-docs"]["engine_args"], 16)
    CAP_ARGS = presets.VARIANTS["patched-token-cap"]["engine_args"]
else:
    LONG = ("mixed_long_short", {}, 16)
    CAP_ARGS = presets.VARIANTS["patched-prefill-cap"]["engine_args"]
RECORDED = sorted(CALIBRATION_DIR.glob("recorded-*.json"))
# speculative decoding as `vllm serve --speculative-config` takes it; the simulator runs no drafter (ngram
# needs no draft model), the acceptance rate stands for one
SPEC = {"speculative_config": {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 3,
                               "prompt_lookup_min": 2}}


@pytest.fixture(scope="module")
def batch():
    small = {"num_requests": 32}
    jobs = {
        "a": api.make_job("baseline", None, "mixed_long_short", 16, 3, "cpu", workload_overrides=small),
        "a_again": api.make_job("baseline", None, "mixed_long_short", 16, 3, "cpu", workload_overrides=small),
        "base_long": api.make_job("baseline", LONG[1], LONG[0], LONG[2], 0, "cpu"),
        "cap_long": api.make_job({"engine": "patched", "engine_args": CAP_ARGS}, LONG[1], LONG[0], LONG[2], 0, "cpu"),
        "served_burst": api.make_job("baseline", None, "mixed_long_short", "inf", 0, "cpu-served",
                                     workload_overrides=small),
        "shared_prefix": api.make_job("baseline", None, "shared_prefix_chat", "inf", 0, "cpu",
                                      workload_overrides={"num_requests": 16}),
        **{f"spec_{a}": api.make_job("baseline", SPEC, "mixed_long_short", 16, 3, "cpu", workload_overrides=small,
                                     spec_acceptance=a) for a in (0.0, 1.0)},
    }
    jobs["a"]["record_decisions"] = True
    recorded = {p.stem: json.loads(p.read_text()) for p in RECORDED}
    for name, rec in recorded.items():
        jobs[name] = decisions.replay_job(rec)
    out = dict(zip(jobs, api.run_jobs(list(jobs.values()))))
    return jobs, out, recorded


def test_same_inputs_same_bytes(batch):
    _, out, _ = batch
    for key in ("bench_serve", "steps", "summary"):
        a = json.dumps(out["a"][key] if key != "steps" else [{k: v for k, v in s.items() if k != "scheduled"}
                                                             for s in out["a"]["steps"]], sort_keys=True)
        b = json.dumps(out["a_again"][key], sort_keys=True)
        assert a == b, key


def test_conservation(batch):
    """Every request finishes with its output tokens; every token of every prompt is computed once."""
    jobs, out, _ = batch
    raw, rows = out["a"]["bench_serve"], jobs["a"]["rows"]
    assert raw["completed"] == len(rows) and raw["failed"] == 0
    assert raw["output_lens"] == [r["output_tokens"] for r in rows]
    assert raw["total_output_tokens"] == sum(r["output_tokens"] for r in rows)
    per_req: dict[str, int] = {}
    for s in out["a"]["steps"]:
        for rid, n in s["scheduled"].items():
            per_req[rid] = per_req.get(rid, 0) + n
    # random-word prompts share no full 128-token block and nothing is preempted: prompt + outputs - 1
    for row, plen in zip(rows, raw["input_lens"]):
        assert per_req[row["request_id"]] == plen + row["output_tokens"] - 1
    assert sum(s["prefill_tokens"] for s in out["a"]["steps"]) == raw["total_input_tokens"]
    assert all(len(itl) == r["output_tokens"] - 1 for itl, r in zip(raw["itls"], rows))


@pytest.mark.parametrize("name", [p.stem for p in RECORDED])
def test_decisions_match_recorded_real_run(batch, name):
    _, out, recorded = batch
    rec = recorded[name]
    verdict = decisions.compare(rec["steps"], out[name]["steps"])
    stale = "" if rec["series"] == out[name]["series"] else (
        f" (recorded on patch series {rec['series']}, simulated on {out[name]['series']}: if the patch changed "
        f"what the scheduler decides, re-record: `python -m experiments.sim calibrate --points {rec['point']}`)")
    assert verdict["identical"], f"{verdict.get('first_mismatch')}{stale}"
    assert verdict["real_steps"] > 100
    assert out[name]["scheduler"]["num_kv_blocks"] == rec["scheduler"]["num_kv_blocks"]
    assert out[name]["scheduler"]["scheduler_config"] == rec["scheduler"]["scheduler_config"]


def test_recorded_runs_cover_both_engines():
    assert {json.loads(p.read_text())["variant"]["engine"] for p in RECORDED} == {"baseline", "patched"}


def test_served_model_steps_cost_what_the_model_says_with_the_arrivals_they_saw(batch):
    """With cpu-served a burst reaches the scheduler paced by the frontend, while the first steps run:
    those steps count the arrivals and cost the model's price for them; no request is counted twice."""
    from experiments.sim.cost_models import load

    model = load("cpu-served")
    steps = batch[1]["served_burst"]["steps"]
    assert all(s["seconds"] == pytest.approx(model.step_seconds(s), rel=1e-12) for s in steps)
    arrived = sum(s["arrivals"] for s in steps)
    assert 0 < arrived <= 32 and steps[0]["arrivals"] > 0


def test_speculative_decoding_accepts_as_told_and_every_request_gets_its_tokens(batch):
    """Acceptance 0: every draft the scheduler scheduled is rejected and rolled back, one token per step;
    acceptance 1: every draft kept, so fewer steps and a shorter TPOT; both finish every request with its
    output tokens; a verified draft is priced as a prompt token by a model fitted without drafts."""
    jobs, out, _ = batch
    none, every = out["spec_0.0"], out["spec_1.0"]
    for o in (none, every):
        raw, rows = o["bench_serve"], jobs["spec_0.0"]["rows"]
        assert raw["completed"] == len(rows) and raw["output_lens"] == [r["output_tokens"] for r in rows]
        assert o["spec_decode"]["draft_tokens"] > 0 and "speculative decoding" in o["label"]
        assert sum(s["prefill_tokens"] - s["draft_tokens"] for s in o["steps"]) == raw["total_input_tokens"]
    assert none["spec_decode"]["accepted_drafts"] == 0
    assert every["spec_decode"]["accepted_drafts"] == every["spec_decode"]["draft_tokens"]
    assert len(every["steps"]) < len(none["steps"])
    assert every["summary"]["median_tpot_ms"] < none["summary"]["median_tpot_ms"]
    assert out["a"]["spec_decode"] is None and all(s["draft_tokens"] == 0 for s in out["a"]["steps"])


def test_prefix_cache_hits_make_context_shared_within_a_step(batch):
    """shared_prefix_chat's requests hit each other's cached prefix blocks: decode steps attend those blocks
    for several requests at once, so their unique context is below the summed one; random-word prompts
    share nothing."""
    shared = batch[1]["shared_prefix"]["steps"]
    assert all(s["unique_context_tokens"] <= s["context_tokens"] for s in shared)
    assert any(s["unique_context_tokens"] < s["context_tokens"] for s in shared if s["decode_seqs"] > 1)
    assert all(s["unique_context_tokens"] == s["context_tokens"] for s in batch[1]["a"]["steps"])


def test_json_keys_match_vllm_bench_serve(batch):
    _, out, _ = batch
    real = next(REPO_ROOT.glob("results/reference/cpu/prefill-cap-*/runs/01-baseline-r1-serve/"
                               "bench-serve-mixed_long_short.json"))
    real_keys = set(json.loads(real.read_text()))
    assert set(out["a"]["bench_serve"]) == real_keys
    assert "simulated (cost model cpu" in out["a"]["summary"]["simulated"]
    # the bench's aggregation reads a simulated run record like a real one
    record = {"variant": "baseline", "repeat": 1, "mode": "serve",
              "result": {"workloads": {"mixed_long_short": out["a"]["summary"]}}}
    metrics = {r["metric"] for r in aggregate.metric_rows(record)}
    assert {"output_throughput", "median_ttft_ms", "short_p90_ttft_ms", "median_tpot_ms"} <= metrics


def test_patch0002_cap_helps_short_requests_on_long_documents(batch):
    """Patch 0002's expected direction: short requests wait less behind long prefills; long ones wait more."""
    _, out, _ = batch
    base, cap = out["base_long"]["summary"], out["cap_long"]["summary"]
    assert out["cap_long"]["scheduler"]["scheduler_config"]["short_prefill_first"] == \
        CAP_ARGS["short_prefill_first"]
    assert cap["short_p90_ttft_ms"] < base["short_p90_ttft_ms"]
    assert cap["long_p90_ttft_ms"] >= base["long_p90_ttft_ms"]
    assert cap["completed"] == base["completed"]
