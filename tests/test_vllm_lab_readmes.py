"""c1-c3 READMEs equal a render of their committed result files (c4, c5 and patch 0002 test their own).

Rendering goes to a temporary copy of each README; the committed files are not touched. A failure
means a figure was edited by hand, or a result changed without
`python -m experiments.vllm.<lab> --render-only`.
"""
from __future__ import annotations

import importlib
import shutil

import pytest

from experiments.common.results import read_result
from tools import pins

LABS = {  # lab -> result files render_readme takes after the doc (paths relative to the lab)
    "c1_prefill_decode_batching": ["results/prefill_decode_cpu.json"],
    "c2_paged_kv_cache": ["results/paged_kv_cpu.json", "results/paged_kv_trace_cpu.json"],
    "c3_mixed_scheduling": ["results/mixed_scheduling_cpu.json"],
}


@pytest.mark.parametrize("name", sorted(LABS))
def test_readme_is_rendered_from_the_committed_results(name, tmp_path):
    report = importlib.import_module(f"experiments.vllm.{name}.report")
    lab_dir = pins.REPO_ROOT / "experiments" / "vllm" / name
    files = [lab_dir / f for f in LABS[name]]
    readme = tmp_path / "README.md"
    shutil.copy(lab_dir / "README.md", readme)
    report.render_readme(read_result(files[0]), readme, *(str(f.relative_to(pins.REPO_ROOT)) for f in files))
    assert readme.read_text() == (lab_dir / "README.md").read_text(), (
        f"experiments/vllm/{name}/README.md is stale or hand-edited: "
        f"run python -m experiments.vllm.{name} --render-only")
