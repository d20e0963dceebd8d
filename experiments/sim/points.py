"""The configurations the simulator is validated on (real runs and simulated runs use these same defs).

Each point is a bench variant def (engine, env, engine_args), so the real runs go
through `experiments.bench.runner.run_bench` unchanged and the simulated ones
through `experiments.sim.api` with the same engine arguments.
"""
from __future__ import annotations

VALIDATION_POINTS = {
    "baseline": {"engine": "baseline", "env": {}, "engine_args": {}},
    # patch 0002 on: long prefills share at most 512 tokens of each 2048-token step
    "cap512": {"engine": "patched", "env": {}, "engine_args": {"max_long_prefill_tokens_per_step": 512}},
    # a different per-step budget on the baseline engine
    "base-mbt1024": {"engine": "baseline", "env": {}, "engine_args": {"max_num_batched_tokens": 1024}},
}
VALIDATION_WORKLOADS = {"mixed_long_short": {"num_requests": 64}, "shared_prefix_chat": {"num_requests": 64}}
VALIDATION_RATES = ("16", "inf")
