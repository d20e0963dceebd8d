"""End to end on the real CPU engine, as `make bench` runs it: baseline and patched in serve
mode (`vllm serve` + one load-client process), one server start each, through vLLM's own
distributed engine: tensor_parallel_size=2 with the mp backend on `models/tiny-llama` (4 heads,
dummy weights; VLLM_CPU_SIM_MULTI_NUMA=1 is set by the bench for more than one rank), so every
rank runs the variant's engine. Functional, not speed: 2 cores are not a cluster.

Checks the result directory, the correctness gate through the completions API, the timed
passes (each from an empty prefix cache, so each does the same work), that each variant
ran its own engine (the patched server's profile holds patch 0001's EngineCore ranges, recorded by patch 0001b's
opt-in EngineCore profiler, the
baseline one has no EngineCore trace at all), that both TP workers were traced, and that the
manifest records the distributed settings. The offline mode runs end to end in
tests/test_bench_uni_executor.py (one engine start shared by its tests).
"""
from __future__ import annotations

import json

import pytest

from analysis import chrome_trace, phases
from experiments.bench import store
from experiments.bench import distributed, presets, runner
from tools import pins

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

PATCH_0001_SCOPES = {
    "engine_core_step", "scheduler_step", "engine_core_execute_model_dispatch",
    "engine_core_execute_model_wait", "scheduler_update_from_output",
    "scheduler_waiting_get_computed_blocks", "scheduler_waiting_allocate_slots", "block_pool_get_new_blocks",
}

MODEL = str(pins.REPO_ROOT / "models" / "tiny-llama")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    cfg = presets.resolve("smoke", model=MODEL, distributed=distributed.engine_args(MODEL, tp=2, backend="mp"))
    cfg["modes"] = ["serve"]
    cfg["serve_passes"] = 2
    cfg["request_rate"] = {"shared_prefix_chat": "inf"}
    scopes = {"VLLM_CUSTOM_SCOPES_FOR_PROFILING": "1"}
    for v in cfg["variant_defs"].values():
        v["env"] = {**v["env"], **scopes}
    cfg["profile_dir"] = str(out / "traces")
    final = runner.run_bench(cfg, out / "results", argv=["pytest", __file__])
    return final, out / "traces"


def test_result_directory_is_complete(bench):
    final, _ = bench
    manifest = store.load_manifest(final)
    assert manifest["status"] == "complete" and manifest["engine_version"].startswith("0.32.0")
    assert manifest["distributed"] == {"tensor_parallel_size": 2, "distributed_executor_backend": "mp"}
    runs = store.load_runs(final)
    assert [r["variant"] for r in runs] == ["baseline", "patched"]
    for r in runs:
        res = r["result"]
        assert "--port" in res["server_cmd"] and res["peak_rss_bytes"] > 100 * 2**20
        w = res["workloads"]["shared_prefix_chat"]
        assert w["completed"] == 16 and w["total_output_tokens"] == 16 * 16 and w["output_throughput"] > 0
        # two timed passes, both from an empty prefix cache: the same scheduled work each time
        assert len(w["passes"]) == 2 and len(w["ttfts_s"]) == 2 * 16
        passes = json.loads((final / "runs" / f"{r['index']:02d}-{r['variant']}-r1-serve" / "client-result.json")
                            .read_text())["passes"]
        assert passes[0]["scheduler"]["step_tokens"] == passes[1]["scheduler"]["step_tokens"] > 0
        assert w["cpu_s_per_output_token"] > 0
    # The gate ran through the server and both variants produced identical greedy tokens.
    assert runs[0]["result"]["gate_tokens"] == runs[1]["result"]["gate_tokens"]
    assert len(runs[0]["result"]["gate_tokens"][0]) == presets.COMMON["gate"]["max_tokens"]
    assert "2 serve runs" in manifest["gate"]
    frame = store.summary_frame(final)
    assert {"output_throughput", "median_ttft_ms", "peak_rss_mb"} <= set(frame["metric"])


def test_patched_profile_has_engine_core_scopes_baseline_has_none(bench):
    _, traces = bench
    by_variant = {d.name.split("-")[1]: d for d in traces.iterdir()}
    base_files = [p.name for p in chrome_trace.trace_files(by_variant["baseline"])]
    assert base_files and not any("engine_core" in f for f in base_files)
    patched = chrome_trace.load_profiler_dir(by_variant["patched"], categories=(chrome_trace.USER_ANNOTATION,))
    core = patched[patched["file"].str.contains("engine_core")]
    assert PATCH_0001_SCOPES <= set(core["name"])
    assert patched[~patched["file"].str.contains("engine_core")]["file"].nunique() >= 2  # both TP workers
    shares = phases.phase_shares(core)
    assert shares["share"].sum() == pytest.approx(1.0, abs=1e-6)
    assert shares.set_index("phase").loc["schedule", "share"] > 0
