"""results/reference/sim/README.md and experiments/sim/README.md show what the result files say (make sim renders them)."""
from __future__ import annotations

from experiments.sim import report


def test_readme_equals_a_render_of_the_result_files():
    text = report.README.read_text()
    begin, end = text.index(report.BEGIN) + len(report.BEGIN) + 1, text.index(report.END)
    assert text[begin:end] == report.render(), "stale: run `python -m experiments.sim.report`"


def test_package_readme_equals_a_render_of_the_result_files():
    text = report.PACKAGE_README.read_text()
    begin, end = text.index(report.PACKAGE_BEGIN) + len(report.PACKAGE_BEGIN) + 1, text.index(report.PACKAGE_END)
    assert text[begin:end] == report.render_package_summary(), "stale: run `python -m experiments.sim.report`"


def test_every_simulated_bench_is_labelled():
    for manifest in report.ROOT.glob("*/*/manifest.json"):
        if manifest.parent.parent.name in ("benches", "projection"):
            assert manifest.read_text().count("simulated (cost model") >= 1, manifest
