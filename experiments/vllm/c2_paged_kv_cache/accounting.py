"""Memory accounting for the paged run: bytes per token, per-step use, per-request waste and sharing.

All pure functions over the recorder's output (snapshots of vLLM's real block
tables and token counts, and the event log), so they are unit-tested without
an engine.
"""
from __future__ import annotations

import json
from pathlib import Path

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "fp8": 1}


def kv_bytes_per_token(config: dict, dtype: str) -> dict:
    """layers x 2 (K and V) x kv_heads x head_dim x dtype bytes, from a HF config.json."""
    layers = config["num_hidden_layers"]
    kv_heads = config.get("num_key_value_heads", config["num_attention_heads"])
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    b = DTYPE_BYTES[dtype]
    return {"layers": layers, "kv_heads": kv_heads, "head_dim": head_dim, "dtype": dtype, "dtype_bytes": b,
            "bytes_per_token": layers * 2 * kv_heads * head_dim * b}


def load_config(model_dir: Path) -> dict:
    return json.loads((Path(model_dir) / "config.json").read_text())


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def paged_step_row(snap: dict, block_size: int, null_block: int = 0) -> dict:
    """Use of the pool at one scheduler step, from one real snapshot (taken right after schedule())."""
    refs = [0 if b == null_block else r for b, r in enumerate(snap["ref_cnt"])]
    used = sum(1 for r in refs if r > 0)
    cached_free = sum(1 for b, r in enumerate(refs) if r == 0 and snap["hashed"][b] and b != null_block)
    logical = sum(len(t) for t in snap["tables"].values())
    waste = {}
    for rid, table in snap["tables"].items():
        tok = snap["tokens"].get(rid)
        if table and tok is not None:
            waste[rid] = len(table) * block_size - tok
    return {
        "step": snap["step"], "running": snap["running"], "waiting": snap["waiting"],
        "requests_with_blocks": sum(1 for t in snap["tables"].values() if t),
        "used_blocks": used, "cached_free_blocks": cached_free,
        "free_empty_blocks": len(refs) - 1 - used - cached_free,
        "logical_blocks": logical, "shared_saved_blocks": logical - used,
        "tokens": sum(snap["tokens"][r] for r in waste),
        "internal_waste_tokens": sum(waste.values()),
        "max_waste_per_request": max(waste.values(), default=0),
        "min_waste_per_request": min(waste.values(), default=0),
    }


def request_table(events: list[dict], finished: dict, reqs: list[dict], block_size: int) -> list[dict]:
    """Per request: arrival, first allocation (admission), finish, preemptions, prefix-hit tokens at admission."""
    out = []
    for r in reqs:
        rid = r["rid"]
        evs = [e for e in events if e.get("req") == rid]
        allocs = [e for e in evs if e["kind"] in ("alloc", "touch") and e["blocks"]]
        preempt = [e for e in evs if e["kind"] == "release" and e.get("status") == "RUNNING"]
        # the lookup that led to each admission is the last one before that admission's first block
        admissions, hits = [], []
        last_lookup, holding = None, False
        for e in evs:
            if e["kind"] == "lookup":
                last_lookup = e
            elif e["kind"] in ("alloc", "touch") and e["blocks"] and not holding:
                holding = True
                admissions.append(e["step"])
                hits.append(last_lookup["hit_tokens"] if last_lookup else 0)
            elif e["kind"] == "free":
                holding = False
        fin = finished.get(rid, {})
        out.append({
            "rid": rid, "group": r["group"], "prompt_len": r["prompt_len"], "output_len": r["output_len"],
            "prefix_len": r["prefix_len"], "arrival_step": r["arrival_step"],
            "admit_step": admissions[0] if admissions else None, "finish_step": fin.get("finish_step"),
            "output_tokens": fin.get("output_tokens"), "num_cached_tokens_vllm": fin.get("num_cached_tokens"),
            "preemptions": len(preempt), "admissions": admissions, "hit_tokens_per_admission": hits,
            "blocks_allocated": sum(len(e["blocks"]) for e in allocs if e["kind"] == "alloc"),
            "blocks_hit": sum(len(e["blocks"]) for e in allocs if e["kind"] == "touch"),
            "final_last_block_waste": final_last_block_waste(r["prompt_len"], r["output_len"], block_size),
        })
    return out


def final_last_block_waste(prompt_len: int, output_len: int, block_size: int) -> int:
    """Slots allocated but never written when the request finishes: the last token sampled is not fed
    back, so the KV holds prompt + output - 1 tokens."""
    n = prompt_len + output_len - 1
    return cdiv(n, block_size) * block_size - n


def event_counts(events: list[dict]) -> dict:
    c: dict[str, int] = {}
    for e in events:
        k = e["kind"]
        c[k] = c.get(k, 0) + (len(e["blocks"]) if k in ("alloc", "free", "evict", "touch", "cache") else 1)
    return c
