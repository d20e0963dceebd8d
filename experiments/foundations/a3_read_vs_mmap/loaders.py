"""A generated safetensors weights file and seven ways to get (some of) its tensors into use.

Every loader returns the tensors it loaded (kept alive by the caller, so their
memory can be measured), and the caller checksums them: all loaders touch the
same bytes and must agree on the checksum before any timing counts.
"""
from __future__ import annotations

import json
import mmap
import os
import struct
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file


def generate_weights(path: Path, n_tensors: int, tensor_mib: int, seed: int = 0) -> Path:
    """Write `n_tensors` float32 tensors of `tensor_mib` MiB each (reused if already there)."""
    expected = n_tensors * tensor_mib << 20
    if path.exists() and expected <= path.stat().st_size < expected + (1 << 20):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = (tensor_mib << 20) // 4
    tensors = {f"layers.{i:03d}.weight": rng.standard_normal(n, dtype=np.float32) for i in range(n_tensors)}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)
    return path


def read_header(path: str) -> tuple[int, dict]:
    """safetensors layout: u64 header length, JSON header, then the raw tensor bytes."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    header.pop("__metadata__", None)
    return 8 + n, header


def tensor_names(path: str) -> list[str]:
    return sorted(read_header(path)[1])


def subset(names: list[str], every: int) -> list[str]:
    """One tensor in `every`: what one pipeline stage or one layer range would need."""
    return names[::every]


def checksum(arrays) -> float:
    return float(sum(np.sum(a, dtype=np.float64) for a in arrays))


def _ranges(path: str, names: list[str]):
    base, header = read_header(path)
    for name in names:
        start, end = header[name]["data_offsets"]
        yield name, base + start, end - start


def read_full(path: str, names: list[str]) -> list[np.ndarray]:
    """The naive way: read the whole file into memory, then slice out the tensors."""
    with open(path, "rb") as fh:
        blob = fh.read()
    return [np.frombuffer(blob, np.float32, n // 4, off) for _, off, n in _ranges(path, names)]


def read_partial(path: str, names: list[str]) -> list[np.ndarray]:
    """read() only the byte ranges of the wanted tensors (pread into private buffers)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return [np.frombuffer(os.pread(fd, n, off), np.float32) for _, off, n in _ranges(path, names)]
    finally:
        os.close(fd)


def mmap_view(path: str, names: list[str], advice: int | None = None) -> list[np.ndarray]:
    """Map the file; a tensor is a view, pages are faulted in when something touches them."""
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)  # the mapping outlives the descriptor
    if advice is not None:
        mm.madvise(advice)
    return [np.frombuffer(mm, np.float32, n // 4, off) for _, off, n in _ranges(path, names)]


def mmap_view_random(path: str, names: list[str]) -> list[np.ndarray]:
    """Same, with MADV_RANDOM: no read-around, the kernel reads only the pages that fault."""
    return mmap_view(path, names, advice=mmap.MADV_RANDOM)


def numpy_memmap(path: str, names: list[str]) -> list[np.ndarray]:
    return [np.memmap(path, dtype=np.float32, mode="r", offset=off, shape=(n // 4,))
            for _, off, n in _ranges(path, names)]


def safetensors_load_file(path: str, names: list[str]) -> list[np.ndarray]:
    """safetensors.numpy.load_file: every tensor, copied into numpy arrays."""
    tensors = load_file(path)
    return [tensors[name] for name in names]


def safetensors_lazy(path: str, names: list[str]) -> list[np.ndarray]:
    """safe_open + get_tensor: only the named tensors are materialised."""
    with safe_open(path, framework="numpy") as f:
        return [f.get_tensor(name) for name in names]


# name -> (loader, which tensors it loads: "all" or "subset")
METHODS = {
    "read_full": (read_full, "all"),
    "mmap_full": (mmap_view, "all"),
    "safetensors_load_file": (safetensors_load_file, "all"),
    "read_partial": (read_partial, "subset"),
    "mmap_partial": (mmap_view, "subset"),
    "mmap_partial_madv_random": (mmap_view_random, "subset"),
    "numpy_memmap_partial": (numpy_memmap, "subset"),
    "safetensors_lazy_partial": (safetensors_lazy, "subset"),
}
