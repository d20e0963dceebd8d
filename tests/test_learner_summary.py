"""Days 26-28 (docs/pr_draft/LEARNER_SUMMARY.md) is written by hand; every figure in it must
be in a result file the same paragraph, bullet or table row cites."""
from __future__ import annotations

import re
from pathlib import Path

from tools import pins

DOC = pins.REPO_ROOT / "docs" / "pr_draft" / "LEARNER_SUMMARY.md"
# Decimals and percentages: the figures a reader could mistake for measurements (integers such as
# "2 cores" or "4-7 steps" are settings, named by the cited configuration).
FIGURE = re.compile(r"(?<![\w.])[+-]?\d[\d,]*\.\d+%?|(?<![\w.,])[+-]?\d+(?:\.\d+)?%")
CITATION = re.compile(r"\]\(([^)\s]+)\)|`([\w./-]+/[\w./-]+)`")
READABLE = (".md", ".json", ".csv", ".txt")


def blocks(text: str) -> list[str]:
    """Paragraphs, list items and table rows: the unit a figure and its citation share."""
    out, current = [], []
    for line in text.splitlines():
        starts_item = re.match(r"\s*([-*]|\d+\.|\|)\s", line)
        if not line.strip() or starts_item:
            if current:
                out.append("\n".join(current))
            current = [line] if line.strip() else []
        else:
            current.append(line)
    if current:
        out.append("\n".join(current))
    return out


def cited_text(block: str, base: Path) -> str:
    texts = []
    for link, code in CITATION.findall(block):
        target = (link or code).split("#")[0]
        for root in (base, pins.REPO_ROOT):
            path = (root / target).resolve()
            if path.is_file() and path.suffix in READABLE:
                texts.append(path.read_text())
                break
            if path.is_dir():
                texts += [p.read_text() for p in sorted(path.rglob("*")) if p.is_file() and p.suffix in READABLE]
                break
    return "\n".join(texts)


def unsupported(doc: Path) -> list[str]:
    problems = []
    for block in blocks(doc.read_text()):
        figures = FIGURE.findall(block)
        if not figures:
            continue
        sources = cited_text(block, doc.parent)
        if not sources:
            problems.append(f"no result file cited for {figures}: {block[:120]!r}")
            continue
        missing = [f for f in figures if f.lstrip("+") not in sources]
        if missing:
            problems.append(f"{missing} not in the cited files: {block[:120]!r}")
    return problems


def test_every_figure_is_in_a_file_the_block_cites():
    assert DOC.exists()
    assert not unsupported(DOC), "\n".join(unsupported(DOC))


def test_the_checker_catches_a_typed_in_figure(tmp_path):
    src = tmp_path / "r.md"
    src.write_text("| x | 12.5 |\n")
    doc = tmp_path / "doc.md"
    doc.write_text("Measured 12.5 ms ([r](r.md)).\n\n- typed in: 99.9 ms ([r](r.md))\n\n- uncited 3.3%\n")
    problems = unsupported(doc)
    assert len(problems) == 2 and "99.9" in problems[0] and "no result file" in problems[1]


def test_it_has_the_days_26_28_parts():
    text = DOC.read_text()
    for part in ("简历", "Resume", "模拟面试", "Mock interview", "为什么这里慢", "为什么这样改", "更极端"):
        assert part in text, part
