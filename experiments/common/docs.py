"""Generated blocks in hand-written Markdown: one marker form, two pure functions, one command.

A generated block is

    <!-- BEGIN GENERATED name -->
    ...body, rendered from result files...
    <!-- END GENERATED name -->

on lines of their own; `name` is unique within its file. The prose around the
blocks is written by hand; what is between the markers is never edited by hand.

- `find_blocks(text)`: {name: body} of every block in a text.
- `fill_blocks(text, bodies)`: the text with each named block's body replaced
  (`fill_file(path, bodies)` does it to a file: the product pages' renderers use it).
- `run(pages, check=...)`: render every page's blocks and write them, or with
  check=True write nothing and report every block that differs from its render.
  A page is a file plus a function returning {block name: body}; the pages are
  listed in `experiments.lab_docs`, and another package (analysis/) can call
  `run` with its own list.
- `prose_of(text)`: what a reader reads as hand-written (no blocks, code, link
  targets or comments). The figures in it are bound to their sources by
  `experiments.common.figures`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

_BLOCK = re.compile(r"^<!-- BEGIN GENERATED (?P<name>[\w.-]+) -->\n(?P<body>.*?)^<!-- END GENERATED (?P=name) -->$",
                    re.S | re.M)
_ANY_BEGIN = re.compile(r"^<!-- BEGIN GENERATED (?P<name>[\w.-]+) -->$", re.M)


def begin_marker(name: str) -> str:
    return f"<!-- BEGIN GENERATED {name} -->"


def end_marker(name: str) -> str:
    return f"<!-- END GENERATED {name} -->"


def find_blocks(text: str) -> dict[str, str]:
    """{name: body} of every generated block (body without the trailing newline before the end marker)."""
    blocks: dict[str, str] = {}
    for m in _BLOCK.finditer(text):
        if m.group("name") in blocks:
            raise ValueError(f"generated block {m.group('name')!r} appears twice")
        blocks[m.group("name")] = m.group("body").removesuffix("\n")
    opened = [m.group("name") for m in _ANY_BEGIN.finditer(text)]
    unclosed = sorted(set(opened) - set(blocks))
    if unclosed:
        raise ValueError(f"generated block(s) {unclosed} have no matching '{end_marker('<name>')}' line")
    return blocks


def fill_blocks(text: str, bodies: dict[str, str]) -> str:
    """`text` with the body of every block named in `bodies` replaced; a name without markers is an error."""
    present = find_blocks(text)
    missing = sorted(set(bodies) - set(present))
    if missing:
        raise ValueError(f"no generated block(s) {missing} in the text (markers: '{begin_marker('<name>')}')")

    def replace(m: re.Match) -> str:
        name = m.group("name")
        if name not in bodies:
            return m.group(0)
        body = bodies[name].strip("\n")
        return f"{begin_marker(name)}\n{body}\n{end_marker(name)}" if body else f"{begin_marker(name)}\n{end_marker(name)}"

    return _BLOCK.sub(replace, text)


def fill_file(path: Path, bodies: dict[str, str]) -> bool:
    """Write each named block's body into the file; False (file untouched) when a block has no markers."""
    text = path.read_text()
    if not set(bodies) <= set(find_blocks(text)):
        return False
    new = fill_blocks(text, bodies)
    if new != text:
        path.write_text(new)
    return True


@dataclass(frozen=True)
class Page:
    """A hand-written file with generated blocks and the function that renders them from result files."""
    path: Path
    render: Callable[[], dict[str, str]]


_FENCE = re.compile(r"^\s*```.*?^\s*```", re.S | re.M)
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK_TARGET = re.compile(r"\]\([^)\s]*\)")


def prose_of(text: str) -> str:
    """The hand-written part of a page as a reader reads it: everything outside generated blocks, code
    (fences and inline spans), link targets and HTML comments."""
    text = _BLOCK.sub("", text)
    for pattern in (_FENCE, _CODE_SPAN, _COMMENT, _LINK_TARGET):
        text = pattern.sub(" ", text)
    return text


def stale_blocks(page: Page) -> list[str]:
    """Names of the page's blocks whose committed body differs from a fresh render."""
    committed = find_blocks(page.path.read_text())
    rendered = page.render()
    return [name for name, body in rendered.items() if committed.get(name) != body.strip("\n")]


def run(pages: Iterable[Page], *, check: bool = False, root: Path | None = None, log=print) -> int:
    """Write every page's rendered blocks (or, with check, only report stale ones). Returns an exit code."""
    stale = []
    for page in pages:
        shown = page.path.relative_to(root) if root else page.path
        if check:
            stale += [f"{shown}: block {n} differs from its render" for n in stale_blocks(page)]
            continue
        text = page.path.read_text()
        new = fill_blocks(text, page.render())
        if new != text:
            page.path.write_text(new)
            log(f"rendered {shown}")
    if stale:
        log("docs check failed (stale blocks: run `make docs`):\n  "
            + "\n  ".join(stale))
        return 1
    return 0
