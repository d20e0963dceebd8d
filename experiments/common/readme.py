"""Generated sections of hand-written READMEs: replace the text between two marker lines."""
from __future__ import annotations

from pathlib import Path


def replace_between(path: Path, begin: str, end: str, body: str) -> bool:
    """Rewrite what lies between `begin` and `end` in the file; False (file untouched) without markers."""
    text = path.read_text()
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{body}{end}{tail}")
    return True
