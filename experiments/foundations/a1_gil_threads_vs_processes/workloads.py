"""The units of work, each sized to take roughly 0.1 s on one core of the lab machine.

Module-level functions so a spawned worker process can import and run them.
"""
from __future__ import annotations

import hashlib
import time

import numpy as np

_HASH_BUF = b"\x5a" * (1 << 20)  # 1 MiB: hashlib releases the GIL for inputs over 2047 bytes


def python_loop(scale: float) -> int:
    """Pure-Python arithmetic: every bytecode needs the GIL."""
    s = 0
    for i in range(int(1_500_000 * scale)):
        s += i * i
    return s


def sha256_hashlib(scale: float) -> str:
    """C code that drops the GIL while it hashes."""
    h = hashlib.sha256()
    for _ in range(int(192 * scale)):
        h.update(_HASH_BUF)
    return h.hexdigest()


def numpy_exp(scale: float) -> float:
    """A numpy ufunc over 1M doubles: the inner loop runs without the GIL."""
    a = np.linspace(0.0, 1.0, 1 << 20)
    out = np.empty_like(a)
    for _ in range(int(64 * scale)):
        np.exp(a, out=out)
    return float(out[-1])


def io_wait(scale: float) -> float:
    """Stands for waiting on a socket, disk or GPU: the thread sleeps, the GIL is free."""
    time.sleep(0.1 * scale)
    return 0.1 * scale


WORKLOADS = {
    "python_loop": python_loop,
    "sha256_hashlib": sha256_hashlib,
    "numpy_exp": numpy_exp,
    "io_wait": io_wait,
}
# Which workloads hold the GIL while they run (used by the README's prediction and tests).
HOLDS_GIL = {"python_loop": True, "sha256_hashlib": False, "numpy_exp": False, "io_wait": False}


def warm_up_worker(_: int) -> int:
    """Forces a pool worker to exist (and import this module) before timing starts."""
    time.sleep(0.05)
    return 0
