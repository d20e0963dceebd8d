"""End to end on the real CPU engine: baseline and patched, one engine start each.

Checks the result directory, the correctness gate, that each variant really
imported its own engine, and that the patched profile holds patch 0001's
EngineCore scopes while the baseline one has no EngineCore trace at all.
"""
from __future__ import annotations

import json

import pytest

from analysis import chrome_trace, phases
from experiments.bench import store
from experiments.bench import presets, runner

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

PATCH_0001_SCOPES = {
    "engine_core: step", "engine_core: schedule", "engine_core: execute_model",
    "engine_core: update_from_output", "schedule: get_computed_blocks (waiting)",
    "schedule: allocate_slots (waiting)", "block_pool: get_new_blocks",
}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    cfg = presets.resolve("smoke")
    scopes = {"VLLM_CUSTOM_SCOPES_FOR_PROFILING": "1"}
    for v in cfg["variant_defs"].values():
        v["env"] = scopes
    cfg["profile_dir"] = str(out / "traces")
    final = runner.run_bench(cfg, out / "results", argv=["pytest", __file__])
    return final, out / "traces"


def test_result_directory_is_complete(bench):
    final, _ = bench
    manifest = store.load_manifest(final)
    assert manifest["status"] == "complete" and manifest["engine_version"].startswith("0.32.0")
    runs = store.load_runs(final)
    assert [r["variant"] for r in runs] == ["baseline", "patched"]
    for r in runs:
        res = r["result"]
        assert res["engine_identity"]["patched_engine"] == (r["variant"] == "patched")
        assert res["output_tokens"] == 16 * 16 and res["output_throughput"] > 0
        assert res["peak_rss_bytes"] > 100 * 2**20
    # The gate ran and both variants produced identical greedy tokens.
    assert runs[0]["result"]["gate_tokens"] == runs[1]["result"]["gate_tokens"]
    assert len(runs[0]["result"]["gate_tokens"][0]) == presets.COMMON["gate"]["max_tokens"]
    frame = store.summary_frame(final)
    assert {"output_throughput", "peak_rss_mb"} <= set(frame["metric"])


def test_patched_profile_has_engine_core_scopes_baseline_has_none(bench):
    _, traces = bench
    by_variant = {d.name.split("-")[1]: d for d in traces.iterdir()}
    base_files = [p.name for p in chrome_trace.trace_files(by_variant["baseline"])]
    assert base_files and not any("engine_core" in f for f in base_files)
    patched = chrome_trace.load_profiler_dir(by_variant["patched"], categories=(chrome_trace.USER_ANNOTATION,))
    core = patched[patched["file"].str.contains("engine_core")]
    assert PATCH_0001_SCOPES <= set(core["name"])
    shares = phases.phase_shares(core)
    assert shares["share"].sum() == pytest.approx(1.0, abs=1e-6)
    assert shares.set_index("phase").loc["schedule", "share"] > 0
