"""The CPU microbenchmark of patch 0001/0001b's cost: interleaving and the floor arithmetic (no engine)."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from experiments.trace import overhead_micro as om


def test_round_orders_balance_positions():
    orders = om.round_orders(10)
    assert all(sorted(o) == sorted(om.VARIANTS) for o in orders)
    first = Counter(o[0] for o in orders)
    assert set(first) == set(om.VARIANTS) and max(first.values()) - min(first.values()) <= 1
    assert orders[1] == (list(om.VARIANTS[1:]) + [om.VARIANTS[0]])[::-1]  # odd rounds run reversed


def _blocks(values: dict[str, list[float]], bench: str = "schedule") -> list[dict]:
    return [{"bench": bench, "round": r + 1, "variant": v, "calls": 10, "cpu_us_per_call": x}
            for v, xs in values.items() for r, x in enumerate(xs)]


def test_floor_is_the_largest_aa_ratio_and_verdicts_respect_it():
    blocks = _blocks({"off": [100, 100, 100], "off_aa": [102, 97, 101], "upstream_on": [101, 99, 100],
                      "on": [150, 140, 160], "profiler": [200, 210, 190]})
    s = om.summarize(blocks)["schedule"]
    assert s["floor"] == pytest.approx(0.03)
    assert s["variants"]["on"]["delta"] == pytest.approx(0.5) and s["variants"]["on"]["verdict"] == "beyond the floor"
    assert s["variants"]["upstream_on"]["verdict"] == "within the floor"
    assert s["variants"]["profiler"]["delta_min"] == pytest.approx(0.9)
    assert s["rounds"] == 3 and s["variants"]["off"]["median_us"] == 100
    # the patch's own ranges: every range vs upstream's only, round by round
    assert s["variants"]["on"]["vs_upstream_on"]["delta_max"] == pytest.approx(160 / 100 - 1)
    assert s["variants"]["profiler"]["vs_on"]["verdict"] == "beyond the floor"


def test_incomplete_round_is_left_out():
    blocks = _blocks({"off": [100, 100], "off_aa": [101, 100], "upstream_on": [100, 100], "on": [120, 120],
                      "profiler": [130, 130]})
    blocks = [b for b in blocks if not (b["round"] == 2 and b["variant"] == "profiler")]
    assert om.summarize(blocks)["schedule"]["rounds"] == 1


def test_committed_result_summary_matches_its_blocks():
    path = om.latest()
    if path is None:
        pytest.skip("no committed overhead-micro result")
    doc = json.loads(path.read_text())
    assert doc["summary"] == om.summarize(doc["blocks"])
    assert doc["provenance"]["command"].startswith("python -m experiments.trace.overhead_micro")
    for b in doc["blocks"]:
        if b["variant"] == "profiler":
            assert b["patch_range_counts"], b  # the recorded profile holds patch 0001's ranges
