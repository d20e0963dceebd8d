"""One in-process vLLM engine over the c2 workload, with the block recorder attached.

Run in a child process by `experiments.vllm.engine_child` (in-process mode: it sets
VLLM_ENABLE_V1_MULTIPROCESSING=0 before vLLM is imported), so the EngineCore, its scheduler and the KV-cache
manager live in this process where the recorder can see them. Requests are
added at their `arrival_step` (one step = one `LLMEngine.step()` = one scheduler
step), so the arrival/finish sequence is deterministic given the workload.
"""
from __future__ import annotations

import time


def external_id(rid: str) -> str:
    """vLLM 0.32 appends '-<random hex>' to the id given to add_request."""
    return rid.rsplit("-", 1)[0] if "-" in rid else rid


def kv_layout(kvm) -> dict:
    """What vLLM itself allocated: block size, layers, bytes per block (cross-checks the config formula)."""
    cfg = kvm.kv_cache_config
    spec = cfg.kv_cache_groups[0].kv_cache_spec
    tensors = [{"size": t.size, "layers": len(t.layers),
                "block_stride": getattr(t, "block_stride", None)} for t in cfg.kv_cache_tensors]
    total = sum(t["size"] for t in tensors)
    return {"num_blocks": cfg.num_blocks, "block_size": spec.block_size, "num_kv_heads": spec.num_kv_heads,
            "head_size": spec.head_size, "dtype": str(spec.dtype).removeprefix("torch."),
            "page_size_bytes_per_layer": spec.page_size_bytes, "tensor_bytes_total": total,
            "bytes_per_block_all_layers": total // cfg.num_blocks, "tensors": tensors}


def run(cfg: dict) -> dict:
    from vllm import EngineArgs, SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.v1.engine.llm_engine import LLMEngine

    from experiments.vllm.c2_paged_kv_cache.recorder import BlockEventRecorder

    t0 = time.perf_counter()
    engine = LLMEngine.from_engine_args(EngineArgs(
        model=cfg["model"], dtype=cfg["dtype"], enforce_eager=True, seed=0,
        max_model_len=cfg["max_model_len"], block_size=cfg["block_size"],
        num_gpu_blocks_override=cfg["num_blocks"],
        # an explicit KV budget skips the CPU worker's "reserve 92% of RAM" check; the override sets the size
        kv_cache_memory_bytes=cfg.get("kv_cache_memory_bytes", 64 << 20),
        enable_prefix_caching=True, max_num_seqs=cfg["max_num_seqs"],
        max_num_batched_tokens=cfg["max_num_batched_tokens"]))
    startup_s = time.perf_counter() - t0
    core = engine.engine_core.engine_core  # InprocClient -> EngineCore
    scheduler = core.scheduler
    rec = BlockEventRecorder(scheduler, external_id).install()

    reqs = sorted(cfg["requests"], key=lambda r: r["arrival_step"])
    finished: dict[str, dict] = {}
    after_step: list[dict] = []
    step, nxt = 0, 0
    t_run = time.perf_counter()
    while nxt < len(reqs) or engine.has_unfinished_requests():
        if not engine.has_unfinished_requests() and reqs[nxt]["arrival_step"] > step:
            step = reqs[nxt]["arrival_step"]  # idle until the next arrival
        rec.step = step
        while nxt < len(reqs) and reqs[nxt]["arrival_step"] <= step:
            r = reqs[nxt]
            engine.add_request(r["rid"], TokensPrompt(prompt_token_ids=r["prompt"]),
                               SamplingParams(max_tokens=r["output_len"], ignore_eos=True, temperature=0.0,
                                              detokenize=False))
            nxt += 1
        for out in engine.step():
            if out.finished:
                finished[out.request_id] = {"finish_step": step, "output_tokens": len(out.outputs[0].token_ids),
                                            "num_cached_tokens": out.num_cached_tokens}
        after_step.append(rec.snapshot("after_step"))
        step += 1
        if step > cfg.get("max_steps", 5000):
            raise RuntimeError("workload did not finish")
    run_s = time.perf_counter() - t_run
    rec.uninstall()
    pool = scheduler.kv_cache_manager.block_pool
    return {
        "startup_s": startup_s, "run_s": run_s, "steps": step,
        "kv_layout": kv_layout(scheduler.kv_cache_manager),
        "null_block_id": pool.null_block.block_id,
        "final_num_free_blocks": pool.get_num_free_blocks(),
        "events": rec.events,
        "snapshots": rec.snapshots + after_step,
        "finished": finished,
    }
