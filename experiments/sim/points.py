"""The configurations the simulator is validated on (real runs and simulated runs use these same defs).

Each point is a bench variant def (engine, env, engine_args), so the real runs go
through `experiments.bench.runner.run_bench` unchanged and the simulated ones
through `experiments.sim.api` with the same engine arguments.
"""
from __future__ import annotations

from experiments.bench.presets import LONG_DOCS_ENGINE_ARGS

VALIDATION_POINTS = {
    "baseline": {"engine": "baseline", "env": {}, "engine_args": {}},
    # patch 0002 on (bounded): while a short prefill runs, long prefills share at most 512 tokens of
    # each 2048-token step
    "cap512": {"engine": "patched", "env": {},
               "engine_args": {"long_prefill_token_threshold": 512, "short_prefill_first": "bounded"}},
    # a different per-step budget on the baseline engine
    "base-mbt1024": {"engine": "baseline", "env": {}, "engine_args": {"max_num_batched_tokens": 1024}},
}
VALIDATION_WORKLOADS = {"mixed_long_short": {"num_requests": 64}, "shared_prefix_chat": {"num_requests": 64}}
VALIDATION_RATES = ("16", "inf")

# Patches 0002/0003's case: documents 4-7x the step budget among short turns, with the long-docs
# preset's engine args inside each point (real and simulated runs then get the same) and both of its
# arrival patterns (Poisson below capacity, a burst at capacity) served by one server start.
LONG_DOCS_POINTS = {
    "ld-baseline": {"engine": "baseline", "env": {}, "engine_args": dict(LONG_DOCS_ENGINE_ARGS)},
    # patch 0002 (bounded) at half the 512-token budget, as the long-docs preset's token-cap arm
    "ld-cap256": {"engine": "patched", "env": {},
                  "engine_args": {**LONG_DOCS_ENGINE_ARGS, "long_prefill_token_threshold": 256,
                                  "short_prefill_first": "bounded"}},
}
LONG_DOCS_WORKLOADS = {"long_docs": {"num_requests": 64}, "long_docs_burst": {}}

# The served benches (`python -m experiments.sim served`): name -> (points, workloads, rate per workload).
SERVED_BENCHES = {
    **{f"rate{rate}": (VALIDATION_POINTS, VALIDATION_WORKLOADS, {wl: rate for wl in VALIDATION_WORKLOADS})
       for rate in VALIDATION_RATES},
    "long-docs": (LONG_DOCS_POINTS, LONG_DOCS_WORKLOADS, {"long_docs": "4", "long_docs_burst": "inf"}),
}
