"""c3 saturating sweep: every request arrives at t = 0; the README block renders from the JSON (pure parts)."""
from __future__ import annotations

from experiments.vllm.c3_mixed_scheduling import saturating as S


def test_saturated_requests_all_arrive_at_once():
    reqs = S.saturated_requests(24)
    assert len(reqs) == 24 and {r["arrival_s"] for r in reqs} == {0.0}
    assert {r["kind"] for r in reqs} == {"long", "short"}


def test_budgets_are_increasing_and_include_the_main_runs():
    assert S.BUDGETS == sorted(S.BUDGETS) and {512, 2048} <= set(S.BUDGETS)
