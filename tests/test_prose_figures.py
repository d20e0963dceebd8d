"""Every figure in hand-written prose is bound to the value it quotes (file and key, checked at the precision it is
written), and every page records which generated blocks its prose was read against (experiments.common.figures).
The same check runs in `make docs-check`; a failure names the page and the figure. No engine start, no measuring."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from experiments import lab_docs
from experiments.common import figures
from tools import pins

ROOT = pins.REPO_ROOT
PAGES = {str(p.relative_to(ROOT)): p for p in lab_docs.prose_pages()}
C3 = ROOT / "experiments" / "vllm" / "c3_mixed_scheduling" / "README.md"

# The c3 prose as it was before issue 29: written before a re-render, it quoted ratios and a cost model that no
# longer matched the result files beside it. Every figure in it also appears, by coincidence, somewhere in those
# files' text, which is why searching a pool of numbers let it pass.
OLD_C3_TIME = (
    "- **Time.** Re-run on quiet cores, the real medians are x0.39-x0.62 of the simulated throughput, and no real "
    "pass reaches the simulated figure. The real run's own step-cost fit is above the cost model's 1.79 ms + 20.1 "
    "us per prefill token.\n")


@pytest.mark.parametrize("name", sorted(PAGES))
def test_prose_figures_are_bound_and_read(name):
    assert figures.problems(PAGES[name]) == [], f"{name}: fix the prose or its '<!-- figures' bindings"


def test_every_markdown_page_is_checked_generated_or_listed():
    """A new hand-written page is checked by default; only code-written files and the pages waiting for the
    integrator's binding are left out, and those exceptions name files that exist."""
    for path in lab_docs.markdown_pages():
        rel = path.relative_to(ROOT).as_posix()
        kinds = [rel in {str(p.relative_to(ROOT)) for p in lab_docs.prose_pages()},
                 lab_docs._listed(path, lab_docs.GENERATED_MARKDOWN), lab_docs._listed(path, lab_docs.NOT_YET_BOUND)]
        assert kinds.count(True) == 1, f"{rel}: checked / generated / not yet bound = {kinds}"
    for rel in lab_docs.NOT_YET_BOUND:
        assert (ROOT / rel).exists(), f"NOT_YET_BOUND names {rel}, which does not exist: remove the line"
    for must in ("README.md", "docs/pr_draft/LEARNER_SUMMARY.md", "experiments/sim/README.md",
                 "experiments/vllm/c3_mixed_scheduling/README.md", "results/observations/README.md"):
        assert must in PAGES


def _with_old_time_bullet(text: str) -> str:
    start = text.index("- **Time: not a validated comparison.**")
    end = text.index("Read the table with the machine line in mind")
    return text[:start] + OLD_C3_TIME + "\n" + text[end:]


def test_old_c3_prose_fails():
    problems = figures.problems(C3, _with_old_time_bullet(C3.read_text()))
    for figure in ("0.39", "0.62", "1.79", "20.1"):
        assert any(f"quotes {figure} with no binding" in p for p in problems), (figure, problems)


def test_old_c3_prose_fails_even_when_bound_to_what_it_claims():
    """Bound to the keys the sentence claims to quote, the old figures disagree with their values."""
    text = _with_old_time_bullet(C3.read_text())
    _, bound, _ = figures.parse_bindings(text)
    claimed = {"0.39": bound["0.66"], "0.62": bound["1.04"], "1.79": bound["3.33"], "20.1": bound["36.8"]}
    lines = "".join(f"{fig} = {expr}\n" for fig, expr in claimed.items())
    text = text.replace("<!-- figures\n", "<!-- figures\n" + lines, 1)
    problems = figures.problems(C3, text)
    for figure in claimed:
        assert any(p.startswith(f"prose says {figure}, its source says") for p in problems), (figure, problems)


def test_a_figure_found_in_the_results_by_coincidence_is_not_accepted():
    """0.39 appears in c3's result files (inside longer numbers), so a search accepted it. Bound to a real key of
    the same files, it must match that key's value, and an unbound figure is rejected outright."""
    results = "".join(p.read_text() for p in sorted((C3.parent / "results").glob("*.json")))
    assert "0.39" in results  # what a search over the result files would have found
    text = C3.read_text().replace("## Answer", "The simulated sweep stays within 0.39 of the real one.\n\n## Answer", 1)
    assert "prose quotes 0.39 with no binding" in figures.problems(C3, text)
    planted = text.replace("<!-- figures\n", "<!-- figures\n0.39 = [results/saturating_sim_cpu.json#results/"
                                             "points/max_num_batched_tokens=512/wall_s]\n", 1)
    assert any(p.startswith("prose says 0.39, its source says 1.18") for p in figures.problems(C3, planted))


