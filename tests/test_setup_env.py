"""tools/setup_env.sh: Python and NVIDIA driver checks (faked), and the CUDA set resolving with pip.

The fast tests never reach pip: each stops at a check that fails first. The slow ones resolve
the real requirement sets against PyPI with `pip install --dry-run --report` (metadata only,
nothing installed; about a minute).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools import pins

SCRIPT = pins.REPO_ROOT / "tools" / "setup_env.sh"


def fake_nvidia_smi(bin_dir: Path, cuda: str, driver: str) -> Path:
    """An nvidia-smi that prints the header line the real one prints, and the driver query."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"""#!/bin/sh
case "$1" in
  -L) echo "GPU 0: NVIDIA H200 (UUID: GPU-fake)";;
  --query-gpu=driver_version) echo "{driver}";;
  *) echo "| NVIDIA-SMI {driver}    Driver Version: {driver}    CUDA Version: {cuda}     |";;
esac
""")
    smi.chmod(0o755)
    return smi


def run_setup(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "VENV": str(tmp_path / "no-venv"), **env}
    return subprocess.run(["bash", str(SCRIPT), *args], env=full_env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("cuda,driver", [("12.4", "550.54.15"), ("12.9", "575.57.08")])
def test_cuda12_driver_refused_with_vllms_cuda12_route(tmp_path, cuda, driver):
    smi = fake_nvidia_smi(tmp_path / "bin", cuda, driver)
    res = run_setup(tmp_path, NVIDIA_SMI=str(smi), PYTHON=sys.executable)  # BACKEND auto-detected
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"supports CUDA {cuda}" in res.stderr and "R580" in res.stderr
    if cuda == "12.9":
        assert (f"releases/download/v{pins.VLLM_VERSION}/vllm-{pins.VLLM_VERSION}+cu129-cp38-abi3-"
                in res.stderr)
        assert "https://download.pytorch.org/whl/cu129" in res.stderr
    else:
        assert "too old" in res.stderr
    assert not (tmp_path / "no-venv").exists()  # refused before creating anything


def test_old_python_refused(tmp_path):
    fake_py = tmp_path / "python3.10"
    fake_py.write_text('#!/bin/sh\ncase "$2" in *print*) echo 3.10;; *) exit 1;; esac\n')
    fake_py.chmod(0o755)
    res = run_setup(tmp_path, PYTHON=str(fake_py), BACKEND="cpu")
    assert res.returncode == 1
    assert "Python >= 3.11 is required" in res.stderr and "Python 3.10" in res.stderr


def test_missing_driver_refused_unless_dry_run(tmp_path):
    res = run_setup(tmp_path, BACKEND="cuda", NVIDIA_SMI=str(tmp_path / "absent"), PYTHON=sys.executable)
    assert res.returncode == 1 and "not found" in res.stderr and "R580" in res.stderr


def test_bad_backend_refused(tmp_path):
    res = run_setup(tmp_path, BACKEND="rocm", PYTHON=sys.executable)
    assert res.returncode == 1 and "BACKEND must be cpu or cuda, got 'rocm'" in res.stderr


def test_cuda_requirements_pin_what_the_cuda_wheel_requires():
    """vllm==0.32.0 (CUDA) requires nvtx==0.2.15; the CPU set keeps 0.2.10 for Debian's nsys."""
    cuda = (pins.REPO_ROOT / "requirements" / "engine-cuda.txt").read_text()
    cpu = (pins.REPO_ROOT / "requirements" / "engine-cpu.txt").read_text()
    common = (pins.REPO_ROOT / "requirements" / "common.txt").read_text()
    assert "nvtx==0.2.15" in cuda and "nvtx==0.2.10" in cpu and "nvtx" not in common
    assert f"vllm=={pins.VLLM_VERSION}" in cuda and "nvidia-ml-py==" in cuda
    # b2/b3's numba kernels: numba-cuda plus libNVVM (the driver does not ship it), CUDA set only
    assert "numba-cuda==" in cuda and "nvidia-nvvm==" in cuda and "numba-cuda" not in cpu + common


@pytest.mark.slow
def test_dry_run_resolves_the_cuda_set_on_a_cuda13_driver(tmp_path):
    """What `make setup BACKEND=cuda DRY_RUN=1` does, with the driver auto-detected (faked R580)."""
    smi = fake_nvidia_smi(tmp_path / "bin", "13.0", "580.65.06")
    report = tmp_path / "report.json"
    venv_mtime = (pins.REPO_ROOT / ".venv" / "lib").stat().st_mtime
    res = run_setup(tmp_path, "--dry-run", NVIDIA_SMI=str(smi), VENV=str(pins.REPO_ROOT / ".venv"),
                    DRY_RUN_REPORT=str(report))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "supports CUDA 13.0" in res.stdout and "dry run OK" in res.stdout
    assert f"vllm=={pins.VLLM_VERSION}" in res.stdout and "nvtx==0.2.15" in res.stdout
    import json

    got = {i["metadata"]["name"].lower(): i["metadata"]["version"]
           for i in json.loads(report.read_text())["install"]}
    assert got["vllm"] == pins.VLLM_VERSION and "+cpu" not in got["torch"]  # the public CUDA torch
    assert "numba-cuda" in got and got["nvidia-nvvm"].startswith("13.0.")  # libNVVM of torch's CUDA line
    assert (pins.REPO_ROOT / ".venv" / "lib").stat().st_mtime == venv_mtime  # nothing installed


def test_dry_run_fails_on_a_conflict(tmp_path):
    """The bug this catches: nvtx==0.2.16 pinned for every backend (common.txt) while the CUDA set
    wants 0.2.15. The set here is only those two pins, so pip fails on them at once instead of
    resolving vLLM's whole tree again (the slow test above does that for the real set)."""
    reqs = tmp_path / "requirements"
    reqs.mkdir()
    (reqs / "engine-cuda.txt").write_text("nvtx==0.2.15\n")
    (reqs / "common.txt").write_text("nvtx==0.2.16\n")
    (reqs / "labs-none.txt").write_text("")
    (tmp_path / "tools").mkdir()
    shutil.copy(SCRIPT, tmp_path / "tools" / "setup_env.sh")
    shutil.copy(pins.REPO_ROOT / "tools" / "pins.py", tmp_path / "tools" / "pins.py")
    res = subprocess.run(["bash", str(tmp_path / "tools" / "setup_env.sh"), "--dry-run"],
                         env={**os.environ, "BACKEND": "cuda", "VENV": str(pins.REPO_ROOT / ".venv"),
                              "NVIDIA_SMI": str(tmp_path / "absent")},
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "does not resolve" in res.stderr and "nvtx" in res.stderr
