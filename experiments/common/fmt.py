"""How the labs write numbers, tables, spreads and the machine line in generated README blocks: one module.

Each function here is the only definition of its format; the labs (a-labs
directly, b_common.lab and the c-lab reports under the names their labs use)
import it. Two number styles exist because the committed READMEs use both and their
figures must not change when only the code moves: `sig` (week 1: "0.0051",
"1,442") and `fixed` (week 2: "0.00510", "1,442", "2.68e+07").
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence


def sig(x: float | int | None, digits: int = 3) -> str:
    """Compact number: `digits` significant digits, thousands without exponent, ints as they are."""
    if x is None:
        return "-"
    if isinstance(x, int):
        return str(x)
    if x != x:  # NaN
        return "nan"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def fixed(x, digits: int = 3) -> str:
    """`digits` significant digits written out in fixed point (exponent only beyond 1e7 or below 1e-4)."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int) and abs(x) < 10**7:
        return f"{x:,}"
    x = float(x)
    if math.isnan(x):
        return "nan"
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    if mag >= 7 or mag < -4:
        return f"{x:.{digits - 1}e}"
    decimals = max(digits - 1 - mag, 0)
    return f"{x:,.{decimals}f}"


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]], cell: Callable[[object], str] = str) -> str:
    """A Markdown table; `cell` turns each non-string value into text (strings are kept as they are)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(v if isinstance(v, str) else cell(v) for v in row) + " |")
    return "\n".join(lines)


def spread_paren(summary: dict, scale: float = 1.0, digits: int = 3) -> str:
    """'median (min-max, n=N)' of a stats.summarize() dict."""
    return (f"{fixed(summary['median'] * scale, digits)} ({fixed(summary['min'] * scale, digits)}-"
            f"{fixed(summary['max'] * scale, digits)}, n={summary['n']})")


def range_brackets(a: dict, digits: int = 0, pct: bool = False) -> str:
    """'median [min-max]' of an across-repeats dict (one figure when min == max; '-' when there is none)."""
    if a["median"] is None:
        return "-"
    f = (lambda v: f"{100 * v:.{digits}f}%") if pct else (lambda v: f"{v:,.{digits}f}")
    if a["min"] == a["max"]:
        return f(a["median"])
    return f"{f(a['median'])} [{f(a['min'])}-{f(a['max'])}]"


def bench_value(x: float | None, pct: bool = False) -> str:
    """The bench's figures (summary tables, PR drafts, README reference figures): '1,442.1', '0.0512',
    a delta as '+3.2%'; '-' for none."""
    if x is None:
        return "-"
    if pct:
        return f"{x * 100:+.1f}%"
    return f"{x:,.1f}" if abs(x) >= 10 else f"{x:.3g}"


def bench_range(s: dict) -> str:
    """'median [min, max]' of a bench variant's summary."""
    return f"{bench_value(s['median'])} [{bench_value(s['min'])}, {bench_value(s['max'])}]"


def bench_ci(ci) -> str:
    """A delta's confidence interval, '[-1.2%, +3.4%]'; '-' for none."""
    return "-" if not ci else f"[{bench_value(ci[0], pct=True)}, {bench_value(ci[1], pct=True)}]"


def machine_short(doc: dict) -> str:
    """Where and when a result file was measured, as the week-1 labs write it after 'Measured on:'."""
    prov = doc["provenance"]
    m = prov["machine"]
    sha = (prov.get("git_sha") or "no-commit")[:10]
    dirty = " (dirty)" if prov.get("git_dirty") else ""
    return (f"{m['cpu_model']}, {m['cpu_count']} cores, load average {m['loadavg_1m']:.2f} at start, "
            f"Python {m['python']}, git {sha}{dirty}, {prov['utc']}")


def machine_line(doc: dict) -> str:
    """'Machine: ...' sentence with GPU, load, git state, time and the command (week-2 labs)."""
    prov = doc["provenance"]
    m = prov["machine"]
    gpu = m.get("gpu_model") or "no GPU"
    sha = (prov.get("git_sha") or "uncommitted")[:10] + ("+dirty" if prov.get("git_dirty") else "")
    return (f"Machine: {m['cpu_model']} ({m['cpu_count']} cores), {gpu}; load average at start "
            f"{fixed(m.get('loadavg_1m'), 2)}; git {sha}; {prov['utc']}; command `{prov['command']}`.")
