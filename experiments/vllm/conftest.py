"""One engine session for the c-lab engine tests: one child process, one vLLM import, every test engine.

c3 (chunked prefill off, then on), c2 (the block recorder) and c1 (the step recorder) each get a fresh
in-process engine, one after the other, in the child `experiments.vllm.engine_child` starts; the test
modules read their part of the results. (c5 starts its two engines in children of their own: LLM with its
EngineCore in a separate process, fresh spec-decode counters for each.)
"""
from __future__ import annotations

import pytest

from experiments.vllm.engine_child import run_jobs

MODEL_WEIGHTS = "models/tiny-llama-trained/model.safetensors"


def session_jobs() -> dict[str, tuple[str, dict]]:
    """name -> (engine module, config) of every in-process engine the c-lab tests need."""
    from experiments.vllm.c1_prefill_decode_batching import lab as c1
    from experiments.vllm.c2_paged_kv_cache import lab as c2
    from experiments.vllm.c2_paged_kv_cache.workload import build_workload
    from experiments.vllm.c3_mixed_scheduling import lab as c3
    from experiments.vllm.c3_mixed_scheduling.workload import build_requests, to_jsonable

    c3_reqs = to_jsonable(build_requests(num_requests=8, rate_per_s=40, long_fraction=0.25, long_words=700,
                                         short_words=32, output_tokens=8))
    jobs = {f"c3-{name}": (c3.ENGINE_MODULE, {**c3.engine_config(name, chunked, budget, c3_reqs, warmup=0, repeats=1),
                                             "max_extra": 0})
            for name, chunked, budget in (("off", False, 2048), ("on", True, C3_BUDGET_ON))}
    jobs["c2"] = (c2.ENGINE_MODULE, c2.engine_config(C2_NUM_BLOCKS, build_workload(seed=0, scale=0.35)))
    jobs["c1"] = (c1.ENGINE_MODULE, {"model": str(c1.MODEL_DIR), **c1.ENGINE, **C1_CFG})  # last: global recorder
    jobs["_c3_requests"] = ("", c3_reqs)
    return jobs


C3_BUDGET_ON = 256
C2_NUM_BLOCKS = 40
C1_CFG = {"max_num_seqs": 8, "repeats": 1, "prefill_lengths": [40, 300], "decode_batches": [1, 3],
          "decode_prompt": 24, "decode_tokens": 6, "context_batch": 2, "context_lengths": [600], "context_tokens": 4,
          "context_repeats": 1, "batching_repeats": 1,
          "batching": {"slots": 2, "prompt_lengths": [30, 40, 50, 60, 70], "output_lengths": [2, 9, 3, 3, 5]}}


def run_session() -> dict:
    jobs = session_jobs()
    extras = {k: jobs.pop(k)[1] for k in list(jobs) if k.startswith("_")}
    results = run_jobs(list(jobs.values()), timeout=900)
    return {**dict(zip(jobs, results)), **extras}


@pytest.fixture(scope="session")
def engine_session(tmp_path_factory, worker_id) -> dict:
    """Once per test run, also when `make test` spreads the files over pytest-xdist workers: the
    first worker that needs it runs the session under a file lock, the others read its JSON
    (pytest-xdist's documented recipe for a session fixture that must run once)."""
    import json

    from filelock import FileLock

    from tools import pins

    if not (pins.REPO_ROOT / MODEL_WEIGHTS).exists():
        pytest.skip("no trained weights: run `python -m tools.train_tiny_model`")
    if worker_id == "master":  # plain pytest, no workers
        return run_session()
    shared = tmp_path_factory.getbasetemp().parent / "clab-engine-session.json"
    with FileLock(str(shared) + ".lock"):
        if not shared.exists():
            shared.write_text(json.dumps(run_session()))
        return json.loads(shared.read_text())
