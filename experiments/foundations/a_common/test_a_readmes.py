"""The a1-a5 README result blocks and the day 6-7 note equal a render of the committed result files.

A failure means a figure was edited by hand, or a result file changed without re-rendering
(`python -m experiments.foundations.<lab> --render-only`, then
`python -m experiments.foundations.a_common.request_path_note`).
"""
from __future__ import annotations

import importlib

import pytest

from experiments.common.results import read_result
from experiments.foundations.a_common import request_path_note
from experiments.foundations.a_common.lab import lab_dir, readme_block as block

LABS = ["a1_gil_threads_vs_processes", "a2_producer_consumer_queues", "a3_read_vs_mmap",
        "a4_mock_inference_service", "a5_latency_throughput_profiling"]


@pytest.mark.parametrize("name", LABS)
def test_lab_readme_block_is_rendered_from_its_result(name):
    lab = importlib.import_module(f"experiments.foundations.{name}.lab")
    folder = lab_dir(lab.__file__)
    doc = read_result(folder / "results" / lab.RESULT_NAME)
    short = name.split("_", 1)[0]
    committed = block((folder / "README.md").read_text(), f"{short}-results")
    assert committed == lab.readme_tables(doc).strip(), (
        f"{name}/README.md is stale or hand-edited: run python -m experiments.foundations.{name} --render-only")


def test_request_path_note_is_rendered_from_the_results():
    docs = {k: read_result(p) for k, p in request_path_note.FILES.items()}
    committed = block(request_path_note.NOTE.read_text(), "request-path-figures")
    assert committed == request_path_note.render(docs).strip(), (
        "docs/notes/day06-07-request-path.zh.md is stale: run python -m experiments.foundations.a_common.request_path_note")


def test_render_only_measures_nothing(tmp_path):
    lab = importlib.import_module("experiments.foundations.a2_producer_consumer_queues.lab")
    with pytest.raises(SystemExit, match="no result file"):
        lab.main(["--render-only", "--out-dir", str(tmp_path)])


def test_tokenizer_cost_quick_run_measures_real_tokens(tmp_path):
    from experiments.foundations.a_common import tokenizer_cost

    assert tokenizer_cost.main(["--quick", "--out", str(tmp_path / "t.json")]) == 0
    r = read_result(tmp_path / "t.json")["results"]
    assert r["prompt_tokens"] > 100 and r["output_tokens"] == 64
    assert r["encode_cpu"]["median_us"] > 0 and r["detokenize_us_per_token"] > 0
