"""Generated prose in hand-written READMEs: wrap a generated paragraph like the prose around it.

The blocks themselves are written with experiments.common.docs (one marker form)."""
from __future__ import annotations

import re
import textwrap

# A wrapped line starting like this would turn into a list item, quote, heading, table row or setext rule.
_MARKDOWN_LINE_START = re.compile(r"(\d+[.)]\s|[-+*>#|]|=)")


def wrap_paragraph(text: str, width: int) -> str:
    """Hard-wrap one generated paragraph like the hand-written prose around it.

    Code spans are never split; a paragraph whose wrapped lines would start with Markdown
    syntax is left on one line rather than change meaning."""
    glue = "\x00"
    text = re.sub(r"`[^`]*`", lambda m: m.group(0).replace(" ", glue), text)
    lines = textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)
    if any(_MARKDOWN_LINE_START.match(line) for line in lines[1:]):
        return text.replace(glue, " ")
    return "\n".join(lines).replace(glue, " ")
