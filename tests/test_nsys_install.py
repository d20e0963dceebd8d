"""make nsys is a fast no-op where Nsight Systems is already installed (CI runs it before make test)."""
from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from tools import pins

SCRIPT = pins.REPO_ROOT / "tools" / "install_nsys.sh"


@pytest.mark.skipif(shutil.which("nsys") is None, reason="nsys not installed (`make nsys` installs it as root)")
def test_make_nsys_is_a_fast_no_op_when_present():
    t0 = time.time()
    r = subprocess.run(["make", "--no-print-directory", "nsys"], cwd=pins.REPO_ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("[nsys] present: NVIDIA Nsight Systems version")
    assert time.time() - t0 < 5


def test_without_root_it_says_how_to_get_nsys(tmp_path):
    """Run the script as if nsys were absent and we were not root: it must explain, not fail silently."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "id").write_text("#!/bin/sh\necho 1000\n")
    (fake_bin / "id").chmod(0o755)
    (fake_bin / "cat").symlink_to(shutil.which("cat"))  # no nsys, apt or sudo on this PATH
    r = subprocess.run(["/bin/bash", str(SCRIPT)], env={"PATH": str(fake_bin)}, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 3
    assert "not root" in r.stderr and "CUDA repository" in r.stderr and "nsys tests skip" in r.stderr


@pytest.mark.parametrize("target", ["bench", "trace"])
def test_bench_and_trace_install_nsys_first_and_never_fail_on_it(target):
    """`make bench` / `make trace` run the installer as a set-up step; its failure only says so."""
    r = subprocess.run(["make", "--no-print-directory", "-n", target], cwd=pins.REPO_ROOT, capture_output=True,
                       text=True, timeout=60)
    lines = r.stdout.splitlines()
    setup = next(i for i, ln in enumerate(lines) if ln.startswith("bash tools/install_nsys.sh ||"))
    assert "continuing without Nsight Systems" in lines[setup]
    assert setup < next(i for i, ln in enumerate(lines) if "-m experiments." in ln)
    r = subprocess.run(["make", "--no-print-directory", "-n", target, "NO_NSYS=1"], cwd=pins.REPO_ROOT,
                       capture_output=True, text=True, timeout=60)
    assert "install_nsys.sh" not in r.stdout
