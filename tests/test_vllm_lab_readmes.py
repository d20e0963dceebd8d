"""c1-c5 READMEs equal a render of their committed result files (patch 0002 tests its own).

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

LABS = {  # lab -> (module.function that renders the README, result files it takes after the doc)
    "c1_prefill_decode_batching": ("report.render_readme", ["results/prefill_decode_cpu.json"]),
    "c2_paged_kv_cache": ("report.render_readme", ["results/paged_kv_cpu.json", "results/paged_kv_trace_cpu.json"]),
    "c3_mixed_scheduling": ("report.render_readme", ["results/mixed_scheduling_cpu.json"]),
    "c3_mixed_scheduling/saturating": ("saturating.render_readme", ["results/saturating_cpu.json"]),
    # c4 renders from its GPU result when a GPU run committed one, else from the CPU one (as its main() does)
    "c4_attention_graphs_quant": ("lab.render", ["results/attention_quant_gpu.json", "results/attention_quant_cpu.json"]),
    "c5_speculative_decoding": ("spec_decoding.render_readme", ["results/spec_decoding_cpu.json"]),
}


@pytest.mark.parametrize("name", sorted(LABS))
def test_readme_is_rendered_from_the_committed_results(name, tmp_path):
    target, names = LABS[name]
    module, function = target.rsplit(".", 1)
    lab = name.split("/")[0]
    render = getattr(importlib.import_module(f"experiments.vllm.{lab}.{module}"), function)
    lab_dir = pins.REPO_ROOT / "experiments" / "vllm" / lab
    files = [lab_dir / f for f in names]
    if name.startswith("c4"):
        files = [next(f for f in files if f.exists())]
    readme = tmp_path / "README.md"
    shutil.copy(lab_dir / "README.md", readme)  # render into a copy: the committed README is never written
    render(read_result(files[0]), readme, *(str(f.relative_to(pins.REPO_ROOT)) for f in files))
    assert readme.read_text() == (lab_dir / "README.md").read_text(), (
        f"experiments/vllm/{lab}/README.md is stale or hand-edited: "
        f"run python -m experiments.vllm.{name.replace('/', '.')} --render-only")
