"""The c4 README's Answer is generated (README = render of the JSON: tests/test_lab_docs.py)."""
from __future__ import annotations

import copy

from experiments.common.results import read_result
from experiments.vllm.c4_attention_graphs_quant import lab

BEGIN, END = "<!-- BEGIN GENERATED results -->", "<!-- END GENERATED results -->"


def test_answer_lives_inside_the_generated_block():
    text = (lab.LAB_DIR / "README.md").read_text()
    a, b = text.index(BEGIN), text.index(END)
    outside = text[:a] + text[b:]
    assert "## Answer" in text[a:b]
    assert "## Answer" not in outside, "hand-written Answer outside the generated block: move its figures into lab.answer_markdown"


def test_answer_words_follow_the_numbers():
    doc = read_result(lab.LAB_DIR / "results" / "attention_quant_cpu.json")
    text = lab.answer_markdown(doc)
    # The committed run recorded a 32 MiB L3 and timed a layer whose int8 weights are above it.
    assert "are above this AMD EPYC's 32 MiB L3" in text and "the one that survives" in text
    assert "shows what a cache does to the comparison" in text

    unknown = copy.deepcopy(doc)
    unknown["results"]["quant"]["cpu_last_level_cache"] = None
    assert "may be a cache effect" in lab.answer_markdown(unknown)

    fits = copy.deepcopy(doc)  # a 200 MiB cache: the 8192x8192 layer's int8 (67.1 MB) fits, its fp32 (268.4 MB) not
    fits["results"]["quant"]["cpu_last_level_cache"] = {"level": 3, "bytes": 200 * 2**20, "source": "test"}
    assert "fit this AMD EPYC's 200 MiB L3 across repeats and 268.4 MB of fp32 do not" in lab.answer_markdown(fits)
    fits["results"]["quant"]["cpu_last_level_cache"]["bytes"] = 1024 * 2**20
    assert "Both the 67.1 MB of int8 and the 268.4 MB of fp32 weights fit" in lab.answer_markdown(fits)


def test_above_llc_side_is_twice_the_cache_in_int8():
    assert lab.above_llc_side({"bytes": 32 * 2**20}) == 8192
    assert lab.above_llc_side({"bytes": 96 * 2**20}) == 16384
    assert lab.above_llc_side(None) == 8192


def test_answer_when_fused_int8_is_no_faster():
    doc = read_result(lab.LAB_DIR / "results" / "attention_quant_cpu.json")
    slow = copy.deepcopy(doc)  # a machine where the fused int8 kernel is no faster: no "fused or not" split claimed
    for s in slow["results"]["quant"]["speed_cpu"]:
        s["fbgemm_dynamic_int8_ms"] = s["fp32_ms"] * 2
    text = lab.answer_markdown(slow)
    assert "split exactly" not in text and "no faster" in text and "cache effect" not in text

    gpu = copy.deepcopy(doc)
    gpu["results"]["cuda_graph"] = {"device": "NVIDIA H200", "n_layers": 16, "hidden": 256, "batch": 1,
                                    "kernels_per_step": 128, "eager_us_per_step": [900, 910, 920, 930, 940],
                                    "graph_us_per_step": [300, 301, 302, 303, 304], "speedup_median": 920 / 302,
                                    "max_abs_diff_graph_vs_eager": 0.0}
    text = lab.answer_markdown(gpu)
    assert "not measurable here" not in text and "920.0 µs eager and 302.0 µs as a graph replay, x3.0" in text
