"""Days 26-28 (docs/pr_draft/LEARNER_SUMMARY.md) is written by hand. Its figures are bound to their source
values in the page's '<!-- figures' comment and checked with every other page by tests/test_prose_figures.py
(make docs-check); this file checks the plan's parts are there."""
from __future__ import annotations

from tools import pins

DOC = pins.REPO_ROOT / "docs" / "pr_draft" / "LEARNER_SUMMARY.md"


def test_it_has_the_days_26_28_parts():
    text = DOC.read_text()
    for part in ("简历", "Resume", "模拟面试", "Mock interview", "为什么这里慢", "为什么这样改", "更极端"):
        assert part in text, part
