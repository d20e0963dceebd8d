"""Child processes of the bench: environment per variant, memory sampling, clean kill."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil

from tools import pins


def variant_env(engine: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment that makes `import vllm` resolve to the baseline or the patched engine."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    paths = [str(pins.REPO_ROOT)]
    if engine == "patched":
        if not (pins.PATCHED_ENGINE_DIR / "vllm" / "__init__.py").exists():
            raise SystemExit("patched engine not built: run `make apply-patches` first")
        paths.insert(0, str(pins.PATCHED_ENGINE_DIR))
    elif engine != "baseline":
        raise ValueError(f"engine must be baseline or patched, got {engine!r}")
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class TreeMemorySampler:
    """Peak resident memory (sum over a process and all its descendants), sampled in a thread."""

    def __init__(self, pid: int, interval_s: float = 0.25):
        self.pid, self.interval_s = pid, interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> int:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._sample())
            self._stop.wait(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


def start(cmd: list[str], env: dict, log_path: Path) -> subprocess.Popen:
    """Start in a new session so the whole tree (EngineCore, workers) can be killed at once."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=pins.REPO_ROOT, start_new_session=True)


def kill_tree(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGTERM the process group, wait, then SIGKILL whatever is left (vLLM children included).

    `start` makes the child a session and group leader, so its group id is its pid;
    use that rather than os.getpgid, which fails once the leader has exited and been
    reaped while its EngineCore/worker children live on.
    """
    pgid = proc.pid
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.time() + wait_s
        while time.time() < deadline and _group_alive(pgid):
            proc.poll()  # reap the leader if it exited, so it does not count as alive
            time.sleep(0.1)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _group_alive(pgid: int) -> bool:
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.info["pid"]) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False
