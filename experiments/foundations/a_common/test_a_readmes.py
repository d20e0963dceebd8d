"""a-lab plumbing: --render-only measures nothing; the tokenizer-cost probe measures real tokens.

That every README block and the day 6-7 note equal a render of their result files is
tests/test_lab_docs.py (one test per page, `make docs-check`).
"""
from __future__ import annotations

import importlib

import pytest

from experiments.common.results import read_result


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
