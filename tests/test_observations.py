"""results/observations/README.md quotes figures; each must appear in the files of the directory it cites."""
from __future__ import annotations

import re

from tools import pins

ROOT = pins.REPO_ROOT / "results" / "observations"


def test_every_quoted_figure_is_in_its_directory():
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `")]
    assert rows, "no observation rows found"
    for row in rows:
        name = re.match(r"\| `([^`]+)`", row).group(1)
        sources = "".join(p.read_text() for p in (ROOT / name).glob("*") if p.suffix in (".md", ".log"))
        assert sources, f"{name}: no summary.md / log to check against"
        figures = re.findall(r"[+-]?\d+\.\d+%?", row)
        assert figures
        missing = [f for f in figures if f not in sources]
        assert not missing, f"{name}: {missing} quoted in results/observations/README.md but not in its files"
