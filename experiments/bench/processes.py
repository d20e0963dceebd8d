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


def torch_profiler_config(profile_dir: str | Path, engine: str) -> dict:
    """vLLM's --profiler-config of a profiled run: torch without Python stacks (on CPU stopping with
    stacks took minutes and wrote a GB); the patched engine also traces its EngineCore process
    (patch 0001b's opt-in `profile_engine_core`, a field the baseline engine refuses)."""
    config = {"profiler": "torch", "torch_profiler_dir": str(Path(profile_dir).resolve()),
              "torch_profiler_with_stack": False}
    if engine == "patched":
        config["profile_engine_core"] = True
    return config


def tree_processes(pid: int) -> list[psutil.Process]:
    """The process and all its descendants (EngineCore, workers), or [] once it is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


class PeriodicSampler:
    """Calls `_tick()` in a thread every `interval_s` while the `with` block lasts."""

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _tick(self) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._tick()
            self._stop.wait(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)


class PeakSampler(PeriodicSampler):
    """Samples a quantity of process `pid` while a run lasts and keeps its peak (`peak_bytes`)."""

    def __init__(self, pid: int, interval_s: float = 0.25):
        super().__init__(interval_s)
        self.pid = pid
        self.peak_bytes: int | None = 0

    def _sample(self) -> int:
        raise NotImplementedError

    def _tick(self) -> None:
        self.peak_bytes = max(self.peak_bytes or 0, self._sample())


class TreeMemorySampler(PeakSampler):
    """Peak resident memory (sum over a process and all its descendants)."""

    def _sample(self) -> int:
        total = 0
        for p in tree_processes(self.pid):
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total


class GpuMemorySampler(PeakSampler):
    """Peak GPU memory of a process tree through NVML (`nvidia-ml-py`, pinned for CUDA).

    `peak_bytes`: the tree's processes as NVML lists them on every GPU (what vLLM's engine
    and workers hold: weights, KV cache, activations, CUDA context). `peak_device_bytes`:
    device memory used above what was used when sampling began, for containers whose PID
    namespace hides the pids NVML reports. Both stay None without NVML (no GPU, CPU build).
    """

    def __init__(self, pid: int, interval_s: float = 0.25):
        super().__init__(pid, interval_s)
        self.peak_bytes = self.peak_device_bytes = None
        self.unavailable: str | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            self._device_base = sum(pynvml.nvmlDeviceGetMemoryInfo(h).used for h in self._handles)
        except Exception as exc:  # ImportError, NVMLError_LibraryNotFound, NVMLError_DriverNotLoaded
            self._nvml, self.unavailable = None, f"{type(exc).__name__}: {exc}"

    def _tick(self) -> None:
        if self._nvml is None:
            return
        pids = {p.pid for p in tree_processes(self.pid)}
        used = device = 0
        for h in self._handles:
            try:
                used += sum(p.usedGpuMemory or 0 for p in self._nvml.nvmlDeviceGetComputeRunningProcesses(h)
                            if p.pid in pids)
                device += self._nvml.nvmlDeviceGetMemoryInfo(h).used
            except self._nvml.NVMLError:
                continue
        self.peak_bytes = max(self.peak_bytes or 0, used)
        self.peak_device_bytes = max(self.peak_device_bytes or 0, device - self._device_base)

    def __exit__(self, *exc):
        super().__exit__(*exc)
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError:
                pass

    def result(self) -> dict:
        return {"peak_gpu_mem_bytes": self.peak_bytes, "peak_gpu_device_mem_bytes": self.peak_device_bytes,
                "gpu_mem_unavailable": self.unavailable}


class TreeCpuSampler(PeriodicSampler):
    """CPU seconds used by a process tree over its whole life: the last reading of every pid seen
    (children that exit or are killed keep their last reading), from /proc via psutil."""

    def __init__(self, pid: int, interval_s: float = 0.25):
        super().__init__(interval_s)
        self.pid = pid
        self._per_pid: dict[tuple[int, float], float] = {}

    def _tick(self) -> None:
        for p in tree_processes(self.pid):
            try:
                t = p.cpu_times()
                self._per_pid[(p.pid, p.create_time())] = t.user + t.system
            except psutil.Error:
                pass

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self._tick()  # whatever is still alive, once more

    @property
    def cpu_s(self) -> float:
        return sum(self._per_pid.values())


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by a process and its live descendants (from /proc)."""
    total = 0.0
    for p in tree_processes(pid):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def core_split(available: set[int] | None = None) -> tuple[set[int] | None, set[int] | None]:
    """(engine cores, client cores): the load client on the last core, the engine on the others,
    where the machine has at least 4; (None, None) otherwise (2 cores cannot be split usefully)."""
    cores = sorted(available if available is not None else os.sched_getaffinity(0))
    if len(cores) < 4:
        return None, None
    return set(cores[:-1]), {cores[-1]}


CORE_LAYOUTS = ("auto", "shared", "reserved")


def core_layout(layout: str = "auto", available: set[int] | None = None, ranks: int = 1) -> dict:
    """Where a serve run's processes go: {"server": cores, "client": cores, "env": server env}.

    auto: core_split (the client alone on the last core where the machine has 4 or more);
    shared: no pinning; reserved (CPU engine, one rank): the API server, EngineCore and the load
    client on the last core, which vLLM's CPU worker leaves free (its OMP binding reserves it for
    the frontend), and the model worker's OMP thread(s) bound to all the other cores. Pinning is
    applied before the server spawns EngineCore, so they inherit it; the worker rebinds itself."""
    if layout not in CORE_LAYOUTS:
        raise SystemExit(f"unknown core layout {layout!r}; one of {', '.join(CORE_LAYOUTS)}")
    if layout == "reserved" and ranks > 1:
        raise SystemExit("core layout reserved binds one worker; it needs TP = PP = DP = 1")
    cores = sorted(available if available is not None else os.sched_getaffinity(0))
    if layout == "auto":
        server, client = core_split(set(cores))
        return {"server": server, "client": client, "env": {}}
    if layout == "shared" or len(cores) < 2:
        return {"server": None, "client": None, "env": {}}
    return {"server": {cores[-1]}, "client": {cores[-1]},
            "env": {"VLLM_CPU_OMP_THREADS_BIND": ",".join(str(c) for c in cores[:-1])}}


def pin(pid: int, cores: set[int] | None) -> None:
    """Pin a just-started process (its later children inherit it); no-op without cores."""
    if cores:
        try:
            os.sched_setaffinity(pid, cores)
        except (OSError, AttributeError):
            pass


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
