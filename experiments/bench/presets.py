"""Bench presets: which variants, workloads, modes and repeats a bench runs.

A variant is (engine, env, engine_args): `engine` picks baseline or patched
vLLM; env/engine_args switch a patch's flag on. The default model is the
embedded tiny Llama with trained weights (models/tiny-llama-trained): no
network, and greedy outputs that mean something for the correctness gate.
MODEL=<dir> with only a config (e.g. models/tiny-llama) runs with dummy
weights; MODEL=<hub id> swaps in a real model (needs network and, sensibly, a GPU).
"""
from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

from tools.pins import REPO_ROOT

EMBEDDED_MODEL = str(REPO_ROOT / "models" / "tiny-llama-trained")


def detect_backend() -> str:
    """cpu or cuda: BACKEND if set, else what `make setup` recorded in the venv (.backend), else cpu."""
    if os.environ.get("BACKEND"):
        return os.environ["BACKEND"]
    backend_file = Path(sys.prefix) / ".backend"
    return backend_file.read_text().strip() if backend_file.exists() else "cpu"

# Engine arguments shared by every variant of a preset (passed to LLM(...) and
# as `vllm serve` flags). CPU: enforce_eager because torch.compile warm-up costs
# ~30 s per engine start on 2 cores and the patches touch EngineCore, not the
# model forward; float32 keeps greedy outputs comparable across batch shapes.
CPU_ENGINE_ARGS = {
    "dtype": "float32",
    "max_model_len": 2048,
    "kv_cache_memory_bytes": 1 << 30,
    "enforce_eager": True,
}
# CUDA: a fixed KV cache of 2048 blocks (x 16 tokens = 32,768 tokens, any model) instead of
# whatever 85% of the GPU holds (~1.4M blocks for the tiny model, so kv_cache_usage_max read ~0).
# The default workloads then fill a readable share of it: shared_prefix_chat at rate inf holds
# ~12k tokens at once (tests/test_bench_cuda_presets.py checks the share).
CUDA_KV_BLOCKS = 2048
CUDA_ENGINE_ARGS = {"dtype": "bfloat16", "max_model_len": 4096, "gpu_memory_utilization": 0.85,
                    "num_gpu_blocks_override": CUDA_KV_BLOCKS}

VARIANTS = {
    "baseline": {"engine": "baseline", "env": {}, "engine_args": {}},
    "patched": {"engine": "patched", "env": {}, "engine_args": {}},
    # Patch 0001 with its scopes switched on (the cost of observability).
    "patched-scopes": {"engine": "patched", "env": {"VLLM_CUSTOM_SCOPES_FOR_PROFILING": "1"},
                       "engine_args": {}},
    # The baseline engine with upstream's own profiling scopes on: patched-scopes minus this is
    # the cost of the scopes patch 0001 adds (the env var also switches upstream's worker scopes on).
    "baseline-scopes": {"engine": "baseline", "env": {"VLLM_CUSTOM_SCOPES_FOR_PROFILING": "1"},
                        "engine_args": {}},
    # The baseline with its serving processes pinned (experiments.bench.processes.core_layout "reserved").
    "baseline-reserved": {"engine": "baseline", "env": {}, "engine_args": {}, "core_layout": "reserved"},
    # A second, independent baseline: an explicit A/A pair.
    "baseline-aa": {"engine": "baseline", "env": {}, "engine_args": {}},
    # Patch 0002 switched on (bounded mode): short work first, and while a short
    # prefill runs, long prefills (more than 512 uncached tokens left) share at
    # most 512 tokens of each step (serve budget on CPU: 2048).
    "patched-prefill-cap": {"engine": "patched", "env": {},
                            "engine_args": {"long_prefill_token_threshold": 512,
                                            "short_prefill_first": "bounded"}},
    # The long-docs arms (step budget 512, LONG_DOCS_ENGINE_ARGS): what upstream offers, the
    # count cap maintainers discuss (patch 0003), patch 0002's bounded mode, each at half the budget.
    "baseline-threshold": {"engine": "baseline", "env": {},
                           "engine_args": {"long_prefill_token_threshold": 256}},
    "baseline-threshold-adaptive": {"engine": "baseline", "env": {},
                                    "engine_args": {"long_prefill_token_threshold": 256,
                                                    "long_prefill_token_threshold_adaptive": True}},
    "patched-count-cap": {"engine": "patched", "env": {},
                          "engine_args": {"long_prefill_token_threshold": 256, "max_long_partial_prefills": 1}},
    "patched-token-cap": {"engine": "patched", "env": {},
                          "engine_args": {"long_prefill_token_threshold": 256, "short_prefill_first": "bounded"}},
    # Patch 0002's other mode at the same threshold: long prefills take what short work leaves.
    "patched-short-first-wc": {"engine": "patched", "env": {},
                               "engine_args": {"long_prefill_token_threshold": 256,
                                               "short_prefill_first": "work_conserving"}},
}

