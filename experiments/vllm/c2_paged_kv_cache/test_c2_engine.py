"""One real vLLM engine (in-process EngineCore) with the recorder on its BlockPool: ~15 s."""
from collections import Counter

import pytest

from experiments.vllm.c2_paged_kv_cache import accounting as A
from experiments.vllm.c2_paged_kv_cache import lab
from experiments.vllm.c2_paged_kv_cache.workload import build_workload
from experiments.vllm.conftest import C2_NUM_BLOCKS as NUM_BLOCKS

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def test_recorded_block_events_match_the_real_block_pool(engine_session):
    reqs = build_workload(seed=0, scale=0.35)  # the workload the shared session ran (experiments/vllm/conftest.py)
    raw = engine_session["c2"]
    events = raw["events"]
    assert raw["kv_layout"]["num_blocks"] == NUM_BLOCKS and raw["kv_layout"]["block_size"] == lab.ENGINE["block_size"]

    # the replayed log equals vLLM's block tables, ref counts, hashes and get_num_free_blocks() at every step
    v = lab.validate(raw)
    assert v["snapshots_compared"] > 2 * len(reqs) and v["mismatches"] == 0, v["first_mismatches"]

    # every block a request took (new or prefix hit) it gave back, and the pool is whole again at the end
    taken, given = Counter(), Counter()
    for e in events:
        if e["kind"] in ("alloc", "touch"):
            taken.update((e["req"], b) for b in e["blocks"])
        elif e["kind"] == "free":
            given.update((e["req"], b) for b in e["blocks"])
    assert taken and taken == given
    assert v["blocks_held_at_end"] == 0
    assert raw["final_num_free_blocks"] == NUM_BLOCKS - 1 == v["free_blocks_at_end_replay"]

    # shared-prefix requests hit the prefix cache; the real engine agrees (RequestOutput.num_cached_tokens)
    summaries = [r.summary() for r in reqs]
    table = A.request_table(events, raw["finished"], summaries, lab.ENGINE["block_size"])
    assert all(t["output_tokens"] == t["output_len"] for t in table)
    later_shared = [t for t in table if t["group"] in "ABC" and any(
        u["group"] == t["group"] and u["arrival_step"] < t["arrival_step"] for u in table)]
    assert later_shared and any(t["num_cached_tokens_vllm"] > 0 for t in later_shared)
    assert sum(t["num_cached_tokens_vllm"] for t in table) == sum(t["hit_tokens_per_admission"][0] for t in table)
    assert A.event_counts(events).get("touch", 0) > 0
