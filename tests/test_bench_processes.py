"""Engine runs leave nothing behind: the whole process group dies, even after its leader exited."""
from __future__ import annotations

import sys
import time

import psutil

from experiments.bench import processes

# The leader starts a grandchild (like vLLM's EngineCore/worker) and exits at once.
LEADER = ("import subprocess, sys, time; "
          "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
          "print(p.pid, flush=True)")


def test_kill_tree_reaps_children_of_an_exited_leader(tmp_path):
    log = tmp_path / "log"
    proc = processes.start([sys.executable, "-c", LEADER], processes.variant_env("baseline"), log)
    proc.wait(timeout=30)
    deadline = time.time() + 10
    while not log.read_text().strip() and time.time() < deadline:
        time.sleep(0.1)
    child = int(log.read_text().split()[0])
    assert psutil.pid_exists(child)
    processes.kill_tree(proc, grace_s=2)
    time.sleep(0.5)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


def test_memory_sampler_sees_the_process_tree():
    proc = processes.start([sys.executable, "-c", "import time; x = bytearray(200 << 20); time.sleep(3)"],
                           processes.variant_env("baseline"), __import__("pathlib").Path("/dev/null"))
    with processes.TreeMemorySampler(proc.pid, interval_s=0.1) as mem:
        time.sleep(2)
    processes.kill_tree(proc, grace_s=1)
    assert mem.peak_bytes > 200 << 20
