"""Run a program under `nsys profile` and leave nothing running; import, export and check the report.

- The profiled command starts in its own session; every process that appears below it is
  remembered while it runs (a snapshot thread), because vLLM's EngineCore can outlive the
  frontend (`engine_offline` ends with `os._exit`) and nsys can start agents outside the group.
  Afterwards the group gets SIGTERM then SIGKILL, and any remembered descendant or nsys process
  started during the run that is still alive is killed by pid.
- Debian's nsys 2022.4 cannot find its importer and leaves `<base>.qdstrm`; QdstrmImporter
  (host directory) turns it into `<base>.nsys-rep`.
- A report is only called good when its SQLite export has NVTX ranges (`nsys_sqlite.nvtx_range_count`).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import psutil

from analysis import nsys_sqlite
from experiments.bench import processes

IMPORTER_CANDIDATES = ("/usr/lib/nsight-systems/host-linux-x64/QdstrmImporter",
                       "/opt/nvidia/nsight-systems/*/host-linux-x64/QdstrmImporter")


class TraceError(RuntimeError):
    """A trace step failed; the message names the step and the cause."""


def find_importer() -> Path | None:
    found = shutil.which("QdstrmImporter")
    if found:
        return Path(found)
    for pattern in IMPORTER_CANDIDATES:
        hits = sorted(Path("/").glob(pattern.lstrip("/")))
        if hits:
            return hits[-1]
    nsys = shutil.which("nsys")
    if nsys:  # a toolkit layout: <root>/bin/nsys or <root>/target-linux-x64/nsys next to host-linux-x64/
        for root in (Path(os.path.realpath(nsys)).parent.parent, Path(nsys).parent.parent):
            cand = root / "host-linux-x64" / "QdstrmImporter"
            if cand.exists():
                return cand
    return None


def is_nsys_process(p: psutil.Process) -> bool:
    """nsys CLI, its helpers (`nsys-launcher`, `nsys-tee`) and agents (`nsys --start-agent`), by
    executable name or path."""
    try:
        cmd = p.cmdline()
        exe = cmd[0] if cmd else p.name()
    except psutil.Error:
        return False
    base = os.path.basename(exe)
    return base.startswith("nsys") or base == "QdstrmImporter" or "nsight-systems" in exe


def nsys_processes(owner_pid: int | None = None) -> list[psutil.Process]:
    """Live nsys processes; with `owner_pid`, only the agents of that `nsys profile` (their
    `--session-name=profile-<program>-<owner_pid>`), so another user's nsys is never touched."""
    out = []
    for p in psutil.process_iter():
        try:
            if p.status() == psutil.STATUS_ZOMBIE or not is_nsys_process(p):
                continue
            if owner_pid is None or any(a.startswith("--session-name=") and a.endswith(f"-{owner_pid}")
                                        for a in p.cmdline()):
                out.append(p)
        except psutil.Error:
            continue
    return out


class _DescendantWatch(processes.TreeMemorySampler):
    """Remembers (pid, create_time) of every process below `root` while the run lasts
    (the bench's process-tree sampler, sampling pids instead of memory)."""

    def __init__(self, root: int, interval_s: float = 0.5):
        super().__init__(root, interval_s)
        self.seen: dict[int, float] = {}

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for c in psutil.Process(self.pid).children(recursive=True):
                    self.seen.setdefault(c.pid, c.create_time())
            except psutil.Error:
                pass
            self._stop.wait(self.interval_s)

    def survivors(self) -> list[psutil.Process]:
        alive = []
        for pid, created in self.seen.items():
            try:
                p = psutil.Process(pid)
                if abs(p.create_time() - created) < 1e-3 and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.Error:
                continue
        return alive


def kill_processes(procs: list[psutil.Process], grace_s: float = 5.0) -> list[int]:
    """SIGTERM, wait, SIGKILL: each process by its pid. Returns the pids signalled."""
    pids = []
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
            pids.append(p.pid)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)
    return pids


SESSION_LOCK = Path(tempfile.gettempdir()) / "llm-infra-nsys.lock"
# What nsys 2022.4 prints when a second profiling session starts while one runs (seen here).
CONCURRENT_SESSION_ERROR = "[boost::errinfo_api_function_*] = sem_open"


@contextlib.contextmanager
def session_lock(timeout_s: float) -> Iterator[None]:
    """One nsys session at a time on this machine: a second one that starts while another runs
    fails in `sem_open` (seen with 2022.4 when two engineers' runs overlapped)."""
    with open(SESSION_LOCK, "a") as fh:
        deadline = time.time() + timeout_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.time() > deadline:
                    raise TraceError(f"another nsys session held {SESSION_LOCK} for {timeout_s:.0f} s")
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_profiled(cmd: list[str], env: dict, log_path: Path, *, timeout_s: float,
                 done_file: Path | None = None, straggler_grace_s: float = 15.0,
                 lock_timeout_s: float = 900.0) -> dict:
    """`run_once` under the machine-wide nsys session lock, retried once when nsys still hit
    another session's semaphore (a session started outside this lock)."""
    with session_lock(lock_timeout_s):
        ran = run_once(cmd, env, log_path, timeout_s=timeout_s, done_file=done_file,
                       straggler_grace_s=straggler_grace_s)
        if ran["rc"] not in (0, None) and CONCURRENT_SESSION_ERROR in log_path.read_text(errors="replace"):
            time.sleep(5)
            ran = run_once(cmd, env, log_path, timeout_s=timeout_s, done_file=done_file,
                           straggler_grace_s=straggler_grace_s)
    return ran


