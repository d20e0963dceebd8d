"""An analytic model of what a warp does, exact where the numba simulator is silent.

Two rules, both from NVIDIA's CUDA documentation:

* Memory (CUDA C++ Best Practices Guide, "Coalesced Access to Global Memory";
  Programming Guide, "Device Memory Accesses"): on compute capability >= 6.0 a
  warp's load is served by as many 32-byte sectors as the distinct aligned
  sectors its active lanes touch. Efficiency = useful bytes / (32 x sectors).
* Branches (Programming Guide, "SIMT Architecture"): when lanes of a warp take
  different paths, the warp issues every path taken, with the lanes not on it
  masked off. Lane utilisation = useful lane-slots / (32 x issued slots).

Allocations from cudaMalloc are at least 256-byte aligned, so address 0 here is
sector-aligned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

WARP_SIZE = 32
SECTOR_BYTES = 32


# ---------------------------------------------------------------- memory accesses
@dataclass(frozen=True)
class WarpRequest:
    sectors: int
    useful_bytes: int

    @property
    def moved_bytes(self) -> int:
        return self.sectors * SECTOR_BYTES

    @property
    def efficiency(self) -> float:
        return self.useful_bytes / self.moved_bytes if self.sectors else 0.0


def warp_request(
    byte_addresses: Sequence[int], access_bytes: int, active: Sequence[bool] | None = None
) -> WarpRequest:
    """Sectors one warp-wide load touches; each lane reads `access_bytes` from its address."""
    addrs = np.asarray(byte_addresses, dtype=np.int64)
    if addrs.size > WARP_SIZE:
        raise ValueError(f"a warp has {WARP_SIZE} lanes, got {addrs.size} addresses")
    if active is not None:
        addrs = addrs[np.asarray(active, dtype=bool)]
    if addrs.size == 0:
        return WarpRequest(0, 0)
    first = addrs // SECTOR_BYTES
    last = (addrs + access_bytes - 1) // SECTOR_BYTES
    sectors: set[int] = set()
    for lo, hi in zip(first.tolist(), last.tolist()):
        sectors.update(range(lo, hi + 1))
    return WarpRequest(len(sectors), int(addrs.size) * access_bytes)


def lane_element_indices(
    pattern: str,
    *,
    warp: int = 0,
    stride: int = 1,
    offset: int = 0,
    n_elements: int | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Element index each of the 32 lanes of warp `warp` reads, for the patterns the labs use.

    contiguous: lane i reads element 32*warp + i + offset
    strided:    lane i reads element (32*warp + i) * stride + offset
    random:     lane i reads a uniformly random element of an n_elements array (a gather)
    """
    tid = warp * WARP_SIZE + np.arange(WARP_SIZE, dtype=np.int64)
    if pattern == "contiguous":
        return tid + offset
    if pattern == "strided":
        return tid * stride + offset
    if pattern == "random":
        if n_elements is None or rng is None:
            raise ValueError("random pattern needs n_elements and rng")
        return rng.integers(0, n_elements, WARP_SIZE, dtype=np.int64)
    raise ValueError(f"unknown pattern {pattern!r}")


def mean_request(pattern: str, *, elem_bytes: int = 4, n_warps: int = 64, seed: int = 0, **kw) -> dict:
    """Sectors per warp request and efficiency, averaged over n_warps consecutive warps."""
    rng = np.random.default_rng(seed)
    reqs = [
        warp_request(lane_element_indices(pattern, warp=w, rng=rng, **kw) * elem_bytes, elem_bytes)
        for w in range(n_warps)
    ]
    sectors = float(np.mean([r.sectors for r in reqs]))
    useful = float(np.mean([r.useful_bytes for r in reqs]))
    return {
        "sectors_per_request": sectors,
        "useful_bytes": useful,
        "moved_bytes": sectors * SECTOR_BYTES,
        "efficiency": useful / (sectors * SECTOR_BYTES),
    }


# ---------------------------------------------------------------- branches
def divergence(
    path_of_thread: Sequence[int] | np.ndarray, path_cost: Mapping[int, float] | None = None
) -> dict:
    """Issue cost of a 1-D grid whose thread t takes branch path `path_of_thread[t]`.

    Each warp issues every distinct path among its lanes, costing path_cost[p]
    (default 1) per path, whatever the number of lanes on it. Returned:
    mean paths issued per warp, lane utilisation (useful lane-slots / issued
    lane-slots), and the issue cost relative to a grid in which every warp runs
    exactly one path (what the same work costs with no divergence).
    """
    paths = np.asarray(path_of_thread)
    n = paths.size
    n_warps = -(-n // WARP_SIZE)
    cost = (lambda p: 1.0) if path_cost is None else (lambda p: float(path_cost[int(p)]))
    issued_slots = useful_slots = issued_cost = ideal_cost = 0.0
    paths_issued = 0
    for w in range(n_warps):
        lanes = paths[w * WARP_SIZE : (w + 1) * WARP_SIZE]
        taken, counts = np.unique(lanes, return_counts=True)
        paths_issued += taken.size
        for p, c in zip(taken.tolist(), counts.tolist()):
            issued_slots += WARP_SIZE * cost(p)
            useful_slots += c * cost(p)
            issued_cost += cost(p)
        # Without divergence the same lanes would sit in warps running one path each.
        ideal_cost += sum(c * cost(p) for p, c in zip(taken.tolist(), counts.tolist())) / WARP_SIZE
    return {
        "threads": int(n),
        "warps": int(n_warps),
        "mean_paths_per_warp": paths_issued / n_warps,
        "lane_utilisation": useful_slots / issued_slots,
        "relative_issue_cost": issued_cost / ideal_cost,
    }


def expected_paths_random_branch(p_true: float) -> float:
    """Mean paths per full warp when each lane independently takes the `if` with probability p."""
    both = 1.0 - p_true**WARP_SIZE - (1.0 - p_true) ** WARP_SIZE
    return 1.0 + both
