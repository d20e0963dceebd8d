"""Code that runs inside the spawned measurement processes (kept light: no plotting imports)."""
from __future__ import annotations

import time

from experiments.foundations.a3_read_vs_mmap import loaders, memory_probes as probes


def probe_loader(conn, method: str, path: str, names: list[str]) -> None:
    loader, _ = loaders.METHODS[method]
    before = probes.snapshot()
    t0 = time.perf_counter()
    tensors = loader(path, names)
    value = loaders.checksum(tensors)  # the first use of every loaded byte
    wall = time.perf_counter() - t0
    after = probes.snapshot()  # taken while the tensors are still alive
    conn.send({"wall_s": wall, "checksum": value, "n_tensors": len(tensors), **probes.delta(before, after)})
    conn.close()


def share_file(conn, barrier, how: str, path: str) -> None:
    """Load the whole file (read or mmap), then measure Rss/Pss while the sibling holds it too."""
    names = loaders.tensor_names(path)
    before = probes.smaps_rollup()
    loader = loaders.read_full if how == "read" else loaders.mmap_view
    tensors = loader(path, names)
    loaders.checksum(tensors)          # touch every byte
    barrier.wait(timeout=120)          # both processes hold their copy / mapping now
    after = probes.smaps_rollup()
    barrier.wait(timeout=120)          # neither exits before the other has measured
    conn.send({k: after.get(k, 0) - before.get(k, 0) for k in ("Rss", "Pss", "Pss_Anon", "Pss_File")})
    conn.close()