def _page(tmp_path: Path, prose: str, bindings: str, block: str = "| 1 |") -> Path:
    (tmp_path / "r.json").write_text('{"rows": [{"n": 1, "ms": 1794.6}, {"n": 2, "ms": 0.0375}], "share": 0.1994}')
    page = tmp_path / "README.md"
    page.write_text(f"{prose}\n<!-- BEGIN GENERATED t -->\n{block}\n<!-- END GENERATED t -->\n\n"
                    f"<!-- figures\n{bindings}-->\n")
    return page


def test_binding_forms_and_precision(tmp_path):
    page = _page(tmp_path, "It took 1,795 ms, x0.04 of it, 19.9% share, Python 3.11, `code 9.9` and 1.8.",
                 "1,795 = [r.json#rows/n=1/ms]\n0.04 = [r.json#rows/1/ms]\n19.9% = 100 * [r.json#share]\n"
                 "3.11 : a Python version\n1.8 = max([r.json#rows/*/ms]) / 1000\n")
    figures.mark(page)
    assert figures.problems(page) == []
    assert figures.matches("1.04", 1.0449) and not figures.matches("1.04", 1.0349)
    assert figures.matches("-3.5%", -3.46) and figures.printed_value("1,795") == (1795.0, 0)


def test_unbound_wrong_stale_and_malformed_bindings_are_reported(tmp_path):
    page = _page(tmp_path, "It took 1,794 ms and 7.5 ms.",
                 "1,794 = [r.json#rows/n=1/ms]\n2.5 = [r.json#share]\nnot a binding\n0.2 = [r.json#nope]\n")
    figures.mark(page)
    problems = "\n".join(figures.problems(page))
    assert "prose says 1,794, its source says 1794.6" in problems
    assert "prose quotes 7.5 with no binding" in problems
    assert "binding for 2.5, which the prose no longer quotes" in problems
    assert "cannot read binding line 'not a binding'" in problems
    assert "0.2: r.json#nope: no 'nope'" in problems


def test_a_figure_written_twice_with_two_meanings_is_bound_per_occurrence(tmp_path):
    page = _page(tmp_path, "Shares 0.2 and 0.2.", "0.2#1 = [r.json#share]\n")
    figures.mark(page)
    assert figures.problems(page) == ["prose quotes 0.2 2 times: bind 0.2#2 too"]
    page.write_text(page.read_text().replace("0.2#1 = [r.json#share]\n", "0.2#1 = [r.json#share]\n0.2#2 = 0.21\n"))
    assert figures.problems(page) == []


def test_a_rerender_fails_until_the_prose_is_marked_read(tmp_path):
    page = _page(tmp_path, "Nothing quoted.", "")
    assert any("no 'read: HASH' mark" in p for p in figures.problems(page))
    figures.mark(page)
    assert figures.problems(page) == []
    page.write_text(page.read_text().replace("| 1 |", "| 2 |"))  # what `make docs` does after a re-measurement
    assert any("generated blocks changed since the prose was read" in p for p in figures.problems(page))
    figures.mark(page)
    assert figures.problems(page) == []


def test_what_counts_as_a_figure(tmp_path):
    """Decimals, grouped thousands, percentages and integers with a unit; not code, links, blocks or comments."""
    text = ("a 2.5 b\n```\n9.1\n```\n`3.3` [x](r/1.5.json) <!-- 4.4 -->\nranges 3.45-8.98, x0.66-x1.04, -3.5%, "
            "v0.32.0, 5x, 1.5x, 2 cores, 64 requests, 44 ms, 70-132 tok/s, 256 MiB\n"
            "<!-- BEGIN GENERATED t -->\n7.7\n<!-- END GENERATED t -->\n")
    assert figures.figures_in(text) == ["2.5", "3.45", "8.98", "0.66", "1.04", "-3.5%", "5", "1.5", "44", "70", "132",
                                        "256"]


def test_docs_check_fails_on_an_unbound_figure(tmp_path, monkeypatch, capsys):
    page = _page(tmp_path, "It took 7.5 ms.", "")
    figures.mark(page)
    monkeypatch.setattr(lab_docs, "pages", lambda: [])
    monkeypatch.setattr(lab_docs, "prose_pages", lambda: [page])
    monkeypatch.setattr(lab_docs, "REPO_ROOT", tmp_path)
    assert lab_docs.main(["--check"]) == 1
    assert re.search(r"README\.md: prose quotes 7\.5 with no binding", capsys.readouterr().out)
