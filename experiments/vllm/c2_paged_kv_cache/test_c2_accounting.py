"""KV bytes per token, per-step paged accounting, per-request table from an event log."""
from experiments.vllm.c2_paged_kv_cache import accounting as A
from experiments.vllm.c2_paged_kv_cache import lab


def test_kv_bytes_per_token_of_the_tiny_model():
    kv = A.kv_bytes_per_token(A.load_config(lab.MODEL_DIR), "float32")
    # 4 layers x 2 x 3 KV heads x 64 x 4 B
    assert kv["bytes_per_token"] == 4 * 2 * 3 * 64 * 4 == 6144
    gqa = {"num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "hidden_size": 4096}
    assert A.kv_bytes_per_token(gqa, "bfloat16")["bytes_per_token"] == 32 * 2 * 8 * 128 * 2


def test_last_block_waste_is_below_block_size():
    assert A.final_last_block_waste(32, 1, 32) == 0  # 32 tokens in KV: exactly one full block
    assert A.final_last_block_waste(33, 1, 32) == 31
    assert all(0 <= A.final_last_block_waste(p, o, 32) < 32 for p in range(1, 80) for o in range(1, 40))


def test_paged_step_row_counts_sharing_and_waste():
    snap = {"step": 3, "running": 2, "waiting": 1, "ref_cnt": [0, 2, 2, 1, 1, 0, 0], "hashed": [0, 1, 1, 0, 0, 1, 0],
            "tables": {"a": [1, 2, 3], "b": [1, 2, 4]}, "tokens": {"a": 70, "b": 65}}
    r = A.paged_step_row(snap, 32)
    assert r["used_blocks"] == 4 and r["logical_blocks"] == 6 and r["shared_saved_blocks"] == 2
    assert r["cached_free_blocks"] == 1 and r["free_empty_blocks"] == 1
    assert r["internal_waste_tokens"] == (96 - 70) + (96 - 65) and r["max_waste_per_request"] == 31


def test_request_table_admissions_hits_and_preemption():
    E = lambda step, kind, req, blocks, **kw: {"step": step, "kind": kind, "req": req, "blocks": blocks, **kw}
    events = [E(0, "lookup", "a", [], hit_tokens=0, prompt_tokens=40), E(0, "alloc", "a", [1, 2]),
              E(1, "lookup", "b", [1], hit_tokens=32, prompt_tokens=50), E(1, "touch", "b", [1], ref_before=[1]),
              E(1, "alloc", "b", [3]), E(2, "release", "b", [], status="RUNNING"), E(2, "free", "b", [3, 1]),
              E(3, "lookup", "b", [1, 3], hit_tokens=64, prompt_tokens=50), E(3, "touch", "b", [1, 3], ref_before=[1, 0]),
              E(3, "alloc", "b", [4])]
    reqs = [{"rid": "a", "group": "A", "prompt_len": 40, "output_len": 5, "prefix_len": 32, "arrival_step": 0},
            {"rid": "b", "group": "A", "prompt_len": 50, "output_len": 20, "prefix_len": 32, "arrival_step": 1}]
    t = A.request_table(events, {"b": {"finish_step": 9, "output_tokens": 20, "num_cached_tokens": 32}}, reqs, 32)
    assert t[1]["admissions"] == [1, 3] and t[1]["hit_tokens_per_admission"] == [32, 64]
    assert t[1]["preemptions"] == 1 and t[1]["blocks_hit"] == 3 and t[1]["blocks_allocated"] == 2
    assert t[0]["admit_step"] == 0 and t[0]["finish_step"] is None
    assert A.event_counts(events)["touch"] == 3
