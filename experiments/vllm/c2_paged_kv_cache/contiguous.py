"""What a pre-paging server would have done with the same memory: one contiguous KV region per request.

A first-fit allocator over an arena of `capacity` token slots (the same bytes
as the paged pool), FCFS with head-of-line blocking (vLLM's FCFS policy also
stops admitting at the first request that does not fit). Each request reserves
`reserve` slots up front and holds them for `service` steps (its prompt is
prefilled in its first step, which also yields output token 1, then one token
per step). No prefix sharing: a contiguous region belongs to one request.

Per step it reports what was reserved, what was actually written (prompt +
tokens generated so far), the free space and the largest hole, and, when the
head request cannot be admitted, whether that was for lack of space
(capacity) or because the free space was split into holes none of which was
big enough (external fragmentation).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CReq:
    rid: str
    arrival: int
    prompt_len: int
    output_len: int
    reserve: int

    @property
    def service(self) -> int:
        return max(1, self.output_len)

    @property
    def final_len(self) -> int:
        return self.prompt_len + self.output_len


def first_fit(free_segments: list[tuple[int, int]], size: int) -> int | None:
    """Start of the lowest-address hole that holds `size` slots, or None. Segments: (start, length)."""
    for start, length in free_segments:
        if length >= size:
            return start
    return None


def free_segments(capacity: int, taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Holes between the taken (start, length) ranges, in address order."""
    out, cur = [], 0
    for start, length in sorted(taken):
        if start > cur:
            out.append((cur, start - cur))
        cur = max(cur, start + length)
    if cur < capacity:
        out.append((cur, capacity - cur))
    return out


def simulate(reqs: list[CReq], capacity: int, max_steps: int = 100_000) -> dict:
    queue = sorted(reqs, key=lambda r: (r.arrival, r.rid))
    rejected = [r.rid for r in queue if r.reserve > capacity]  # can never fit
    queue = [r for r in queue if r.reserve <= capacity]
    waiting: list[CReq] = []
    running: dict[str, tuple[CReq, int, int]] = {}  # rid -> (req, start address, admit step)
    admitted: dict[str, dict] = {}
    steps: list[dict] = []
    blocked_frag_steps = blocked_cap_steps = 0
    blocked_by_frag: set[str] = set()
    t = 0
    while queue or waiting or running:
        while queue and queue[0].arrival <= t:
            waiting.append(queue.pop(0))
        # admit in FCFS order until the head does not fit
        blocked = None
        while waiting:
            head = waiting[0]
            segs = free_segments(capacity, [(s, r.reserve) for r, s, _ in running.values()])
            start = first_fit(segs, head.reserve)
            if start is None:
                free_total = sum(length for _, length in segs)
                blocked = "fragmentation" if free_total >= head.reserve else "capacity"
                if blocked == "fragmentation":
                    blocked_by_frag.add(head.rid)
                break
            running[head.rid] = (head, start, t)
            admitted[head.rid] = {"admit": t, "start": start, "wait": t - head.arrival}
            waiting.pop(0)
        if not running and not waiting and queue:  # idle: jump to the next arrival
            t = queue[0].arrival
            continue
        blocked_frag_steps += blocked == "fragmentation"
        blocked_cap_steps += blocked == "capacity"
        segs = free_segments(capacity, [(s, r.reserve) for r, s, _ in running.values()])
        used = sum(r.prompt_len + min(t - a + 1, r.output_len) for r, _, a in running.values())
        reserved = sum(r.reserve for r, _, _ in running.values())
        steps.append({"step": t, "running": len(running), "waiting": len(waiting), "reserved": reserved,
                      "used": used, "free": capacity - reserved, "largest_hole": max((n for _, n in segs), default=0),
                      "holes": len(segs), "blocked": blocked,
                      "regions": sorted((s, r.reserve, r.prompt_len + min(t - a + 1, r.output_len), r.rid)
                                        for r, s, a in running.values())})
        # this step's tokens are done; requests that produced their last token leave
        for rid in [rid for rid, (r, _, a) in running.items() if t - a + 1 >= r.service]:
            admitted[rid]["finish"] = t
            del running[rid]
        t += 1
        if t > max_steps:
            raise RuntimeError("contiguous simulation did not finish")
    return {"steps": steps, "admitted": admitted, "rejected": rejected,
            "blocked_fragmentation_steps": blocked_frag_steps, "blocked_capacity_steps": blocked_cap_steps,
            "requests_blocked_by_fragmentation": sorted(blocked_by_frag)}


def summarise(sim: dict, reqs: list[CReq], capacity: int) -> dict:
    """The numbers the README quotes: concurrency, waiting, makespan, reserved-but-unused, holes."""
    steps = sim["steps"]
    by_id = {r.rid: r for r in reqs}
    adm = sim["admitted"]
    reserved_token_steps = sum(s["reserved"] for s in steps)
    used_token_steps = sum(s["used"] for s in steps)
    done = [r for r in reqs if r.rid in adm]
    return {
        "capacity_tokens": capacity,
        "requests": len(reqs), "rejected_never_fit": len(sim["rejected"]),
        "makespan_steps": (steps[-1]["step"] + 1 - steps[0]["step"]) if steps else 0,
        "max_running": max((s["running"] for s in steps), default=0),
        "mean_running": sum(s["running"] for s in steps) / max(1, len(steps)),
        "mean_wait_steps": sum(a["wait"] for a in adm.values()) / max(1, len(adm)),
        "max_wait_steps": max((a["wait"] for a in adm.values()), default=0),
        # internal fragmentation: reserved but never written, per request at its end, and averaged over time
        "reserved_tokens_total": sum(by_id[r].reserve for r in adm),
        "final_tokens_total": sum(r.final_len for r in done),
        "internal_waste_at_finish_frac": 1 - sum(r.final_len for r in done) / max(1, sum(r.reserve for r in done)),
        "reserved_unused_frac_time_avg": 1 - used_token_steps / max(1, reserved_token_steps),
        "mean_used_frac_of_arena": used_token_steps / max(1, len(steps) * capacity),
        # external fragmentation
        "blocked_fragmentation_steps": sim["blocked_fragmentation_steps"],
        "blocked_capacity_steps": sim["blocked_capacity_steps"],
        "requests_blocked_by_fragmentation": len(sim["requests_blocked_by_fragmentation"]),
        "max_free_but_unusable_tokens": max((s["free"] - s["largest_hole"] for s in steps if s["blocked"]), default=0),
        "max_holes": max((s["holes"] for s in steps), default=0),
    }
