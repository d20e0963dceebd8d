"""Event log -> physical block map: replay what the recorder saw, check invariants on the way.

The replay is the model of vLLM's BlockPool that this lab teaches:
- a block is *free* when no request references it (ref count 0); a free block
  that still holds a prefix hash is *cached*: a later request with the same
  prefix can take it back (a hit), or an allocation can evict it (LRU) and
  reuse the memory for anything;
- a block referenced by two or more requests is a *shared prefix block*; the
  only way to get there is a prefix-cache hit, so it must hold a hash;
- a request never references the same block twice, and frees only what it holds.

`replay` raises `InvariantError` the moment the log breaks one of these rules,
so a run whose log replays cleanly *and* matches vLLM's own state at every
snapshot (`compare_with_snapshot`) is evidence that both are right.
"""
from __future__ import annotations

from dataclasses import dataclass, field

FREE_EMPTY, FREE_CACHED, OWNED, SHARED = 0, 1, 2, 3
STATE_NAMES = {FREE_EMPTY: "free", FREE_CACHED: "free, cached (evictable)", OWNED: "owned by one request",
               SHARED: "shared prefix (ref >= 2)"}


class InvariantError(AssertionError):
    pass


@dataclass
class PoolState:
    num_blocks: int
    null_block: int = 0
    holders: list[set[str]] = field(default_factory=list)
    hashed: list[bool] = field(default_factory=list)
    cached_by: list[str | None] = field(default_factory=list)  # request whose tokens the hash describes

    def __post_init__(self):
        self.holders = [set() for _ in range(self.num_blocks)]
        self.hashed = [False] * self.num_blocks
        self.cached_by = [None] * self.num_blocks

    def ref(self, b: int) -> int:
        return len(self.holders[b])

    def num_free(self) -> int:
        return sum(1 for b in range(self.num_blocks) if b != self.null_block and not self.holders[b])

    def tables(self) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {}
        for b, hs in enumerate(self.holders):
            for r in hs:
                out.setdefault(r, set()).add(b)
        return out

    def state_codes(self) -> list[int]:
        codes = []
        for b in range(self.num_blocks):
            n = len(self.holders[b])
            codes.append(SHARED if n >= 2 else OWNED if n == 1 else FREE_CACHED if self.hashed[b] else FREE_EMPTY)
        return codes


def apply_event(s: PoolState, ev: dict) -> None:
    kind, req, blocks = ev["kind"], ev.get("req"), ev.get("blocks", [])
    for b in blocks:
        if b == s.null_block:
            raise InvariantError(f"{kind} touches the null block: {ev}")
    if kind == "evict":
        (b,) = blocks
        if s.holders[b] or not s.hashed[b]:
            raise InvariantError(f"evicted block {b} is in use or holds no hash: {ev}")
        s.hashed[b], s.cached_by[b] = False, None
    elif kind == "alloc":
        for b in blocks:
            if s.holders[b]:
                raise InvariantError(f"block {b} allocated to {req} while held by {s.holders[b]}")
            if s.hashed[b]:
                raise InvariantError(f"block {b} reused without evicting its hash first: {ev}")
            s.holders[b].add(req)
    elif kind == "touch":
        for b in blocks:
            if not s.hashed[b]:
                raise InvariantError(f"prefix hit on block {b} that holds no hash: {ev}")
            if req in s.holders[b]:
                raise InvariantError(f"{req} references block {b} twice")
            s.holders[b].add(req)
    elif kind == "free":
        for b in blocks:
            if req not in s.holders[b]:
                raise InvariantError(f"{req} frees block {b} it does not hold ({s.holders[b]})")
            s.holders[b].discard(req)
    elif kind == "cache":
        for b in blocks:
            if req not in s.holders[b]:
                raise InvariantError(f"{req} caches block {b} it does not hold")
            s.hashed[b], s.cached_by[b] = True, req
    # lookup / alloc_failed / release carry no block state change
    for b in blocks:
        if len(s.holders[b]) >= 2 and not s.hashed[b]:
            raise InvariantError(f"block {b} shared by {s.holders[b]} without a prefix hash")


