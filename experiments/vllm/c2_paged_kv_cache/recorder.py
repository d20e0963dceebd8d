"""Record what vLLM's real KV-cache manager does with its blocks, step by step.

The EngineCore runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0), so the
scheduler's `KVCacheManager` and its `BlockPool` are ordinary objects here. We
wrap a few of their methods *on the instances* (nothing in vLLM's files is
changed, other engines in other processes are untouched):

- BlockPool.get_new_blocks / touch / free_blocks / cache_full_blocks /
  _maybe_evict_cached_block: every allocation, prefix-cache hit on a block
  (touch), free, block that becomes reusable (hashed), and cached block evicted
  to be reused;
- KVCacheManager.allocate_slots / free / pop_blocks_for_free / get_computed_blocks:
  which request the pool calls above are made for (the pool itself does not
  know), and how many prompt tokens the prefix cache found;
- Scheduler.schedule: the step boundary; right after it we take a snapshot of
  the real state (the block table of every request, every block's ref count and
  whether it holds a hash, the free-queue length) to check the event log against.

Each wrapper calls the original and only observes arguments and results, so the
engine behaves exactly as without the recorder. Tested against vLLM 0.32.0;
`install` checks the methods it needs exist and fails loudly if not.
"""
from __future__ import annotations

import functools
import time
from contextlib import contextmanager

POOL_METHODS = ("get_new_blocks", "touch", "free_blocks", "cache_full_blocks", "_maybe_evict_cached_block",
                "get_num_free_blocks")
MANAGER_METHODS = ("allocate_slots", "free", "pop_blocks_for_free", "get_computed_blocks")


