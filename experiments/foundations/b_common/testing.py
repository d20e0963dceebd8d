"""Test helpers shared by the b-lab tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pytest

from experiments.common.docs import find_blocks
from experiments.common.lab import LabFiles, quick_args


def assert_readme_matches_results(
    render: Callable[[LabFiles], dict], lab_dir: Path, tmp_path: Path
) -> None:
    """Every generated README block equals what render() makes from the committed result files.

    Plots are redrawn into tmp_path, so the committed ones are not touched. A
    failure means a README number was edited by hand or a result changed
    without `--render-only`.
    """
    src = Path(lab_dir) / "results"
    if src.exists():
        shutil.copytree(src, tmp_path / "results")
    files = LabFiles(lab_dir, tmp_path)
    committed = find_blocks(files.readme.read_text())
    for name, body in render(files).items():
        assert committed.get(name, "").strip() == body.strip(), (
            f"{files.readme}: block {name!r} is stale; run python -m {files.module} --render-only"
        )


def run_gpu_half(run_gpu: Callable, lab_dir: Path, tmp_path: Path, skip_reason: Callable[[], str | None]) -> LabFiles:
    """Run a lab's GPU half (--quick) into tmp_path, or skip the test with the reason it cannot run here."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    files = LabFiles(lab_dir, tmp_path)
    assert run_gpu(files, quick_args())
    return files
