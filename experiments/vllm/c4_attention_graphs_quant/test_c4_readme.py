"""The c4 README: tables generated from the JSON (tests/test_lab_docs.py), the Answer written by hand with its
figures bound to the JSON (experiments.common.figures, make docs-check)."""
from __future__ import annotations

from experiments.common.docs import find_blocks
from experiments.vllm.c4_attention_graphs_quant import lab


def test_answer_is_written_by_hand():
    text = (lab.LAB_DIR / "README.md").read_text()
    assert "## Answer" in text
    assert not any("## Answer" in body for body in find_blocks(text).values())


def test_above_llc_side_is_twice_the_cache_in_int8():
    assert lab.above_llc_side({"bytes": 32 * 2**20}) == 8192
    assert lab.above_llc_side({"bytes": 96 * 2**20}) == 16384
    assert lab.above_llc_side(None) == 8192
