"""b_common: every b-lab entry point answers --help (so none rots unnoticed where no GPU runs it)."""

from __future__ import annotations

import importlib

import pytest

from experiments.foundations.b_common import lab
from experiments.foundations.b_common.run_gpu_labs import LABS

ENTRY = {
    "b1_gpu_structure": "structure",
    "b2_warp_divergence": "divergence",
    "b3_memory_bandwidth_coalescing": "bandwidth",
    "b4_streams_async_copy": "streams",
    "b5_launch_overhead_trace": "trace",
}


@pytest.mark.parametrize("name", LABS)
def test_help(name, capsys):
    mod = importlib.import_module(f"experiments.foundations.{name}.{ENTRY[name]}")
    with pytest.raises(SystemExit) as exc:
        mod.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--quick" in out and "--gpu" in out


def test_runner_help():
    from experiments.foundations.b_common import run_gpu_labs

    with pytest.raises(SystemExit) as exc:
        run_gpu_labs.main(["--help"])
    assert exc.value.code == 0


def test_fmt():
    assert lab.fmt(1234) == "1,234" and lab.fmt(0.012345) == "0.0123" and lab.fmt(None) == "n/a"


@pytest.mark.slow
def test_gpu_dry_run_imports_every_gpu_half():
    """`make gpu-labs --dry-run` runs this: each GPU half imports, has its entry point, and runs or skips."""
    from experiments.foundations.b_common import run_gpu_labs

    assert run_gpu_labs.main(["--dry-run", "--labs", "b1_gpu_structure"]) == 0


def test_nvvm_check_is_part_of_the_numba_skip():
    from experiments.foundations.b_common import cuda_env

    reason = cuda_env.numba_cuda_skip_reason()
    if cuda_env.torch_cuda_skip_reason() is None and reason is None:
        assert cuda_env.nvvm_skip_reason() is None
    else:
        assert isinstance(reason, str) and reason
