"""One offline engine run in a fresh process: correctness gate, then timed throughput.

Started by the bench driver as
    python -m experiments.bench.engine_offline <run-config.json> <result.json>
with PYTHONPATH selecting the baseline or patched vLLM. Writes one JSON file.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

from tools import pins


def gate_prompts(n: int, length: int, vocab: int, seed: int) -> list[list[int]]:
    """Fixed token-id prompts for the greedy-output comparison (ids >= 3 skip specials)."""
    import random

    rng = random.Random(f"gate:{seed}")
    return [[rng.randrange(3, vocab) for _ in range(length)] for _ in range(n)]


def engine_identity() -> dict:
    import vllm

    location = Path(vllm.__file__).resolve().parent
    return {"vllm_module": str(location),
            "patched_engine": pins.PATCHED_ENGINE_DIR.resolve() in location.parents,
            "vllm_version": getattr(vllm, "__version__", None)}


def metric_value(metrics, name: str) -> float | None:
    for m in metrics:
        if m.name == name and hasattr(m, "value"):
            return float(m.value)
    return None


def scheduler_counters(metrics) -> dict:
    """Engine-step counters that do not depend on timing: steps, tokens scheduled, preemptions."""
    out = {"preemptions": metric_value(metrics, "vllm:num_preemptions")}
    for m in metrics:
        if m.name == "vllm:iteration_tokens_total" and hasattr(m, "count"):
            out["steps"] = float(m.count)
            out["step_tokens"] = float(m.sum)
    return out


def counter_delta(after: dict, before: dict) -> dict:
    out = {k: (after[k] - before[k]) if after.get(k) is not None and before.get(k) is not None else None
           for k in after}
    if out.get("steps"):
        out["tokens_per_step"] = out["step_tokens"] / out["steps"]
    return out


def shutdown_engine(llm) -> list[int]:
    """Stop EngineCore and its workers before this process exits; return pids that had to be killed.

    Exiting with the engine still up (os._exit) orphaned EngineCore: under `make trace`, no process
    group kill follows, and an orphan holding GPU memory makes the next engine start fail.
    """
    import psutil

    me = psutil.Process()
    try:
        llm.llm_engine.engine_core.shutdown(timeout=30)
    except Exception as exc:  # report, then make sure below
        print(f"engine shutdown raised {type(exc).__name__}: {exc}", flush=True)
    # What may remain is multiprocessing's resource tracker, which only exits with this process.
    children = me.children(recursive=True)
    _, alive = psutil.wait_procs(children, timeout=2)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    return [p.pid for p in alive]


def run(cfg: dict) -> dict:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from experiments.bench.workloads import load_rows

    ident = engine_identity()
    if ident["patched_engine"] != (cfg["engine"] == "patched"):
        raise SystemExit(f"engine selection failed: wanted {cfg['engine']}, imported {ident['vllm_module']}")
    t0 = time.perf_counter()
    llm = LLM(model=cfg["model"], seed=cfg["seed"], disable_log_stats=False, **cfg["engine_args"])
    startup_s = time.perf_counter() - t0
    vocab = llm.llm_engine.model_config.get_vocab_size()

    gate = cfg["gate"]
    greedy = SamplingParams(max_tokens=gate["max_tokens"], temperature=0, ignore_eos=True, detokenize=False)
    gate_out = llm.generate([TokensPrompt(prompt_token_ids=p) for p in
                             gate_prompts(gate["num_prompts"], gate["prompt_len"], vocab, cfg["seed"])],
                            greedy, use_tqdm=False)
    gate_tokens = [list(o.outputs[0].token_ids) for o in gate_out]

    rows = load_rows(Path(cfg["workload"]["dataset_dir"]))
    params = [SamplingParams(max_tokens=r["output_tokens"], temperature=0, ignore_eos=True) for r in rows]
    prompts = [r["prompt"] for r in rows]
    # Warm-up on other requests so the timed pass starts from a cold prefix cache.
    k = cfg["warmup_requests"]
    llm.generate([" ".join(reversed(p.split())) for p in prompts[:k]], params[:k], use_tqdm=False)
    llm.reset_prefix_cache()

    # Several timed passes per engine, each from a cold prefix cache: one pass is only a few
    # seconds on a tiny model, so a single background blip would decide the run's figure.
    # The run reports the median pass; all passes are kept. Profiling covers the first pass.
    # CPU seconds of this process tree (frontend, EngineCore, workers) per pass, from /proc:
    # less disturbed by other load on a shared machine than wall time.
    from experiments.bench.processes import tree_cpu_seconds

    profiling = bool(cfg.get("profile"))
    passes, pass_cpu, pass_counters = [], [], []
    for i in range(max(1, int(cfg.get("timed_passes", 1)))):
        if i:
            llm.reset_prefix_cache()
        if profiling and i == 0:
            llm.start_profile()
        before = scheduler_counters(llm.get_metrics())
        c1 = tree_cpu_seconds(os.getpid())
        t1 = time.perf_counter()
        outs = llm.generate(prompts, params, use_tqdm=False)
        passes.append(time.perf_counter() - t1)
        pass_cpu.append(tree_cpu_seconds(os.getpid()) - c1)
        pass_counters.append(counter_delta(scheduler_counters(llm.get_metrics()), before))
        if profiling and i == 0:
            llm.stop_profile()
    elapsed = statistics.median(passes)

    out_tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    in_tokens = sum(len(o.prompt_token_ids or []) for o in outs)
    metrics = llm.get_metrics()
    cache = llm.llm_engine.vllm_config.cache_config
    result = {
        "mode": "offline",
        "engine_identity": ident,
        "startup_s": startup_s,
        "elapsed_s": elapsed,
        "pass_elapsed_s": passes,
        "num_requests": len(outs),
        "input_tokens": in_tokens,
        "output_tokens": out_tokens,
        "output_throughput": out_tokens / elapsed,
        "total_token_throughput": (in_tokens + out_tokens) / elapsed,
        "request_throughput": len(outs) / elapsed,
        "prefix_cache_queries": metric_value(metrics, "vllm:prefix_cache_queries"),
        "prefix_cache_hits": metric_value(metrics, "vllm:prefix_cache_hits"),
        "kv_cache_blocks": getattr(cache, "num_gpu_blocks", None),
        "kv_block_size": getattr(cache, "block_size", None),
        "gate_tokens": gate_tokens,
        "profiled": profiling,
        "pass_cpu_s": pass_cpu,
        "cpu_s_per_output_token": statistics.median(pass_cpu) / out_tokens,
        "scheduler": pass_counters[-1],  # counters of the last pass (passes are identical work)
        "pass_scheduler": pass_counters,
    }
    return result, llm


def main() -> None:
    cfg_path, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    cfg = json.loads(cfg_path.read_text())
    result, llm = run(cfg)
    from experiments.common.results import write_json_atomic

    write_json_atomic(out_path, result)
    print(f"offline run done: {result['output_throughput']:.1f} output tok/s", flush=True)
    killed = shutdown_engine(llm)
    if killed:
        print(f"engine processes still alive after shutdown, killed: {killed}", flush=True)
    # Interpreter teardown with vLLM loaded can take seconds; the engine is down, the result on disk.
    os._exit(0)


if __name__ == "__main__":
    main()
