"""What the kernel says about a process and a file: page faults, I/O bytes, resident memory, page cache.

Linux-only (/proc and mincore); the lab says so and stops elsewhere.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import resource

PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]


def page_cache_fraction(path: str) -> float:
    """Fraction of the file's pages in the page cache (mincore on a mapping that touches nothing)."""
    size = os.path.getsize(path)
    if size == 0:
        return 0.0
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        try:
            npages = (size + PAGE - 1) // PAGE
            vec = (ctypes.c_ubyte * npages)()
            if _libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
            return sum(b & 1 for b in vec) / npages
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


def drop_from_page_cache(path: str) -> float:
    """Ask the kernel to evict the file's clean pages; return the fraction still cached after."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return page_cache_fraction(path)


def warm_page_cache(path: str) -> float:
    buf = bytearray(1 << 20)  # one small reused buffer: no large allocation left behind
    with open(path, "rb", buffering=0) as fh:
        while fh.readinto(buf):
            pass
    return page_cache_fraction(path)


def _proc_kv(path: str) -> dict[str, int]:
    out = {}
    with open(path) as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                out[key.strip()] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return out


def snapshot() -> dict[str, int]:
    """Counters of the calling process; subtract two snapshots to get what happened between them."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    io = _proc_kv("/proc/self/io")
    status = _proc_kv("/proc/self/status")
    return {
        "minor_faults": ru.ru_minflt, "major_faults": ru.ru_majflt,
        "read_bytes": io.get("read_bytes", 0),   # bytes fetched from the block device
        "rchar": io.get("rchar", 0),              # bytes returned by read()-family syscalls
        "rss_anon": status.get("RssAnon", 0),     # private memory (a read() copy lives here)
        "rss_file": status.get("RssFile", 0),     # file pages mapped into us (shared page cache)
    }


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in before}


def smaps_rollup() -> dict[str, int]:
    """Rss / Pss (proportional share: a page mapped by two processes counts half to each)."""
    return _proc_kv("/proc/self/smaps_rollup")


def read_ahead_kb(path: str) -> int | None:
    """The block device's read-ahead window: why the kernel reads more than a loader asked for."""
    dev = os.stat(path).st_dev
    sysfs = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"
    for candidate in (f"{sysfs}/queue/read_ahead_kb", f"{sysfs}/../queue/read_ahead_kb", f"{sysfs}/bdi/read_ahead_kb"):
        try:
            with open(candidate) as fh:
                return int(fh.read())
        except OSError:
            continue
    return None