class BlockEventRecorder:
    def __init__(self, scheduler, external_id=lambda rid: rid):
        self.scheduler = scheduler
        self.kvm = scheduler.kv_cache_manager
        self.pool = self.kvm.block_pool
        self.external_id = external_id  # vLLM appends a suffix to request ids; map back to ours
        self.step = 0
        self.events: list[dict] = []
        self.snapshots: list[dict] = []
        self._req: list[str | None] = [None]  # request the current pool call is made for
        self._pending_free: dict[tuple[int, ...], str] = {}  # popped-but-not-yet-freed block lists
        self._installed: list[tuple[object, str]] = []

    # ------------------------------------------------------------------ helpers
    def _emit(self, kind: str, blocks=(), **extra) -> None:
        self.events.append({"step": self.step, "kind": kind, "req": self._req[-1],
                            "blocks": [int(b) for b in blocks], **extra})

    @contextmanager
    def _for_request(self, request):
        self._req.append(self.external_id(request.request_id))
        try:
            yield
        finally:
            self._req.pop()

    def _wrap(self, obj, name: str, make):
        orig = getattr(obj, name)
        setattr(obj, name, functools.wraps(orig)(make(orig)))
        self._installed.append((obj, name))

    # ------------------------------------------------------------------ install
    def install(self) -> "BlockEventRecorder":
        missing = [m for m in POOL_METHODS if not hasattr(self.pool, m)]
        missing += [m for m in MANAGER_METHODS if not hasattr(self.kvm, m)]
        if missing or not hasattr(self.scheduler, "schedule"):
            raise RuntimeError(f"vLLM KV-cache API changed, missing: {missing}")
        managers = self.kvm.coordinator.single_type_managers
        if len(managers) != 1:
            raise RuntimeError("expected one KV cache group (a plain full-attention model)")
        self.block_manager = managers[0]
        pool = self.pool

        def get_new_blocks(orig):
            def w(num_blocks):
                out = orig(num_blocks)
                self._emit("alloc", [b.block_id for b in out])
                return out
            return w

        def evict(orig):
            def w(block):
                evicted = orig(block)
                if evicted:
                    self._emit("evict", [block.block_id])
                return evicted
            return w

        def touch(orig):
            def w(blocks):
                blocks = list(blocks)
                real = [b for b in blocks if not b.is_null]
                # ref_cnt 0 = the block sat in the free queue as a cached (evictable) block
                self._emit("touch", [b.block_id for b in real], ref_before=[b.ref_cnt for b in real])
                return orig(blocks)
            return w

        def free_blocks(orig):
            def w(ordered_blocks):
                all_blocks = list(ordered_blocks)  # may be an iterator (reversed); the original gets the same list
                blocks = [b for b in all_blocks if not b.is_null]
                req = self._req[-1]
                if req is None:  # a deferred free: attribute it to the request whose blocks were popped
                    req = self._pending_free.pop(tuple(sorted(b.block_id for b in blocks)), None)
                self._req.append(req)
                try:
                    self._emit("free", [b.block_id for b in blocks])
                finally:
                    self._req.pop()
                return orig(all_blocks)
            return w

        def cache_full_blocks(orig):
            def w(request, blocks, num_cached_blocks, num_full_blocks, *args, **kwargs):
                window = blocks[num_cached_blocks:num_full_blocks]
                before = [b.block_hash is not None for b in window]
                out = orig(request, blocks, num_cached_blocks, num_full_blocks, *args, **kwargs)
                newly = [b.block_id for b, had in zip(window, before) if not had and b.block_hash is not None
                         and not b.is_null]
                if newly:
                    with self._for_request(request):
                        self._emit("cache", newly)
                return out
            return w

        for name, make in (("get_new_blocks", get_new_blocks), ("_maybe_evict_cached_block", evict),
                           ("touch", touch), ("free_blocks", free_blocks),
                           ("cache_full_blocks", cache_full_blocks)):
            self._wrap(pool, name, make)

        def with_request(orig):
            def w(request, *args, **kwargs):
                with self._for_request(request):
                    return orig(request, *args, **kwargs)
            return w

        def allocate_slots(orig):
            def w(request, *args, **kwargs):
                with self._for_request(request):
                    out = orig(request, *args, **kwargs)
                    if out is None:  # not enough free blocks: the scheduler keeps it waiting / preempts
                        self._emit("alloc_failed", [], status=request.status.name)
                    return out
            return w

        def free(orig):
            def w(request, *args, **kwargs):
                with self._for_request(request):
                    self._emit("release", [], status=request.status.name)
                    return orig(request, *args, **kwargs)
            return w

        def pop_blocks_for_free(orig):
            def w(request, *args, **kwargs):
                blocks = orig(request, *args, **kwargs)
                key = tuple(sorted(b.block_id for b in blocks if not b.is_null))
                self._pending_free[key] = self.external_id(request.request_id)
                return blocks
            return w

        def get_computed_blocks(orig):
            def w(request, *args, **kwargs):
                out = orig(request, *args, **kwargs)
                blocks, num_hit_tokens = out[0], out[1]
                ids = [b.block_id for b in blocks.blocks[0] if not b.is_null] if blocks.blocks else []
                with self._for_request(request):
                    self._emit("lookup", ids, hit_tokens=int(num_hit_tokens), prompt_tokens=request.num_prompt_tokens)
                return out
            return w

        self._wrap(self.kvm, "allocate_slots", allocate_slots)
        self._wrap(self.kvm, "free", free)
        self._wrap(self.kvm, "pop_blocks_for_free", pop_blocks_for_free)
        self._wrap(self.kvm, "get_computed_blocks", get_computed_blocks)

        def schedule(orig):
            def w(*args, **kwargs):
                out = orig(*args, **kwargs)
                self.snapshots.append(self.snapshot("scheduled", out))
                return out
            return w

        self._wrap(self.scheduler, "schedule", schedule)
        return self

    def uninstall(self) -> None:
        for obj, name in reversed(self._installed):
            delattr(obj, name)  # drops the instance attribute, the class method shows through again
        self._installed.clear()

    # ------------------------------------------------------------------ state
    def snapshot(self, phase: str, scheduler_output=None) -> dict:
        """The real state of the pool and every request's block table, read from vLLM's own objects."""
        pool = self.pool
        tables, tokens = {}, {}
        for rid, blocks in self.block_manager.req_to_blocks.items():
            ext = self.external_id(rid)
            tables[ext] = [b.block_id for b in blocks if not b.is_null]
            req = self.scheduler.requests.get(rid)
            # after schedule() num_computed_tokens includes this step's tokens: the KV slots in use
            tokens[ext] = int(req.num_computed_tokens) if req is not None else None
        return {
            "step": self.step, "phase": phase, "t": time.perf_counter(), "n_events": len(self.events),
            "tables": tables, "tokens": tokens,
            "ref_cnt": [b.ref_cnt for b in pool.blocks],
            "hashed": [int(b.block_hash is not None) for b in pool.blocks],
            "num_free": pool.get_num_free_blocks(),
            "num_scheduled_tokens": (int(scheduler_output.total_num_scheduled_tokens)
                                     if scheduler_output is not None else 0),
            "running": len(self.scheduler.running), "waiting": len(self.scheduler.waiting),
        }
