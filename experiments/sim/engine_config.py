"""The real vLLM Scheduler, configured as `vllm serve` would configure it (runs in a variant's process).

`EngineArgs(**engine_args).create_engine_config(OPENAI_API_SERVER)` resolves
the same defaults the server resolves (CPU block size 128, a 2048-token step
budget, prefix caching and chunked prefill on, ...). The KV block count comes
from vLLM's own `get_kv_cache_configs` fed with the per-layer attention spec
the model runner would publish and the KV memory the engine would get
(`kv_cache_memory_bytes`), as `EngineCore._initialize_kv_caches` does; the
scheduler is then built with the arguments `EngineCore.__init__` passes.
Upstream's `tests/v1/core/utils.py::create_scheduler` builds it the same way
with a hand-picked block count.

Which scheduler runs (baseline or patched) is decided by `sys.path` of this
process: `experiments.sim.api` starts it with the bench's variant environment.
"""
from __future__ import annotations

from pathlib import Path

from experiments.sim.errors import SimInputError


def resolve_model(model: str) -> str:
    path = Path(model)
    if not (path / "config.json").is_file():
        raise SimInputError(f"unknown model {model!r}: no config.json in that directory "
                            "(the simulator needs a local model directory for its config and tokenizer)")
    return str(path.resolve())


def engine_config(model: str, engine_args: dict):
    """VllmConfig as the API server resolves it; unknown engine arguments fail with vLLM's own message."""
    from vllm.engine.arg_utils import EngineArgs
    from vllm.usage.usage_lib import UsageContext

    args = {k: v for k, v in engine_args.items() if k != "load_format"}  # weights are never loaded
    try:
        eargs = EngineArgs(model=resolve_model(model), **args)
    except TypeError as exc:
        raise SimInputError(f"engine argument not accepted by this variant's vLLM: {exc}") from exc
    return eargs.create_engine_config(UsageContext.OPENAI_API_SERVER)


def layer_kv_specs(vllm_config) -> dict:
    """Per-layer KV spec a decoder-only full-attention model publishes (what the worker reports)."""
    import torch
    from vllm.v1.kv_cache_interface import FullAttentionSpec

    mc, pc, cc = vllm_config.model_config, vllm_config.parallel_config, vllm_config.cache_config
    if getattr(mc.hf_config, "sliding_window", None) or getattr(mc.hf_config, "layer_types", None):
        raise SimInputError(f"model {mc.model}: only full-attention decoder models are supported")
    dtype = mc.dtype if cc.cache_dtype == "auto" else getattr(torch, cc.cache_dtype)
    spec = FullAttentionSpec(block_size=cc.block_size, num_kv_heads=mc.get_num_kv_heads(pc),
                             head_size=mc.get_head_size(), dtype=dtype)
    return {f"model.layers.{i}.self_attn.attn": spec for i in range(mc.get_num_layers(pc))}


def supported_layouts():
    """KV layouts the platform's attention backend declares (what the worker reports to EngineCore)."""
    from vllm.platforms import current_platform
    from vllm.v1.attention.backends.utils import get_supported_kv_cache_layouts

    backends = []
    if current_platform.is_cpu():
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend
        backends = [CPUAttentionBackend]
    return get_supported_kv_cache_layouts(backends)


def build_scheduler(model: str, engine_args: dict):
    """(scheduler, vllm_config, block_hasher): the real Scheduler with the engine's KV block count."""
    from vllm.utils.hashing import get_hash_fn_by_name
    from vllm.v1.attention.backends.utils import resolve_kv_cache_layout
    from vllm.v1.core.kv_cache_utils import (generate_scheduler_kv_cache_config, get_kv_cache_configs,
                                             get_request_block_hasher, init_none_hash,
                                             resolve_kv_cache_block_sizes)
    from vllm.v1.core.single_type_kv_cache_manager import register_all_kvcache_specs
    from vllm.v1.structured_output import StructuredOutputManager

    vllm_config = engine_config(model, engine_args)
    kv_bytes = vllm_config.cache_config.kv_cache_memory_bytes
    if not kv_bytes:
        raise SimInputError("engine_args must set kv_cache_memory_bytes: the KV block count follows from it "
                            "(the real engine otherwise sizes it from free host memory at start-up)")
    register_all_kvcache_specs(vllm_config)
    specs = layer_kv_specs(vllm_config)
    resolve_kv_cache_layout(vllm_config, [[layout.name for layout in supported_layouts()]], specs.values())
    kv_configs = get_kv_cache_configs(vllm_config, [specs], [kv_bytes])
    kv_cache_config = generate_scheduler_kv_cache_config(kv_configs)
    vllm_config.cache_config.num_gpu_blocks = kv_cache_config.num_blocks
    block_size, hash_block_size = resolve_kv_cache_block_sizes(kv_cache_config, vllm_config)
    scheduler_cls = vllm_config.scheduler_config.get_scheduler_cls()
    scheduler = scheduler_cls(vllm_config=vllm_config, kv_cache_config=kv_cache_config,
                              structured_output_manager=StructuredOutputManager(vllm_config),
                              include_finished_set=False, log_stats=True,
                              block_size=block_size, hash_block_size=hash_block_size)
    hasher = None
    if vllm_config.cache_config.enable_prefix_caching:
        hash_fn = get_hash_fn_by_name(vllm_config.cache_config.prefix_caching_hash_algo)
        init_none_hash(hash_fn)
        hasher = get_request_block_hasher(hash_block_size, hash_fn)
    return scheduler, vllm_config, hasher


def scheduler_summary(vllm_config) -> dict:
    """The resolved settings a reader needs to trust a simulated run (recorded with every result).

    Every plain field of the SchedulerConfig is kept, so a patch's own knobs (patch 0002's
    `short_prefill_first`, later ones) show up without this code knowing them."""
    sc, cc = vllm_config.scheduler_config, vllm_config.cache_config
    fields = {k: v for k, v in sorted(vars(sc).items())
              if not k.startswith("_") and isinstance(v, (bool, int, float, str, type(None)))}
    cls = sc.get_scheduler_cls()
    return {"num_kv_blocks": cc.num_gpu_blocks, "block_size": cc.block_size,
            "enable_prefix_caching": cc.enable_prefix_caching,
            "max_model_len": vllm_config.model_config.max_model_len,
            "scheduler_cls": f"{cls.__module__}.{cls.__qualname__}", "scheduler_config": fields}
