"""Event-log replay: the block map, the allocator invariants, the comparison with vLLM's snapshot."""
import pytest

from experiments.vllm.c2_paged_kv_cache import blockmap as B


def ev(step, kind, req, blocks, **kw):
    return {"step": step, "kind": kind, "req": req, "blocks": blocks, **kw}


LOG = [
    ev(0, "lookup", "r1A", [], hit_tokens=0, prompt_tokens=70),
    ev(0, "alloc", "r1A", [1, 2, 3]),
    ev(0, "cache", "r1A", [1, 2]),
    ev(1, "lookup", "r2A", [1, 2], hit_tokens=64, prompt_tokens=80),
    ev(1, "touch", "r2A", [1, 2], ref_before=[1, 1]),
    ev(1, "alloc", "r2A", [4]),
    ev(2, "release", "r1A", [], status="FINISHED_LENGTH_CAPPED"),
    ev(2, "free", "r1A", [3, 2, 1]),
    ev(3, "alloc", "r3x", [3]),  # block 3 was never hashed: plain free, no eviction needed
]


def test_replay_states_and_sharing():
    frames = B.replay(LOG, 6, at=[3, 6, 8, 9])
    assert frames[0]["codes"] == [0, B.OWNED, B.OWNED, B.OWNED, 0, 0]
    assert frames[0]["hashed"][:3] == [False, True, True]
    assert frames[1]["codes"][1:5] == [B.SHARED, B.SHARED, B.OWNED, B.OWNED]
    # r1A gone: its hashed blocks stay with r2A (ref 1), its unhashed tail is plain free
    assert frames[2]["codes"][1:5] == [B.OWNED, B.OWNED, B.FREE_EMPTY, B.OWNED]
    assert frames[3]["holders"][3] == ["r3x"]
    final = B.replay(LOG, 6)
    assert final.num_free() == 1 and final.tables() == {"r2A": {1, 2, 4}, "r3x": {3}}


def test_cached_free_block_is_evicted_before_reuse():
    log = [ev(0, "alloc", "a", [1]), ev(0, "cache", "a", [1]), ev(1, "free", "a", [1])]
    assert B.replay(log, 3).state_codes()[1] == B.FREE_CACHED
    with pytest.raises(B.InvariantError, match="without evicting"):
        B.replay(log + [ev(2, "alloc", "b", [1])], 3)
    s = B.replay(log + [ev(2, "evict", "b", [1]), ev(2, "alloc", "b", [1])], 3)
    assert s.holders[1] == {"b"} and not s.hashed[1]
    hit = B.replay(log + [ev(2, "touch", "b", [1], ref_before=[0])], 3)  # prefix hit on a parked block
    assert hit.holders[1] == {"b"} and hit.hashed[1]


@pytest.mark.parametrize("bad, msg", [
    ([ev(0, "alloc", "a", [1]), ev(0, "alloc", "b", [1])], "while held"),
    ([ev(0, "alloc", "a", [1]), ev(0, "touch", "b", [1], ref_before=[1])], "holds no hash"),
    ([ev(0, "alloc", "a", [1]), ev(0, "free", "b", [1])], "does not hold"),
    ([ev(0, "alloc", "a", [1]), ev(0, "cache", "a", [1]), ev(0, "evict", "b", [1])], "in use"),
    ([ev(0, "alloc", "a", [0])], "null block"),
    ([ev(0, "alloc", "a", [1]), ev(0, "cache", "a", [1]), ev(0, "touch", "a", [1], ref_before=[1])], "twice"),
])
def test_invariant_violations_are_caught(bad, msg):
    with pytest.raises(B.InvariantError, match=msg):
        B.replay(bad, 4)


def test_compare_with_snapshot():
    (frame,) = B.replay(LOG, 6, at=[6])
    snap = {"ref_cnt": [1, 2, 2, 1, 1, 0], "hashed": [0, 1, 1, 0, 0, 0],
            "tables": {"r1A": [1, 2, 3], "r2A": [1, 2, 4]}, "num_free": 1}
    assert B.compare_with_snapshot(frame, snap) == []
    wrong = dict(snap, num_free=2, tables={"r1A": [1, 2, 3], "r2A": [1, 2, 5]})
    diffs = B.compare_with_snapshot(frame, wrong)
    assert any("free count" in d for d in diffs) and any("block tables" in d for d in diffs)


def test_event_encoding_roundtrip_and_markers():
    log = LOG + [ev(4, "evict", "r4x", [2]), ev(4, "alloc_failed", "r5x", [], status="WAITING")]
    for e in log:
        assert B.decode_event(B.encode_event(e)) == e
    m = B.step_markers(log + [ev(5, "touch", "r6A", [1], ref_before=[0])])
    assert m["evicted"] == [(4, 2)] and m["hit_shared"] == [(1, 1), (1, 2)] and m["hit_revived"] == [(5, 1)]