# long_docs: documents of 2048-3584 tokens against a step budget of 512, so a document's
# prefill spans 4-7 steps (the embedded model allows 4096 positions).
LONG_DOCS_ENGINE_ARGS = {"max_num_batched_tokens": 512, "max_model_len": 4096}
LONG_DOCS_ARMS = ["baseline", "baseline-aa", "baseline-threshold", "baseline-threshold-adaptive",
                  "patched-count-cap", "patched-short-first-wc", "patched-token-cap"]

# The instrument checks' shape: the throughput headline only (shared_prefix_chat at rate inf), 8 timed
# passes per server start, 3 repeats, an A/A pair unless a preset says otherwise.
HEADLINE_8PASS = {
    "variants": ["baseline", "baseline-aa"],
    "repeats": 3,
    "modes": ["serve"],
    "serve_passes": 8,
    "offline_workload": "shared_prefix_chat",
    "workloads": {"shared_prefix_chat": {}},
    "request_rate": {"shared_prefix_chat": "inf"},
}

PRESETS: dict[str, dict] = {
    "default": {
        "description": "baseline vs patched: serving on both workloads (shared_prefix_chat at rate inf is the "
                       "throughput headline), 3 warm passes per server start, 4 repeats in A B B A order",
        "variants": ["baseline", "patched"],
        # 4 repeats: A B B A A B B A puts each variant first equally often. One server start per variant
        # and repeat serves both workloads (the separate in-process offline start cost ~30 s per run and
        # measured the same workload; presets overhead-0001 and smoke keep the offline mode).
        "repeats": 4,
        "modes": ["serve"],
        "offline_workload": "shared_prefix_chat",
        "workloads": {"shared_prefix_chat": {}, "mixed_long_short": {}},
        "request_rate": {"shared_prefix_chat": "inf", "mixed_long_short": 16},
    },
    "smoke": {
        "description": "one repeat, offline only, small workload: checks the pipeline end to end",
        "variants": ["baseline", "patched"],
        "repeats": 1,
        "modes": ["offline"],
        "offline_workload": "shared_prefix_chat",
        "workloads": {"shared_prefix_chat": {"num_requests": 16, "output_tokens": 16}},
        "request_rate": {},
    },
    "overhead-0001": {
        "description": "patch 0001 cost: scopes off (must be within noise) and on (<= 2% tokens/s); "
                       "baseline-scopes vs patched-scopes separates the patch's scopes from upstream's",
        "variants": ["baseline", "patched", "baseline-scopes", "patched-scopes"],
        "pairs": {"patched-scopes": "baseline-scopes"},
        "repeats": 5,
        "modes": ["offline"],
        "offline_workload": "shared_prefix_chat",
        "workloads": {"shared_prefix_chat": {}},
        "request_rate": {},
    },
    "prefill-cap": {
        "description": "patch 0002: long-prefill token cap; short-request p90 TTFT should drop on "
                       "mixed_long_short, shared_prefix_chat (no long prompts) should not change",
        "variants": ["baseline", "patched-prefill-cap"],
        "repeats": 5,
        "modes": ["serve"],
        "offline_workload": "mixed_long_short",
        # 256 requests (224 short): with the default 64 (56 short) the short-request p90 varied
        # too much between identical baseline runs (results/reference/cpu/prefill-cap-cpu-20261125T170302Z)
        "workloads": {"mixed_long_short": {"num_requests": 256}, "shared_prefix_chat": {}},
        "request_rate": {"mixed_long_short": 16, "shared_prefix_chat": "inf"},
        "serve_passes": 1,  # one 16 s pass of 256 requests per start, as measured before passes existed
    },
    "long-docs": {
        "description": "patches 0002/0003 on long_docs (documents 4-7x the step budget among short turns): "
                       "baseline and its A/A twin, the threshold knob (plain, adaptive), the count cap (0003), "
                       "patch 0002 work-conserving and bounded",
        "variants": LONG_DOCS_ARMS,
        "repeats": 3,
        "modes": ["serve"],
        "offline_workload": "long_docs",
        # One server start per arm and repeat serves both: Poisson arrivals below capacity
        # (~14 req/s measured at rate inf on 2 shared cores) and a burst at capacity.
        "workloads": {"long_docs": {}, "long_docs_burst": {}},
        "request_rate": {"long_docs": 4, "long_docs_burst": "inf"},
        # one pass each: a long_docs pass lasts ~30 s at 4 req/s, five arms x 3 repeats already take ~18 min
        "serve_passes": 1,
        "engine_args": LONG_DOCS_ENGINE_ARGS,
        # The token cap against each alternative, not only against the untouched baseline.
        "pairs": [["patched-token-cap", "baseline-threshold"], ["patched-token-cap", "baseline-threshold-adaptive"],
                  ["patched-token-cap", "patched-count-cap"], ["patched-short-first-wc", "baseline-threshold"]],
    },
    # The comparison PR_0002 rests on (issue 30): the agentic traffic of #57427 (cache-hit follow-ups among
    # cold long prompts, several times the 512-token step budget) below capacity and at it, a control with
    # no long prompts where the patch must change nothing; the reference, its A/A twin, the patched engine
    # with its flags off (its neutrality: the simulator's replay puts it in the reference's schedule group),
    # upstream's threshold alone and patch 0002's bounded mode. The Poisson rate from the capacity measured
    # in the same run.
    "pr-0002": {
        "description": "patch 0002 on agentic traffic (below and at capacity) and a control without long prompts: "
                       "upstream, its A/A twin, patched with flags off, the threshold alone, short_prefill_first "
                       "bounded; 2 repeats in A B B A order",
        "variants": ["baseline", "baseline-aa", "patched", "baseline-threshold", "patched-token-cap"],
        "repeats": 2,
        "modes": ["serve"],
        "offline_workload": "agentic",
        "workloads": {"agentic": {"num_sessions": 3, "turns_per_session": 12, "num_cold": 2},
                      "agentic_burst": {}, "shared_prefix_chat": {"num_requests": 32}},
        # agentic's rate is set by rate_from_capacity before the compared runs
        "request_rate": {"agentic": "inf", "agentic_burst": "inf", "shared_prefix_chat": "inf"},
        "rate_from_capacity": {"agentic": 0.5},
        "serve_passes": 1,
        "engine_args": LONG_DOCS_ENGINE_ARGS,
        "pairs": [["patched-token-cap", "baseline-threshold"]],
    },
    "aa": {
        "description": "A/A: baseline against itself in the default's shape, to measure the noise floor directly",
        "variants": ["baseline", "baseline-aa"],
        "repeats": 4,
        "modes": ["serve"],
        "offline_workload": "shared_prefix_chat",
        "workloads": {"shared_prefix_chat": {}, "mixed_long_short": {}},
        "request_rate": {"shared_prefix_chat": "inf", "mixed_long_short": 16},
    },
    # Does pinning the serving processes change the headline, or its noise? (HEADLINE_8PASS shape)
    "core-layout": {
        **HEADLINE_8PASS,
        "description": "baseline unpinned vs baseline-reserved (server, EngineCore and client on the core vLLM's "
                       "CPU worker leaves free) on the throughput headline: 8 timed passes per server start, "
                       "3 repeats in A B B A order",
        "variants": ["baseline", "baseline-reserved"],
    },
    # Fewer, longer measurements of the headline only: is the floor the machine's, or the 3 passes'?
    "aa-8pass": {
        **HEADLINE_8PASS,
        "description": "A/A on the throughput headline only (shared_prefix_chat, rate inf): 8 timed passes "
                       "per server start, 3 repeats in A B B A order",
    },
    # The same A/A with both servers up at once and their passes alternating (A B B A per pass):
    # the floor of a paired design, where adjacent passes share the machine's state.
    "aa-paired": {
        **HEADLINE_8PASS,
        "description": "A/A on the throughput headline, paired: baseline and baseline-aa servers up at once, "
                       "their 8 timed passes alternating A B B A, 3 repeats",
        "interleave": "passes",
    },
    # The paired A/A with 4x longer passes (256 requests each): does more measured time per pass
    # shrink the floor as 1/sqrt(time), i.e. what would a 2% floor cost here?
    "aa-paired-long": {
        **HEADLINE_8PASS,
        "description": "aa-paired with passes of 256 requests (4x the default 64): 8 alternating passes per "
                       "server, 3 repeats",
        "interleave": "passes",
        "workloads": {"shared_prefix_chat": {"num_requests": 256}},
    },
}

