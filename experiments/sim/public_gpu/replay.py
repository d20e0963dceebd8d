"""Replay a public GPU experiment through vLLM 0.32.0's real Scheduler (`experiments.sim`).

Each recorded request is sent at its recorded arrival offset with its recorded prompt and output token
counts. No tokenizer is needed: the prompt is token ids of the recorded length. Where the experiment's
profile.yaml has a shared prefix (`prefix_tokens`), every prompt starts with the same BOS + prefix ids
(the load generator prepends one prefix to every prompt; the tokenizer adds BOS), so prefix caching finds
it as the real engine did; the rest of each prompt is ids no other request has.

The scheduler is the installed vLLM 0.32.0's, configured with the experiment's max_num_batched_tokens,
max_num_seqs, max_model_len, prefix caching, block size and KV block count (as its log states them).
vLLM needs a model directory to build its config: the repo's tiny model stands in for it (its weights are
never loaded; its shape is not used: the cost model carries the GPU model's shape and the KV block count
is set by `num_gpu_blocks_override`). The tiny model's 4096 positions are stretched to the experiment's
max_model_len with VLLM_ALLOW_LONG_MAX_MODEL_LEN (nothing runs the model).
"""
from __future__ import annotations

import random

from experiments.bench import presets
from experiments.sim import api
from experiments.sim.errors import SimInputError
from experiments.sim.public_gpu import extract
from tools.pins import REPO_ROOT

SHAPES_DIR = REPO_ROOT / "experiments" / "sim" / "shapes"
SHAPES = {"codellama/CodeLlama-34b-Instruct-hf": SHAPES_DIR / "codellama-34b.json",
          "meta-llama/Llama-2-7b-hf": SHAPES_DIR / "llama-2-7b.json"}
BOS_ID = 1           # Llama's BOS: the server's tokenizer puts it first in every prompt
VOCAB = 32000        # Llama-2 / CodeLlama vocabulary (ids only have to be distinct; nothing decodes them)
FIRST_FREE_ID = 3    # past BOS / EOS / UNK
ENV = {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}
# vLLM 0.11.0 admits a waiting request when its first chunk's blocks fit; 0.32.0 by default only when its whole
# prompt fits (`scheduler_reserve_full_isl`). This switches 0.32's scheduler to the old rule.
V011_ADMISSION = {"scheduler_reserve_full_isl": False}


def shape_path(meta: dict) -> str:
    if meta["model"] not in SHAPES:
        raise SimInputError(f"{meta['name']}: no shape file for {meta['model']} in {SHAPES_DIR}")
    return str(SHAPES[meta["model"]].relative_to(REPO_ROOT))


def prompt_ids(meta: dict, rows: list[dict]) -> list[list[int]]:
    """BOS + the shared prefix (if the profile has one) + ids unique to the request, `prompt_tokens` long."""
    prefix_len = int(meta["workload"]["data"].get("prefix_tokens", 0))
    rng = random.Random(f"{meta['name']}:prefix")
    prefix = [BOS_ID] + [rng.randrange(FIRST_FREE_ID, VOCAB) for _ in range(prefix_len)]
    out = []
    for r in rows:
        n = r["prompt_tokens"]
        head = prefix[:n]
        own = random.Random(f"{meta['name']}:{r['index']}")
        out.append(head + [own.randrange(FIRST_FREE_ID, VOCAB) for _ in range(n - len(head))])
    return out


def engine_args(meta: dict) -> dict:
    log = meta["log"]
    if not log["chunked_prefill_enabled"]:
        raise SimInputError(f"{meta['name']}: the replay assumes chunked prefill on, as vLLM's V1 engine runs")
    return {**api.BASE_ENGINE_ARGS, "max_model_len": log["engine_args"]["max_model_len"],
            "max_num_batched_tokens": log["engine_args"]["max_num_batched_tokens"],
            "max_num_seqs": log["engine_args"]["max_num_seqs"], "block_size": log["block_size"],
            "num_gpu_blocks_override": log["num_gpu_blocks"],
            "enable_prefix_caching": log["enable_prefix_caching"], "enable_chunked_prefill": True}


def make_job(meta: dict, rows: list[dict], cost_model: str, *, record_decisions: bool = False,
             scheduler_args: dict | None = None) -> dict:
    """A job for `experiments.sim.api.run_jobs`: the baseline engine (installed vLLM 0.32.0); scheduler_args
    override the experiment's engine arguments (e.g. vLLM 0.11's admission rule, `V011_ADMISSION`)."""
    ids = prompt_ids(meta, rows)
    span = max(r["arrival_s"] for r in rows) or 1.0
    job = {"variant": {"engine": "baseline", "env": dict(ENV), "engine_args": {}},
           "model": str(presets.EMBEDDED_MODEL), "engine_args": {**engine_args(meta), **(scheduler_args or {})},
           "workload": {"name": meta["name"], "seed": 0, "spec": {}, "fingerprint": None,
                        "num_requests": len(rows)},
           # kind: one class (the bench's run summary splits short/long only where a workload has both)
           "rows": [{"request_id": f"r{r['index']:04d}", "kind": "recorded", "prompt_token_ids": p,
                     "output_tokens": r["output_tokens"]} for r, p in zip(rows, ids)],
           "arrivals": [r["arrival_s"] for r in rows], "rate": f"{len(rows) / span:.4f}", "seed": 0,
           "burstiness": 1.0, "cost_model": cost_model, "stall_steps": 64, "spec_acceptance": None,
           "record_decisions": record_decisions}
    return job


def cost_spec(kind: str, meta: dict, fit_path=None) -> str:
    """`roofline` (no fitted parameter) or `fitted` (the committed fit, or `fit_path`) at the model's shape."""
    shape = shape_path(meta)
    if kind == "roofline":
        return f"roofline-h100:{shape}"
    if kind == "fitted":
        return f"gpu-fit:{fit_path}:{shape}" if fit_path else f"public-gpu-h100:{shape}"
    raise SimInputError(f"unknown cost model kind {kind!r}: roofline or fitted")


def per_request(out: dict) -> list[dict]:
    """Simulated TTFT / E2E per request (seconds, the jobs' row order) from the bench JSON."""
    raw = out["bench_serve"]
    return [{"ttft_s": t, "e2e_s": e, "output_tokens": n}
            for t, e, n in zip(raw["ttfts"], raw["latencies"], raw["output_lens"])]


def replay(names, kind: str, *, fit_path=None, record_decisions: bool = False, limit: int | None = None):
    """Replay each named experiment (its first `limit` requests if given) -> {name: (meta, rows, result)}."""
    manifest = {m["name"]: m for m in extract.load_manifest()["experiments"]}
    jobs, keep = [], []
    for name in names:
        if name not in manifest:
            raise SimInputError(f"unknown experiment {name!r}; extracted: {sorted(manifest)}")
        meta = manifest[name]
        rows = extract.load_requests(name)[:limit]
        jobs.append(make_job(meta, rows, cost_spec(kind, meta, fit_path), record_decisions=record_decisions))
        keep.append((name, meta, rows))
    outs = api.run_jobs(jobs)
    return {name: (meta, rows, out) for (name, meta, rows), out in zip(keep, outs)}
