"""Figures in hand-written prose, each bound to the value it quotes; a mark of what the prose was read against.

A page lists its bindings in one HTML comment at its end (invisible when the page is rendered):

    <!-- figures
    read: 3f2a9c1b0d4e
    1,795 = [results/saturating_cpu.json#results/budgets/max_num_batched_tokens=512/output_tok_s/median]
    1.04 = [results/saturating_cpu.json#...] / [results/saturating_sim_cpu.json#...]
    19.9% = 100 * [results/cpu.json#results/share]
    3.11 : the Python version the set-up names, not a measurement
    -->

- A *figure* is a number in the prose (outside generated blocks, code fences, inline code, link targets
  and HTML comments) written with a decimal point, thousands separators or a percent sign, with its sign
  when one leads it: "0.39", "1,795", "-3.5%" (a ratio's "x", as in "x1.04", is not part of it), and an
  integer with a unit of time, size, rate or ratio after it: "44 ms", "256 MiB", "5x". Other integers are
  counts and settings (2 cores, 64 requests, day 17) and are not checked.
- Every figure needs a line `FIGURE = EXPRESSION` (the printed figure, as written) or `FIGURE : reason`
  (a version, a setting, a vendor's number the sentence cites: anything that is not a measurement). A
  figure the prose writes n times with different meanings is bound per occurrence, `FIGURE#1` .. `FIGURE#n`
  in reading order; a plain `FIGURE` binds every occurrence to one value.
- An expression is arithmetic (+ - * / **, min, max, abs, sum, len, median) over terms `[FILE#KEY]`: FILE is
  a JSON file (or a Python module, for constants such as the cited spec sheet), relative to the page's
  folder or else to the repository root; KEY walks into it segment by segment, separated by `/`: a dict
  key, a list index, `field=value` (the one element of a list whose field prints as value; `a=1&b=2` for
  several fields; `*field=value` for every such element, giving a list) or `*` (every element, a list).
  The value must equal the printed figure at the figure's own precision (its decimals; a percent sign
  belongs to the figure, the expression gives the number before it).
- `read: HASH` is the hash of the page's generated blocks when its prose was last read against them
  (`mark()`); a page with generated blocks needs it. A re-render that changes a block fails the check
  until someone has re-read the prose and updated the mark (`python -m experiments.lab_docs --mark-read
  PAGE`).

`problems(path)` returns what is wrong with one page; the check never searches result files for a figure
(`suggest` does, only as an aid to writing bindings by hand).
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import math
import re
import statistics
from functools import lru_cache
from pathlib import Path

from experiments.common.docs import find_blocks, prose_of
from experiments.common.provenance import REPO_ROOT

_BINDINGS = re.compile(r"^<!-- figures\n(?P<body>.*?)^-->[ \t]*\n?", re.S | re.M)
# a number with a decimal point, thousands separators or a percent sign, or an integer with a unit of time,
# size, rate or ratio after it ("44 ms", "5x"), and the sign that starts it
_UNIT = r"(?=\s?(?:ms|us|µs|s|tok/s|tokens/s|req/s|MB|GB|MiB|GiB|KiB|x)\b)"
_NUMBER = re.compile(r"(?<![\w.,])([-+−]?)(\d{1,3}(?:,\d{3})+(?:\.\d+)?%?|\d+\.\d+%?|\d+%|\d+" + _UNIT
                     + r"|\d+(?=[-–]\d+" + _UNIT + r"))(?!%|[.,]\d|x\w|(?!x)\w)")
_RATIO = re.compile(r"(?<![\w.,])[x×](?=\d)")  # "x0.66": a ratio's x is not part of the number
_TERM = re.compile(r"\[(?P<file>[^\[\]#]+)#(?P<key>[^\[\]]*)\]")
_FUNCS = {"min": min, "max": max, "abs": abs, "sum": sum, "len": len, "median": statistics.median}


def _figures_in(prose: str) -> list[str]:
    prose = _RATIO.sub(" ", prose)
    out = []
    for m in _NUMBER.finditer(prose):
        sign, number = m.group(1), m.group(2)
        # a dash right after a number is a range, not a sign: "3.45-8.98", "x0.66-x1.04"
        if sign and re.search(r"[\d%]\s?$", prose[:m.start()]):
            sign = ""
        out.append(sign.replace("−", "-") + number)
    return out


def figures_in(text: str) -> list[str]:
    """The figures of a page's prose, in order, as written (sign and percent sign included)."""
    return _figures_in(prose_of(text))