COMMON = {
    "seed": 0,
    "warmup_requests": 4,
    # offline: timed passes per engine start (median reported); cheap next to the ~30 s start-up
    "timed_passes": 5,
    # serve: timed passes of each workload per server start, each from an empty prefix cache, after a
    # warm-up of this many prompts per workload (the first requests a fresh server answers are slow:
    # one cold pass gave 44% apart medians between identical baselines, results/reference/cpu/aa-cpu-20261202T083018Z)
    "serve_passes": 3,
    "serve_warmup_prompts": 8,
    "gate": {"num_prompts": 8, "prompt_len": 48, "max_tokens": 24},
    "server_ready_timeout_s": 300,
}


def _local_dir_without_weights(model: str) -> bool:
    path = Path(model)
    return path.is_dir() and not any(path.glob("*.safetensors")) and not any(path.glob("*.bin"))


def check_interleave(cfg: dict, backend: str, distributed: dict) -> None:
    """`interleave: passes` keeps every variant's server up at once: serve mode only, and only where
    the servers do not split one device's memory or ranks (on a GPU each would get part of the KV
    cache, which changes what is measured)."""
    if cfg.get("interleave") in (None, "runs"):
        return
    if cfg["interleave"] != "passes":
        raise SystemExit(f"interleave must be runs or passes, got {cfg['interleave']!r}")
    if cfg["modes"] != ["serve"] or len(cfg["variants"]) < 2:
        raise SystemExit(f"preset {cfg['preset']}: interleave=passes needs modes [serve] and two or more variants")
    if backend != "cpu" or any(int(v) > 1 for k, v in distributed.items() if k.endswith("_size")):
        raise SystemExit(f"preset {cfg['preset']}: interleave=passes runs every variant's server at once, which "
                         "is measured on the CPU backend with one rank only (on a GPU the servers would split its "
                         "memory); use a preset without it")