def run_once(cmd: list[str], env: dict, log_path: Path, *, timeout_s: float,
             done_file: Path | None = None, straggler_grace_s: float = 15.0) -> dict:
    """Run `cmd` (an `nsys profile ...` line) to completion or timeout; nothing it started survives.

    nsys waits for every process its target started, and a program that ends with `os._exit`
    (the bench's `engine_offline`) leaves some behind (multiprocessing's resource tracker, an
    EngineCore that has not noticed yet): nsys then waits forever. So once `done_file` exists
    (the program's result is on disk), the program's own processes still alive after
    `straggler_grace_s` get SIGTERM by pid, and nsys finishes writing its report.
    Leftovers are processes seen below the command while it ran, and agents of this nsys
    (`nsys_processes(owner_pid)`): nsys started elsewhere is not touched.
    Returns {pid, rc, wall_s, timed_out, stragglers_ended, killed_pids, left_running}; left_running
    (what is still alive after SIGKILL, expected empty) and rc are for the caller to judge.
    """
    t0 = time.time()
    proc = processes.start(cmd, env, log_path)
    timed_out, rc, done_at, stragglers = False, None, None, []
    watch = _DescendantWatch(proc.pid).__enter__()
    try:
        while True:
            try:
                rc = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.time()
            if now - t0 > timeout_s:
                timed_out = True
                break
            if done_file is not None and done_at is None and done_file.exists():
                done_at = now
            if done_at is not None and not stragglers and now - done_at > straggler_grace_s:
                app = [p for p in watch.survivors() if not is_nsys_process(p)]
                stragglers = kill_processes(app)
    finally:
        processes.kill_tree(proc, grace_s=10)
        watch.__exit__(None, None, None)
        leftovers = {p.pid: p for p in watch.survivors() + nsys_processes(owner_pid=proc.pid)}
        killed = kill_processes(list(leftovers.values())) if leftovers else []
        left = sorted({p.pid for p in watch.survivors() + nsys_processes(owner_pid=proc.pid)})
    return {"pid": proc.pid, "rc": rc, "wall_s": time.time() - t0, "timed_out": timed_out,
            "stragglers_ended": stragglers, "killed_pids": killed, "left_running": left}


def _run_tool(cmd: list[str], log_path: Path, timeout_s: float, step: str) -> None:
    with open(log_path, "ab") as log:
        try:
            r = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               timeout=timeout_s, start_new_session=True)
        except subprocess.TimeoutExpired as exc:
            raise TraceError(f"{step} timed out after {timeout_s:.0f} s: {' '.join(cmd)}") from exc
    if r.returncode != 0:
        tail = log_path.read_text(errors="replace")[-1500:]
        raise TraceError(f"{step} failed (rc={r.returncode}): {' '.join(cmd)}\n{tail}")


def import_report(base: Path, log_path: Path, *, timeout_s: float = 600) -> Path:
    """`<base>.nsys-rep`, importing `<base>.qdstrm` with QdstrmImporter when nsys could not.

    The .qdstrm (raw stream, several times larger) is removed once the import succeeded.
    """
    rep, qdstrm = base.with_name(base.name + ".nsys-rep"), base.with_name(base.name + ".qdstrm")
    if rep.exists():
        qdstrm.unlink(missing_ok=True)
        return rep
    if not qdstrm.exists():
        raise TraceError(f"nsys wrote neither {rep.name} nor {qdstrm.name} (see {log_path})")
    importer = find_importer()
    if importer is None:
        raise TraceError(f"{qdstrm.name} needs QdstrmImporter, which is not installed (run `make nsys`)")
    _run_tool([str(importer), "-i", str(qdstrm)], log_path, timeout_s, "QdstrmImporter")
    if not rep.exists():
        raise TraceError(f"QdstrmImporter ran but wrote no {rep.name} (see {log_path})")
    qdstrm.unlink()
    return rep


def export_sqlite(rep: Path, log_path: Path, *, timeout_s: float = 600, nsys: str = "nsys") -> Path:
    out = rep.with_suffix(".sqlite")
    _run_tool([nsys, "export", "--type", "sqlite", "--force-overwrite", "true", "-o", str(out), str(rep)],
              log_path, timeout_s, "nsys export")
    if not out.exists():
        raise TraceError(f"nsys export wrote no {out.name} (see {log_path})")
    return out


def check_nvtx(sqlite: Path) -> int:
    """Number of NVTX ranges; raises when there are none (a generated report is not proof)."""
    n = nsys_sqlite.nvtx_range_count(sqlite)
    if n == 0:
        raise TraceError(f"{sqlite.name} has no NVTX ranges: nothing was captured (nvtx package newer than "
                         "0.2.10 with nsys 2022.4? VLLM_NVTX_SCOPES_FOR_PROFILING unset?)")
    return n
