"""a-lab plumbing: --render-only measures nothing; render() redraws the committed plots and README blocks from
results/; the tokenizer-cost probe measures real tokens.

That every README block and the day 6-7 note equal a render of their result files is
tests/test_lab_docs.py (one test per page, `make docs-check`).
"""
from __future__ import annotations

import importlib
import shutil

import pytest

from experiments.common.docs import find_blocks
from experiments.common.lab import LabFiles
from experiments.common.results import read_result

A_LABS = ["a1_gil_threads_vs_processes", "a2_producer_consumer_queues", "a3_read_vs_mmap",
          "a4_mock_inference_service", "a5_latency_throughput_profiling"]


def test_render_only_measures_nothing(tmp_path):
    lab = importlib.import_module("experiments.foundations.a2_producer_consumer_queues.lab")
    with pytest.raises(SystemExit, match="no result file"):
        lab.main(["--render-only", "--out-dir", str(tmp_path)])
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("name", A_LABS)
def test_render_draws_the_committed_plots_and_readme_block(name, tmp_path):
    """From a copy of the committed results: the same PNG names as committed in plots/, the README's block."""
    lab = importlib.import_module(f"experiments.foundations.{name}.lab")
    assert lab.LAB_DIR.name == name
    shutil.copytree(lab.LAB_DIR / "results", tmp_path / "results")
    blocks = lab.render(LabFiles(lab.LAB_DIR, tmp_path))
    block = f"{name.split('_', 1)[0]}-results"
    assert list(blocks) == [block]
    assert blocks[block].strip("\n") == find_blocks((lab.LAB_DIR / "README.md").read_text())[block]
    drawn = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert drawn and drawn == sorted(p.name for p in (lab.LAB_DIR / "plots").glob("*.png"))
    assert all((tmp_path / "plots" / f).stat().st_size > 0 for f in drawn)
    assert not list((tmp_path / "results").glob("*.png"))  # plots no longer land next to the JSON


def test_tokenizer_cost_quick_run_measures_real_tokens(tmp_path):
    from experiments.foundations.a_common import tokenizer_cost

    assert tokenizer_cost.main(["--quick", "--out", str(tmp_path / "t.json")]) == 0
    r = read_result(tmp_path / "t.json")["results"]
    assert r["prompt_tokens"] > 100 and r["output_tokens"] == 64
    assert r["encode_cpu"]["median_us"] > 0 and r["detokenize_us_per_token"] > 0