def replay(events: list[dict], num_blocks: int, null_block: int = 0, at: list[int] | None = None):
    """Replay `events`; return the final state, or (if `at` is given: sorted event counts) the
    state codes / holders / hashed flags after each of those many events."""
    s = PoolState(num_blocks, null_block)
    frames = []
    targets = list(at or [])
    ti = 0
    for i in range(len(events) + 1):
        while ti < len(targets) and targets[ti] == i:
            frames.append({"codes": s.state_codes(), "holders": [sorted(h) for h in s.holders],
                           "hashed": list(s.hashed), "cached_by": list(s.cached_by)})
            ti += 1
        if i < len(events):
            apply_event(s, events[i])
    if ti != len(targets):
        raise ValueError("frame positions must be sorted and <= len(events)")
    return frames if at is not None else s


def compare_with_snapshot(frame: dict, snap: dict, null_block: int = 0) -> list[str]:
    """Differences between the replayed state and vLLM's real state at the same moment."""
    diffs = []
    refs = [len(h) for h in frame["holders"]]
    real_refs = [0 if b == null_block else r for b, r in enumerate(snap["ref_cnt"])]
    if refs != real_refs:
        bad = [b for b, (x, y) in enumerate(zip(refs, real_refs)) if x != y]
        diffs.append(f"ref counts differ at blocks {bad[:8]}")
    hashed = [int(h) for h in frame["hashed"]]
    real_hashed = [0 if b == null_block else h for b, h in enumerate(snap["hashed"])]
    if hashed != real_hashed:
        diffs.append("hash flags differ")
    tables: dict[str, set[int]] = {}
    for b, hs in enumerate(frame["holders"]):
        for r in hs:
            tables.setdefault(r, set()).add(b)
    real_tables = {r: set(ids) for r, ids in snap["tables"].items() if ids}
    if tables != real_tables:
        diffs.append(f"block tables differ: replay {sorted(tables)} vs vLLM {sorted(real_tables)}")
    num_free = sum(1 for b, r in enumerate(refs) if r == 0 and b != null_block)
    if num_free != snap["num_free"]:
        diffs.append(f"free count {num_free} vs BlockPool.get_num_free_blocks() {snap['num_free']}")
    return diffs


def step_markers(events: list[dict]) -> dict[str, list[tuple[int, int]]]:
    """(step, block) points for the plot: evictions, hits on parked cached blocks, hits on blocks in use."""
    out = {"evicted": [], "hit_revived": [], "hit_shared": []}
    for ev in events:
        if ev["kind"] == "evict":
            out["evicted"] += [(ev["step"], b) for b in ev["blocks"]]
        elif ev["kind"] == "touch":
            for b, r in zip(ev["blocks"], ev["ref_before"]):
                out["hit_revived" if r == 0 else "hit_shared"].append((ev["step"], b))
    return out


def encode_event(e: dict) -> str:
    """One event per short string keeps the committed trace small: 'step kind req blocks [extra]'."""
    extra = ""
    if e["kind"] == "touch":
        extra = " " + ",".join(map(str, e["ref_before"]))
    elif e["kind"] == "lookup":
        extra = f" {e['hit_tokens']}/{e['prompt_tokens']}"
    elif e["kind"] in ("release", "alloc_failed"):
        extra = " " + e["status"]
    return f"{e['step']} {e['kind']} {e['req'] or '-'} {','.join(map(str, e['blocks'])) or '-'}{extra}"


def decode_event(s: str) -> dict:
    parts = s.split(" ")
    step, kind, req, blocks = int(parts[0]), parts[1], parts[2], parts[3]
    e = {"step": step, "kind": kind, "req": None if req == "-" else req,
         "blocks": [] if blocks == "-" else [int(b) for b in blocks.split(",")]}
    if kind == "touch":
        e["ref_before"] = [int(x) for x in parts[4].split(",")] if e["blocks"] else []
    elif kind == "lookup":
        hit, prompt = parts[4].split("/")
        e["hit_tokens"], e["prompt_tokens"] = int(hit), int(prompt)
    elif kind in ("release", "alloc_failed"):
        e["status"] = parts[4]
    return e