def parse_bindings(text: str) -> tuple[str | None, dict[str, str], list[str]]:
    """(read mark, {figure: expression or ': reason'}, malformed lines) of a page's bindings comment."""
    found = list(_BINDINGS.finditer(text))
    if not found:
        return None, {}, []
    if len(found) > 1:
        return None, {}, ["more than one '<!-- figures' comment"]
    mark, bound, bad = None, {}, []
    for line in found[0].group("body").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("read:"):
            mark = line.removeprefix("read:").strip()
            continue
        m = re.match(r"(?P<fig>\S+)\s+(?P<op>[=:])\s+(?P<rest>.+)$", line)
        if not m:
            bad.append(f"cannot read binding line {line!r} (want 'FIGURE = EXPRESSION' or 'FIGURE : reason')")
        elif m.group("fig") in bound:
            bad.append(f"figure {m.group('fig')} is bound twice")
        else:
            bound[m.group("fig")] = (": " if m.group("op") == ":" else "") + m.group("rest").strip()
    return mark, bound, bad


def blocks_hash(text: str) -> str:
    """What a page's prose was read against: a short hash of its generated blocks (names and bodies)."""
    blocks = find_blocks(text)
    digest = hashlib.sha256("\n".join(f"{name}\n{blocks[name]}" for name in sorted(blocks)).encode())
    return digest.hexdigest()[:12]


def mark(path: Path) -> str:
    """Record that the page's prose has been read against its current generated blocks; returns the mark.

    Run it only after re-reading the prose: the mark says a person did."""
    text = path.read_text()
    new = blocks_hash(text)
    mark_, _, _ = parse_bindings(text)
    if mark_ is not None:
        text = _BINDINGS.sub(lambda m: re.sub(r"^read:.*$", f"read: {new}", m.group(0), count=1, flags=re.M),
                             text, count=1)
    elif _BINDINGS.search(text):
        text = _BINDINGS.sub(lambda m: m.group(0).replace("<!-- figures\n", f"<!-- figures\nread: {new}\n", 1),
                             text, count=1)
    else:
        text = text.rstrip("\n") + f"\n\n<!-- figures\nread: {new}\n-->\n"
    path.write_text(text)
    return new


@lru_cache(maxsize=None)
def _load(path: Path):
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix == ".py":
        spec = importlib.util.spec_from_file_location(f"_figures_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return vars(module)
    raise ValueError(f"{path}: bind figures to a JSON file (or a Python module of constants)")


def resolve(file: str, key: str, page: Path):
    """The value at KEY in FILE (see the module docstring for the key form)."""
    candidates = [page.parent / file, REPO_ROOT / file]
    path = next((p.resolve() for p in candidates if p.is_file()), None)
    if path is None:
        raise ValueError(f"no file {file!r} (looked beside the page and at the repository root)")
    values, many = [_load(path)], False
    for segment in [s for s in key.split("/") if s] if key else []:
        nxt = []
        for value in values:
            if segment == "*":
                nxt += list(value.values() if isinstance(value, dict) else value)
                many = True
            elif isinstance(value, list) and "=" in segment:  # [*]field=value[&field=value...]
                every = segment.startswith("*")
                conditions = [c.split("=", 1) for c in segment.lstrip("*").split("&")]
                hits = [v for v in value if isinstance(v, dict) and all(str(v.get(f)) == w for f, w in conditions)]
                if (not hits and not every) or (len(hits) > 1 and not every):
                    raise ValueError(f"{file}#{key}: {len(hits)} elements with {segment.lstrip('*')}"
                                     + (" (prefix it with * to take them all)" if len(hits) > 1 else ""))
                nxt += hits
                many = many or every
            elif isinstance(value, list):
                nxt.append(value[int(segment)])
            elif isinstance(value, dict) and segment in value:
                nxt.append(value[segment])
            else:
                raise ValueError(f"{file}#{key}: no {segment!r}")
        values = nxt
    return values if many else values[0]


def evaluate(expression: str, page: Path) -> float:
    """The value of a binding's expression (arithmetic over [FILE#KEY] terms)."""
    names: dict[str, object] = {}

    def term(m: re.Match) -> str:
        name = f"_t{len(names)}"
        names[name] = resolve(m.group("file").strip(), m.group("key").strip(), page)
        return name

    tree = ast.parse(_TERM.sub(term, expression), mode="eval")
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Load, ast.Call, ast.List,
               ast.Tuple, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)
    for node in ast.walk(tree):
        if not isinstance(node, allowed):
            raise ValueError(f"{expression!r}: {type(node).__name__} is not allowed in a binding")
        if isinstance(node, ast.Name) and node.id not in names and node.id not in _FUNCS:
            raise ValueError(f"{expression!r}: unknown name {node.id!r}")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _FUNCS):
            raise ValueError(f"{expression!r}: only {sorted(_FUNCS)} may be called")
    value = eval(compile(tree, "<binding>", "eval"), {"__builtins__": {}}, {**_FUNCS, **names})  # noqa: S307
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{expression!r} gives {value!r}, not a number")
    return float(value)


