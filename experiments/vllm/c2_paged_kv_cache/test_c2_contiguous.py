"""The contiguous first-fit simulator: holes, fragmentation vs capacity blocking, waste accounting."""
from experiments.vllm.c2_paged_kv_cache import contiguous as C


def test_free_segments_and_first_fit():
    segs = C.free_segments(10, [(2, 3), (7, 1)])
    assert segs == [(0, 2), (5, 2), (8, 2)]
    assert C.first_fit(segs, 2) == 0
    assert C.first_fit(segs, 3) is None
    assert C.free_segments(4, []) == [(0, 4)]


def test_external_fragmentation_is_told_apart_from_capacity():
    # a(4) b(2) c(4) fill a 10-slot arena; b leaves after step 0, a after step 1
    reqs = [C.CReq("a", 0, 3, 2, 4), C.CReq("b", 0, 1, 1, 2), C.CReq("c", 0, 3, 5, 4),
            C.CReq("d", 1, 5, 3, 6)]
    sim = C.simulate(reqs, 10)
    # step 1: b (1 step) has left -> free = 2 (at 4..5); a leaves after step 1 -> free 0..5 = 6 at step 2
    assert sim["admitted"]["d"]["admit"] == 2
    # at step 1 free is 2 < 6: blocked by capacity, not by holes
    assert sim["steps"][1]["blocked"] == "capacity"
    reqs2 = [C.CReq("a", 0, 2, 1, 3), C.CReq("b", 0, 2, 5, 3), C.CReq("c", 0, 2, 1, 3), C.CReq("d", 1, 4, 1, 5)]
    sim2 = C.simulate(reqs2, 10)
    # after step 0, a and c leave: free = 3 + 4 (two holes around b), d needs 5 contiguous
    assert sim2["steps"][1]["blocked"] == "fragmentation"
    assert sim2["requests_blocked_by_fragmentation"] == ["d"]
    assert sim2["admitted"]["d"]["admit"] == 5  # only when b leaves
    s = C.summarise(sim2, reqs2, 10)
    assert s["blocked_fragmentation_steps"] == 4 and s["max_free_but_unusable_tokens"] == 3


def test_reservation_waste_and_never_fitting_requests():
    reqs = [C.CReq("a", 0, 10, 6, 40), C.CReq("big", 0, 10, 6, 200)]
    sim = C.simulate(reqs, 100)
    assert sim["rejected"] == ["big"]
    s = C.summarise(sim, reqs, 100)
    assert s["internal_waste_at_finish_frac"] == 1 - 16 / 40
    # used grows one token a step from prompt + 1 to prompt + output
    assert [st["used"] for st in sim["steps"]] == [11, 12, 13, 14, 15, 16]
    assert s["makespan_steps"] == 6 and s["max_running"] == 1
