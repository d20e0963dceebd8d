"""Per-core CPU utilisation sampled in a background thread while a workload runs."""
from __future__ import annotations

import threading
import time

import psutil


class CpuSampler:
    """Samples psutil.cpu_percent(percpu=True) every `interval_s` seconds.

    System-wide numbers: other users of the machine show up too, which is why
    the labs also report their own process tree's CPU seconds per wall second.
    """

    def __init__(self, interval_s: float = 0.1):
        self.interval_s = interval_s
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._t0 = 0.0

    def _run(self) -> None:
        psutil.cpu_percent(percpu=True)  # primes the counters; the first call returns zeros
        while not self._stop.wait(self.interval_s):
            self.samples.append({"t_s": time.perf_counter() - self._t0,
                                 "percpu": psutil.cpu_percent(percpu=True)})

    def __enter__(self) -> "CpuSampler":
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def mean_per_core(self) -> list[float]:
        if not self.samples:
            return []
        ncores = len(self.samples[0]["percpu"])
        return [sum(s["percpu"][i] for s in self.samples) / len(self.samples) for i in range(ncores)]


def tree_cpu_seconds(proc: psutil.Process | None = None) -> float:
    """User+system CPU seconds of a process and its live children (pool workers)."""
    proc = proc or psutil.Process()
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total