def printed_value(figure: str) -> tuple[float, int]:
    """(number, decimals) of a figure as printed: '1,795' -> (1795.0, 0), '-3.5%' -> (-3.5, 1)."""
    number = figure.rstrip("%").replace(",", "").replace("−", "-")
    decimals = len(number.split(".")[1]) if "." in number else 0
    return float(number), decimals


def matches(figure: str, value: float) -> bool:
    """Does the figure print the value at its own precision?"""
    printed, decimals = printed_value(figure)
    return math.isfinite(value) and abs(value - printed) <= 0.5 * 10 ** -decimals * (1 + 1e-9) + 1e-12


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def problems(path: Path, text: str | None = None) -> list[str]:
    """Everything wrong with one page's prose figures and read mark (empty when the page is sound).

    `text`: check this text as if it were the page at `path` (its bindings resolve beside `path`)."""
    text = path.read_text() if text is None else text
    mark_, bound, out = parse_bindings(text)
    used = figures_in(text)
    counts = {f: used.count(f) for f in used}
    for figure, n in counts.items():
        each = [f"{figure}#{i}" for i in range(1, n + 1)]
        if figure not in bound and not all(e in bound for e in each):
            out.append(f"prose quotes {figure} with no binding" if not any(e in bound for e in each) else
                       f"prose quotes {figure} {n} times: bind {', '.join(e for e in each if e not in bound)} too")
    for name, rhs in bound.items():
        figure, _, nth = name.partition("#")
        if figure not in counts or (nth and (not nth.isdigit() or int(nth) > counts[figure])):
            out.append(f"binding for {name}, which the prose no longer quotes")
        if rhs.startswith(": "):
            continue
        try:
            value = evaluate(rhs, path)
        except (ValueError, KeyError, IndexError, TypeError, ZeroDivisionError, SyntaxError) as exc:
            out.append(f"{name}: {exc}")
            continue
        if not matches(figure, value):
            out.append(f"prose says {name}, its source says {value:.6g} ({rhs})")
    if find_blocks(text):
        now = blocks_hash(text)
        if mark_ is None:
            out.append(f"no 'read: HASH' mark: read the prose against the generated blocks, then "
                       f"python -m experiments.lab_docs --mark-read {_shown(path)}")
        elif mark_ != now:
            out.append(f"generated blocks changed since the prose was read against them (read: {mark_}, blocks "
                       f"now {now}): re-read the prose, fix it, then python -m experiments.lab_docs --mark-read "
                       f"{_shown(path)}")
    return out


def suggest(path: Path, sources: list[Path]) -> list[str]:
    """Candidate binding lines for the page's unbound figures: every JSON leaf of `sources` that prints as the
    figure. An aid for writing bindings by hand, never a check: read each candidate's key before keeping it
    (with a few thousand values, a leaf that matches by coincidence is likely)."""
    text = path.read_text()
    _, bound, _ = parse_bindings(text)
    lines = []
    leaves: list[tuple[str, float]] = []

    def walk(value, key: str, file: str):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}/{k}" if key else str(k), file)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{key}/{i}", file)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            leaves.append((f"[{file}#{key}]", float(value)))

    for source in sources:
        shown = str(source.resolve().relative_to(REPO_ROOT))
        walk(json.loads(source.read_text()), "", shown)
    for figure in dict.fromkeys(figures_in(text)):
        if figure in bound:
            continue
        hits = [t for t, v in leaves if matches(figure, v) or matches(figure, 100 * v)]
        lines.append(f"{figure} = {hits[0]}" if len(hits) == 1 else
                     f"# {figure}: {len(hits)} candidates: " + "; ".join(hits[:6]))
    return lines
