"""results/reference/sim/README.md and experiments/sim/README.md show what the result files say (make sim renders them)."""
from __future__ import annotations

from experiments.common.docs import find_blocks
from experiments.sim import report


def test_readme_equals_a_render_of_the_result_files():
    block = find_blocks(report.README.read_text())[report.BLOCK]
    assert block == report.render().strip("\n"), "stale: run `python -m experiments.sim.report`"


def test_package_readme_equals_a_render_of_the_result_files():
    block = find_blocks(report.PACKAGE_README.read_text())[report.PACKAGE_BLOCK]
    assert block == report.render_package_summary().strip("\n"), "stale: run `python -m experiments.sim.report`"


def test_every_simulated_bench_is_labelled():
    for manifest in report.ROOT.glob("*/*/manifest.json"):
        if manifest.parent.parent.name in ("benches", "projection"):
            assert manifest.read_text().count("simulated (cost model") >= 1, manifest


def test_steady_count_leaves_out_drifted_windows_and_sets_not_counted():
    """A drifted window widens the real spread and so the bar: the summary counts the steady windows apart."""
    row = lambda ok: {"within": ok}  # noqa: E731
    c = {"benches": [{"window": {"drifted": False}, "rows": [row(True), row(False)]},
                     {"window": {"drifted": True}, "rows": [row(True), row(True)]},
                     {"not_counted": "another CPU", "window": None, "rows": [row(True)]}]}
    assert report.steady_rows(c) == (1, 2)