def resolve(name: str, *, repeats: int | None = None, model: str | None = None,
            backend: str = "cpu", variants: list[str] | None = None, distributed: dict | None = None,
            interleave: str | None = None) -> dict:
    """Full bench configuration for a preset, with overrides from the command line/env."""
    if name not in PRESETS:
        raise SystemExit(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    cfg = {**copy.deepcopy(COMMON), **copy.deepcopy(PRESETS[name]), "preset": name, "backend": backend}
    if repeats is not None:
        cfg["repeats"] = repeats
    if variants:
        cfg["variants"] = variants
    if interleave:
        cfg["interleave"] = interleave  # `--interleave passes`: any serve preset, paired
    unknown = [v for v in cfg["variants"] if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    if cfg["repeats"] < 1:
        raise SystemExit("repeats must be >= 1")
    check_interleave(cfg, backend, distributed or {})
    model = model or os.environ.get("MODEL") or EMBEDDED_MODEL
    cfg["model"] = model
    engine_args = dict(CPU_ENGINE_ARGS if backend == "cpu" else CUDA_ENGINE_ARGS)
    engine_args.update(PRESETS[name].get("engine_args", {}))  # a preset's own shape (long-docs)
    if _local_dir_without_weights(model):
        engine_args["load_format"] = "dummy"  # config-only model directory: random weights
    # TP/PP/DP and the executor backend (experiments.bench.distributed): every variant, every rank
    cfg["distributed"] = dict(distributed or {})
    engine_args.update(cfg["distributed"])
    cfg["engine_args"] = engine_args
    cfg["variant_defs"] = {v: copy.deepcopy(VARIANTS[v]) for v in cfg["variants"]}
    if backend == "cpu":
        from experiments.bench.distributed import cpu_env

        for vdef in cfg["variant_defs"].values():
            vdef["env"] = {**cpu_env(cfg["distributed"]), **vdef["env"]}
    return cfg
