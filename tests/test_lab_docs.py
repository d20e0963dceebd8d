"""Every generated block of every lab page equals a render of its committed result files (one test per page),
and the two pure functions of the docs mechanism behave. A failure means a figure was edited by hand or a
result changed without `make docs` (python -m experiments.lab_docs). Figures in the hand-written prose around
the blocks: tests/test_prose_figures.py."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from experiments import lab_docs
from experiments.common import docs
from tools import pins

PAGES = {str(p.path.relative_to(pins.REPO_ROOT)): p for p in lab_docs.pages()}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_generated_blocks_equal_their_render(name):
    page = PAGES[name]
    committed = docs.find_blocks(page.path.read_text())
    rendered = page.render()
    assert rendered, f"{name}: the page renders no blocks"
    for block, body in rendered.items():
        assert block in committed, f"{name}: no '{docs.begin_marker(block)}' markers"
        assert committed[block] == body.strip("\n"), f"{name}: block {block!r} is stale; run make docs"


CITED = re.compile(r"`((?:experiments|docs|results|models|analysis|tools|nsys_traces|patches)/[^`\s*<]+)`")
NOTES = sorted((pins.REPO_ROOT / "docs" / "notes").glob("*.md"))


@pytest.mark.parametrize("page", [*sorted(PAGES), *(str(p.relative_to(pins.REPO_ROOT)) for p in NOTES)])
def test_cited_files_exist(page):
    """Every repo path a lab page or note cites exists; only files a GPU run writes (named *gpu*) may be missing
    on a machine without one (the day 13-14 note once cited b4 files that did not exist)."""
    path = pins.REPO_ROOT / page
    missing = [ref for ref in (m.rstrip(".,;:") for m in CITED.findall(path.read_text()))
               if not ((pins.REPO_ROOT / ref).exists() or (path.parent / ref).exists())  # repo- or page-relative
               and "gpu" not in Path(ref).name and "…" not in ref]  # `a1_…a5_…`: a range, not a path
    assert not missing, f"{page} cites files that do not exist: {missing}"


def test_find_and_fill_blocks():
    text = "intro\n<!-- BEGIN GENERATED t -->\nold\n<!-- END GENERATED t -->\nprose 1.5\n"
    assert docs.find_blocks(text) == {"t": "old"}
    new = docs.fill_blocks(text, {"t": "| a |\n|---|\n"})
    assert new == "intro\n<!-- BEGIN GENERATED t -->\n| a |\n|---|\n<!-- END GENERATED t -->\nprose 1.5\n"
    assert docs.fill_blocks(new, {"t": "| a |\n|---|"}) == new  # idempotent
    with pytest.raises(ValueError, match="no generated block"):
        docs.fill_blocks(text, {"missing": "x"})
    with pytest.raises(ValueError, match="no matching"):
        docs.find_blocks("<!-- BEGIN GENERATED t -->\nbody\n")
    with pytest.raises(ValueError, match="appears twice"):
        docs.find_blocks(text + text)


def test_check_mode_reports_a_stale_block_and_writes_nothing(tmp_path):
    page_file = tmp_path / "README.md"
    page_file.write_text("<!-- BEGIN GENERATED t -->\nhand-edited 9.9\n<!-- END GENERATED t -->\n")
    page = docs.Page(page_file, lambda: {"t": "rendered 1.0"})
    lines: list[str] = []
    assert docs.run([page], check=True, log=lines.append) == 1 and "t" in lines[-1]
    assert "hand-edited" in page_file.read_text()
    assert docs.run([page], log=lines.append) == 0 and "rendered 1.0" in page_file.read_text()
    assert docs.run([page], check=True, log=lines.append) == 0
