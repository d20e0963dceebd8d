"""The public GPU experiments: extraction against a stored raw excerpt, the committed facts, the fitted cost
model's registration and fit, one whole experiment replayed through vLLM 0.32.0's scheduler (both cost
models, ~10 s: one simulator process) reproducing the committed figures, and the README's tables."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.sim import cost_models
from experiments.sim.errors import SimInputError
from experiments.sim.public_gpu import extract, fit, metrics, replay, report

DATA = Path(__file__).resolve().parent / "data"
EXCERPT = "jan20-codellama-prefill-1"
SMALL = "jan20-prefill-llama7b-tp1-1"  # 197 requests, well under 1 s of simulator loop per cost model


def manifest() -> dict:
    return {m["name"]: m for m in extract.load_manifest()["experiments"]}


def test_extraction_of_the_stored_excerpt_matches_the_committed_facts():
    meta, rows = extract.extract_experiment(extract.dir_reader(DATA), EXCERPT)
    committed = manifest()[EXCERPT]
    assert {k: v for k, v in meta.items() if k != "num_requests"} == \
        {k: v for k, v in committed.items() if k != "num_requests"}
    assert len(rows) == 8
    # the excerpt's first 8 spans are the run's first 8 requests, so the same offsets from the same first one
    assert extract.rows_csv(rows) == "".join(
        extract.rows_csv(extract.load_requests(EXCERPT)).splitlines(keepends=True)[:9])
    assert meta["log"] | {} == committed["log"]
    assert (meta["log"]["num_gpu_blocks"], meta["log"]["block_size"], meta["log"]["vllm_version"]) == (2790, 16, "0.11.0")
    assert meta["log"]["engine_args"] == {"max_model_len": 8192, "max_num_batched_tokens": 64, "max_num_seqs": 32}
    assert rows[0] == {"index": 0, "arrival_s": 0.0, "prompt_tokens": 2998, "output_tokens": 56,
                       "ttft_s": pytest.approx(1.320268154144287), "e2e_s": pytest.approx(2.7515416145324707),
                       "queue_s": pytest.approx(3.187917172908783e-05),
                       "prefill_s": pytest.approx(1.3178779617883265), "decode_s": pytest.approx(1.4311827970668674)}


def test_bad_raw_input_fails_naming_the_cause(tmp_path):
    with pytest.raises(SimInputError, match="lacks"):
        line = json.loads((DATA / EXCERPT / "traces.json").read_text().splitlines()[0])
        line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"] = []
        extract.parse_spans(json.dumps(line))
    with pytest.raises(SimInputError, match="no server start"):
        extract.parse_log("2026-01-20 INFO nothing here\n")
    with pytest.raises(SimInputError, match="does not exist"):
        extract.load_requests("no-such-experiment")


def test_committed_facts_cover_every_experiment_with_its_source():
    m = extract.load_manifest()
    assert m["source"]["commit"] == extract.SOURCE_COMMIT
    assert [e["name"] for e in m["experiments"]] == list(extract.EXPERIMENTS)
    for e in m["experiments"]:
        rows = extract.load_requests(e["name"])
        assert len(rows) == e["num_requests"] and rows[0]["arrival_s"] == 0.0
        assert all(b["arrival_s"] >= a["arrival_s"] for a, b in zip(rows, rows[1:]))
        assert e["log"]["vllm_version"] == "0.11.0" and e["log"]["gpu_stated"] is None
        assert e["model"] in replay.SHAPES
    # the README's version table: KV blocks 2,537-2,790 at block size 16, prompts up to 7,168 tokens
    blocks = sorted(e["log"]["num_gpu_blocks"] for e in m["experiments"] if "CodeLlama" in e["model"])
    assert (blocks[0], blocks[-1]) == (2537, 2790)
    assert max(r["prompt_tokens"] for e in m["experiments"] for r in extract.load_requests(e["name"])) == 7168


def test_shared_prefix_is_rebuilt_as_identical_ids():
    meta = manifest()[SMALL]
    rows = extract.load_requests(SMALL)[:3]
    ids = replay.prompt_ids(meta, rows)
    assert [len(p) for p in ids] == [r["prompt_tokens"] for r in rows]
    assert ids[0][:1025] == ids[1][:1025] == ids[2][:1025] and ids[0][0] == replay.BOS_ID
    assert ids[0][1025:1041] != ids[1][1025:1041]
    train = manifest()["jan20-codellama-train-1"]
    t = replay.prompt_ids(train, extract.load_requests("jan20-codellama-train-1")[:2])
    assert t[0][1:17] != t[1][1:17]  # no prefix in that profile: nothing shared past BOS


def test_the_fitted_model_is_registered_by_name_at_any_shape():
    m = cost_models.load("public-gpu-h100:experiments/sim/shapes/llama-3.1-8b.json")
    assert isinstance(m, cost_models.FittedRooflineCost)
    assert "fitted on public GPU traces" in m.label and m.gpu.name == "H100 SXM"
    assert set(fit.FIT_EXPERIMENTS) == set(m.fit["fitted_on"]) and extract.SOURCE_COMMIT in m.source
    decode = {"total_tokens": 8, "attention_pairs": 8 * 1001, "context_tokens": 8000, "num_reqs": 8}
    bigger = {**decode, "total_tokens": 2048, "attention_pairs": 2048 * 1500}
    assert 0 < m.step_seconds(decode) < m.step_seconds(bigger)
    big = cost_models.load("public-gpu-h100:experiments/sim/shapes/codellama-34b.json")
    assert big.step_seconds(decode) > m.step_seconds(decode)
    with pytest.raises(SimInputError, match="unknown cost model"):
        cost_models.load("public-gpu-h100x")
    with pytest.raises(SimInputError, match="not fitted"):
        cost_models.load("gpu-fit:/no/such.json:experiments/sim/shapes/llama-3.1-8b.json")


def test_the_window_fit_recovers_known_coefficients():
    import numpy as np

    rng = np.random.default_rng(0)
    true = np.array([0.002, 1.2, 1.1, 5.0, 0.9, 0.0])
    eqs = []
    for i in range(60):
        x = rng.uniform(0.1, 2.0, size=6) * np.array([10, 0.2, 0.5, 0.01, 0.05, 30])
        eqs.append(("decode", i, x, float(x @ true)))
    got = fit.solve(eqs)
    assert got["overhead_s"] == pytest.approx(0.002, rel=1e-6)
    assert [got["coef"][t] for t in fit.TERMS] == pytest.approx(list(true[1:]), abs=1e-6)


def test_fit_refuses_the_held_out_experiments():
    with pytest.raises(SimInputError, match="must not be fitted on"):
        fit.fit(names=(fit.HELD_OUT[0],))


def test_replay_of_one_experiment_reproduces_the_committed_figures():
    """The whole 197-request experiment through the real scheduler with both cost models: same inputs give
    the committed errors, the experiment's KV blocks and budget, and prefix-cache hits on the shared prefix."""
    meta = manifest()[SMALL]
    rows = extract.load_requests(SMALL)
    jobs = [replay.make_job(meta, rows, replay.cost_spec(kind, meta)) for kind in report.KINDS]
    outs = replay.api.run_jobs(jobs)
    committed = {r["cost_model"]: r for r in json.loads(report.REPLAY_PATH.read_text())["results"]
                 if r["experiment"] == SMALL}
    for kind, out in zip(report.KINDS, outs):
        assert out["scheduler"]["num_kv_blocks"] == 2537 and out["scheduler"]["block_size"] == 16
        assert out["scheduler"]["scheduler_config"]["max_num_batched_tokens"] == 4096
        assert out["bench_serve"]["completed"] == len(rows)
        got = report.score(rows, out)
        for m in metrics.METRICS:
            assert got[m]["mpe"] == pytest.approx(committed[kind]["errors"][m]["mpe"], rel=1e-9, abs=1e-9)
        computed = sum(s["prefill_tokens"] for s in out["steps"])
        assert computed < sum(r["prompt_tokens"] for r in rows) - 100 * 1024  # the prefix was mostly a hit


def test_readme_tables_are_the_committed_results():
    doc = json.loads(report.REPLAY_PATH.read_text())
    assert report.render(doc, report.committed_models()) in report.README.read_text()
    # the prose beside the tables: the roofline prices every run too fast; the sensitivity replay is there
    roof = [r for r in doc["results"] if r["cost_model"] == "roofline"]
    assert len(roof) == 4 and all(e["mpe"] < 0 for r in roof for e in r["errors"].values())
    assert {r["cost_model"] for r in doc["results"]} == {*report.KINDS, report.SENSITIVITY, report.POST_HOC}


def test_each_leave_one_out_fit_never_saw_its_run():
    from experiments.sim.public_gpu import crossval

    doc = json.loads(crossval.CROSSVAL_PATH.read_text())
    assert [r["experiment"] for r in doc["results"]] == list(extract.EXPERIMENTS)
    for r in doc["results"]:
        saved = json.loads((crossval.CROSSVAL_DIR / r["fit"]).read_text())
        assert r["experiment"] not in saved["fit"]["fitted_on"] and len(saved["fit"]["fitted_on"]) == 3
        assert saved["fit"]["terms"] == list(fit.TERMS)
