"""Every bench preset resolved for CUDA, built through vLLM's own EngineArgs and CLI parsers.

No GPU here, so the engine configuration is built under the CPU platform "as far as it builds
without a device": what this catches is an argument vLLM 0.32.0 does not know (renamed,
patched-engine-only flags given to the baseline), a value its parser rejects, or a bench flag
that `vllm serve` / `vllm bench serve` would refuse. It cannot prove that the CUDA engine
starts, that its kernels run, or how much memory it takes: those need a real NVIDIA run.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.bench import presets, processes, serve, workloads
from tools import pins

pytestmark = pytest.mark.slow  # two vLLM imports + ~20 engine configurations: ~40 s on 2 cores

MODEL = presets.EMBEDDED_MODEL


def cases_for(engine: str, backend: str = "cuda") -> list[dict]:
    out = []
    for preset in presets.PRESETS:
        if presets.PRESETS[preset].get("interleave") == "passes" and backend != "cpu":
            continue  # CPU only: refused on a GPU (presets.check_interleave, tested in test_bench_aggregation)
        cfg = presets.resolve(preset, backend=backend, model=MODEL)
        for variant, vdef in cfg["variant_defs"].items():
            if vdef["engine"] != engine:
                continue
            metas = {name: {"jsonl": "/tmp/w.jsonl", "num_requests": 4} for name in cfg["workloads"]}
            out.append({"name": f"{preset}/{variant}", "model": MODEL, "seed": cfg["seed"],
                        "engine_args": {**cfg["engine_args"], **vdef["engine_args"]},
                        "server_args": serve.server_args(cfg, variant, port=8123),
                        "client_args": [serve.client_args(cfg, n, m, 8123, Path("/tmp/r"), result_filename=f"{n}.json")
                                        for n, m in metas.items()]})
    return out


@pytest.fixture(scope="module", params=["baseline", "patched"])
def probed(request, tmp_path_factory):
    engine = request.param
    if engine == "patched" and not (pins.PATCHED_ENGINE_DIR / "vllm" / "__init__.py").exists():
        pytest.skip("patched engine not built (make apply-patches)")
    tmp = tmp_path_factory.mktemp(f"probe-{engine}")
    cases = cases_for(engine)
    (tmp / "cases.json").write_text(json.dumps(cases))
    res = subprocess.run([sys.executable, "-m", "tests.bench_config_probe", str(tmp / "cases.json"),
                          str(tmp / "out.json")], env=processes.variant_env(engine), cwd=pins.REPO_ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return engine, cases, json.loads((tmp / "out.json").read_text())


def test_every_cuda_preset_builds_through_engine_args_and_vllm_serve(probed):
    engine, cases, results = probed
    assert len(results) == len(cases) > 0
    for case, res in zip(cases, results):
        assert "config_error" not in res, f"{res['name']}: {res['config_error']}"
        assert "serve_error" not in res, f"{res['name']}: {res['serve_error']}"
        assert res["serve_mismatches"] == [], f"{res['name']}: vllm serve parsed {res['serve_mismatches']} differently"
        assert "client_error" not in res, f"{res['name']}: {res['client_error']}"
        want = case["engine_args"]
        assert res["config"]["num_gpu_blocks_override"] == presets.CUDA_KV_BLOCKS
        assert res["config"]["max_model_len"] == want["max_model_len"] and "bfloat16" in res["config"]["dtype"]


def test_a_renamed_flag_is_caught(tmp_path):
    """The probe itself: an argument vLLM does not know is reported, not silently dropped."""
    case = cases_for("baseline")[0]
    case["engine_args"] = {**case["engine_args"], "max_num_batched_tokenz": 512}
    case["server_args"] = case["server_args"] + ["--max-num-batched-tokenz", "512"]
    (tmp_path / "c.json").write_text(json.dumps([case]))
    subprocess.run([sys.executable, "-m", "tests.bench_config_probe", str(tmp_path / "c.json"),
                    str(tmp_path / "o.json")], env=processes.variant_env("baseline"), cwd=pins.REPO_ROOT,
                   check=True, capture_output=True, timeout=600)
    res = json.loads((tmp_path / "o.json").read_text())[0]
    assert "max_num_batched_tokenz" in res["config_error"] and "max-num-batched-tokenz" in res["serve_error"]


def test_cuda_kv_size_makes_usage_readable():
    """2048 blocks x 16 tokens: shared_prefix_chat at rate inf (all 64 requests resident) fills a
    readable share of it, where 85% of an H200 (~1.4M blocks for the tiny model) read ~0."""
    cfg = presets.resolve("default", backend="cuda")
    spec = workloads.make_spec("shared_prefix_chat", **cfg["workloads"]["shared_prefix_chat"])
    resident_tokens = spec.num_prefixes * spec.prefix_words + spec.num_requests * (
        spec.suffix_words + spec.output_tokens)
    share = resident_tokens / (cfg["engine_args"]["num_gpu_blocks_override"] * 16)
    assert 0.2 < share < 0.9
    # and the longest request still fits many times over
    assert cfg["engine_args"]["num_gpu_blocks_override"] * 16 >= 4 * cfg["engine_args"]["max_model_len"]
