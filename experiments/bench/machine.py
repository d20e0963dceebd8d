"""How busy the machine is, from /proc/stat: before a bench (refuse or flag) and during each run.

A shared or virtual machine moves wall-clock figures by more than the changes the bench looks
for. The bench records, per run, the CPU share the whole machine was busy and the share stolen
by the hypervisor (`steal`), next to the load average, and refuses to start when other processes
already keep the CPUs busy (or flags the bench with --allow-busy).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

PROC_STAT = Path("/proc/stat")
# Refuse when others keep more than this share of all CPUs busy before the bench starts.
BUSY_SHARE_LIMIT = 0.25


@dataclass(frozen=True)
class CpuTimes:
    """Aggregate jiffies of the `cpu` line of /proc/stat."""
    busy: int
    idle: int
    steal: int

    @property
    def total(self) -> int:
        return self.busy + self.idle + self.steal


def read_cpu_times(stat_text: str | None = None) -> CpuTimes:
    text = PROC_STAT.read_text() if stat_text is None else stat_text
    line = next(ln for ln in text.splitlines() if ln.startswith("cpu "))
    f = [int(x) for x in line.split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: already inside user/nice]
    user, nice, system, idle, iowait, irq, softirq = f[:7]
    steal = f[7] if len(f) > 7 else 0
    return CpuTimes(busy=user + nice + system + irq + softirq, idle=idle + iowait, steal=steal)


CLK_TCK = os.sysconf("SC_CLK_TCK")


def usage_between(a: CpuTimes, b: CpuTimes) -> dict:
    """Shares of all CPUs' time between two snapshots: busy (incl. our own processes) and stolen."""
    total = b.total - a.total
    if total <= 0:
        return {"busy_share": None, "steal_share": None, "busy_cpu_s": 0.0, "cpu_s_available": 0.0}
    return {"busy_share": (b.busy - a.busy) / total, "steal_share": (b.steal - a.steal) / total,
            "busy_cpu_s": (b.busy - a.busy) / CLK_TCK, "cpu_s_available": total / CLK_TCK}


def others_share(load: dict, own_cpu_s: float | None) -> float | None:
    """Share of all CPUs' time that processes other than the run's own (engine, client) used."""
    if own_cpu_s is None or not load.get("cpu_s_available"):
        return None
    return max(0.0, load["busy_cpu_s"] - own_cpu_s) / load["cpu_s_available"]


class RunLoad:
    """Context manager: machine busy/steal shares and load average over one engine run."""

    def __enter__(self):
        self.start, self.t0 = read_cpu_times(), time.time()
        self.loadavg_start = os.getloadavg()[0]
        return self

    def __exit__(self, *exc):
        self.result = {**usage_between(self.start, read_cpu_times()), "loadavg_1m_start": self.loadavg_start,
                       "loadavg_1m_end": os.getloadavg()[0], "wall_s": time.time() - self.t0}


def sample_idle_machine(seconds: float = 3.0) -> dict:
    """Before any engine starts, everything busy is someone else's work."""
    a = read_cpu_times()
    time.sleep(seconds)
    return {**usage_between(a, read_cpu_times()), "loadavg_1m": os.getloadavg()[0],
            "cpu_count": os.cpu_count(), "sample_s": seconds}


def check_quiet(sample: dict, allow_busy: bool, limit: float = BUSY_SHARE_LIMIT) -> bool:
    """True when the machine is busy. Refuses (SystemExit) unless allow_busy."""
    busy = (sample["busy_share"] or 0) + (sample["steal_share"] or 0)
    if busy <= limit:
        return False
    msg = (f"machine busy before the bench: {busy:.0%} of {sample['cpu_count']} CPUs in use by other "
           f"processes over {sample['sample_s']:.0f} s (steal {sample['steal_share'] or 0:.0%}, load average "
           f"{sample['loadavg_1m']:.2f}); limit {limit:.0%}.")
    if not allow_busy:
        raise SystemExit(msg + " Re-run on a quiet machine, or pass --allow-busy (BENCH_ARGS=--allow-busy) "
                               "to measure anyway: the result is then marked busy.")
    print(f"[bench] WARNING: {msg} Measuring anyway (--allow-busy); the manifest marks it busy.", flush=True)
    return True
