"""vLLM's distributed engine through the bench, on CPU: TP=2 baseline vs patched, end to end.

`models/tiny-llama` (4 heads, dummy weights) with tensor_parallel_size=2 and the mp backend,
VLLM_CPU_SIM_MULTI_NUMA=1 (set by the preset for more than one rank). Functional, not speed:
the greedy outputs must be identical between variants, the manifest must record the
distributed settings, and the patched profile must hold patch 0001's EngineCore scopes.
"""
from __future__ import annotations

import pytest

from analysis import chrome_trace
from experiments.bench import store
from experiments.bench import distributed, presets, runner
from tools import pins

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

MODEL = str(pins.REPO_ROOT / "models" / "tiny-llama")


@pytest.fixture(scope="module")
def tp2_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("tp2")
    args = distributed.engine_args(MODEL, tp=2, backend="mp")
    cfg = presets.resolve("smoke", model=MODEL, distributed=args)
    for v in cfg["variant_defs"].values():
        v["env"] = {**v["env"], "VLLM_CUSTOM_SCOPES_FOR_PROFILING": "1"}
    cfg["profile_dir"] = str(out / "traces")
    return runner.run_bench(cfg, out / "results", argv=["pytest", __file__]), out / "traces"


def test_tp2_baseline_and_patched_agree_and_are_recorded(tp2_bench):
    final, _ = tp2_bench
    manifest = store.load_manifest(final)
    assert manifest["status"] == "complete"
    assert manifest["distributed"] == {"tensor_parallel_size": 2, "distributed_executor_backend": "mp"}
    runs = store.load_runs(final)
    assert sorted(r["variant"] for r in runs) == ["baseline", "patched"]
    assert runs[0]["result"]["gate_tokens"] == runs[1]["result"]["gate_tokens"]
    for r in runs:
        assert r["result"]["engine_identity"]["patched_engine"] == (r["variant"] == "patched")


def test_tp2_patched_profile_has_engine_core_scopes(tp2_bench):
    _, traces = tp2_bench
    patched = next(d for d in traces.iterdir() if "patched" in d.name)
    frame = chrome_trace.load_profiler_dir(patched, categories=(chrome_trace.USER_ANNOTATION,))
    core = frame[frame["file"].str.contains("engine_core")]
    assert {"engine_core: step", "engine_core: schedule"} <= set(core["name"])
    # two TP workers traced besides EngineCore
    assert frame[~frame["file"].str.contains("engine_core")]["file"].nunique() >= 2
