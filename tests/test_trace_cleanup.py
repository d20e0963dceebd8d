"""make trace leaves nothing running: timeouts, orphans of an `os._exit`, and (with nsys) its agents.

The cleanup is tested with plain Python programs standing in for `nsys profile ...` (it is the
same code path: run_profiled starts any command); the last test runs real nsys when installed.
"""
from __future__ import annotations

import os
import shutil
import sys
import textwrap
import time

import psutil
import pytest

from experiments.trace import nsys_run

# Writes the "result", leaves a child that would live 5 minutes, and ends like engine_offline.
ORPHAN_MAKER = textwrap.dedent("""
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    open(sys.argv[1] + ".pid", "w").write(str(child.pid))
    time.sleep(1.0)  # let the watch see the child
    open(sys.argv[1], "w").write("done")
    os._exit(0)
""")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_a_hung_run_is_ended_at_its_timeout(tmp_path):
    t0 = time.time()
    ran = nsys_run.run_profiled([sys.executable, "-c", "import time; time.sleep(120)"], dict(os.environ), tmp_path / "log",
                                timeout_s=2)
    assert ran["timed_out"] and ran["rc"] is None and time.time() - t0 < 30 and ran["left_running"] == []


def test_orphans_left_by_os_exit_are_ended(tmp_path):
    done = tmp_path / "result.json"
    # A wrapper that waits for all descendants, as nsys does (--wait=all): without the straggler
    # step it would sit for the child's 300 s and hit the timeout.
    wrapper = textwrap.dedent(f"""
        import subprocess, sys, os
        p = subprocess.Popen([sys.executable, "-c", {ORPHAN_MAKER!r}, {str(done)!r}])
        p.wait()
        while True:
            try:
                os.wait()
            except ChildProcessError:
                break
        import time
        pid = int(open({str(done)!r} + ".pid").read())
        while os.path.exists(f"/proc/{{pid}}") and open(f"/proc/{{pid}}/stat").read().split()[2] != "Z":
            time.sleep(0.2)
        sys.exit(p.returncode)
    """)
    t0 = time.time()
    ran = nsys_run.run_profiled([sys.executable, "-c", wrapper], dict(os.environ), tmp_path / "log", timeout_s=60,
                                done_file=done, straggler_grace_s=1)
    child = int((tmp_path / "result.json.pid").read_text())
    assert not ran["timed_out"], (tmp_path / "log").read_text()
    assert child in ran["stragglers_ended"] and not _alive(child) and ran["left_running"] == []
    assert time.time() - t0 < 40


@pytest.mark.skipif(shutil.which("nsys") is None,
                    reason="nsys not installed (`make nsys` installs Debian's nsight-systems as root)")
def test_real_nsys_run_leaves_no_process(tmp_path):
    """Skipped while another nsys session runs on this machine: 2022.4 fails to start a second."""
    done = tmp_path / "result.json"
    prog = tmp_path / "prog.py"
    prog.write_text(ORPHAN_MAKER)
    t0 = time.time()
    ran = nsys_run.run_profiled(["nsys", "profile", "--force-overwrite=true", "-o", str(tmp_path / "r"),
                                 "--trace=osrt", "--sample=none", "--cpuctxsw=none", sys.executable, str(prog),
                                 str(done)], dict(os.environ), tmp_path / "log", timeout_s=120, done_file=done,
                                straggler_grace_s=2)
    assert not ran["timed_out"], (tmp_path / "log").read_text()[-2000:]
    assert not nsys_run.nsys_processes(owner_pid=ran["pid"])  # its agents (`--session-name=...-<pid>`)
    assert not nsys_run.psutil.pid_exists(ran["pid"]) or not _alive(ran["pid"])
    assert not _alive(int((tmp_path / "result.json.pid").read_text()))
