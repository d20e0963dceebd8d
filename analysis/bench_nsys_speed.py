"""How long summarising a large nsys SQLite export takes (a speed benchmark, not a test).

Writes a schema-faithful synthetic export of about --size-mb MB (analysis.synthetic_nsys)
into a scratch folder outside git, then times the summaries a first look at a real
trace needs: kernels per name, NVTX ranges per name, gaps between kernels per stream,
copies per kind, and NVTX ranges -> phase shares. The target is seconds per summary
on a gigabyte. Run:

    .venv/bin/python -m analysis.bench_nsys_speed --size-mb 1000

The result (with provenance) goes to results/reference/nsys_speed/nsys_speed_<size>mb.json. It also
times how the kernels' integer columns leave SQLite: nsys_sqlite.int_columns (one
group_concat string per chunk) against fetching the same columns row by row
(--no-row-fetch skips that). A run that writes the default 1000 MB result also
re-renders the "Speed on a 1 GB export" section of analysis/README.md; `--render-only`
does just that from the committed result, measuring nothing.
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

from experiments.common.provenance import REPO_ROOT
from experiments.common.docs import fill_file
from experiments.common.results import read_result, write_result
from experiments.common.timing import time_repeats

from analysis import nsys_sqlite, phases, synthetic_nsys

BENCHMARK_VERSION = 1
DEFAULT_SCRATCH = REPO_ROOT / "build" / "analysis"  # /build/ is gitignored
HERE = Path(__file__).resolve().parent
DEFAULT_SIZE_MB = 1000.0
README = HERE / "README.md"
# generated results live under results/, outside the source package
RESULTS_DIR = REPO_ROOT / "results" / "reference" / "nsys_speed"
BLOCK = "nsys-speed"  # the README's generated block (experiments.common.docs markers)
# the kernel columns stream_gap_summary reads (with int_columns' NULL -> -1 convention)
GAP_COLUMNS = {"device_id": '"deviceId"', "stream_id": '"streamId"', "start": "start", "end": '"end"'}


def result_path(size_mb: float) -> Path:
    return RESULTS_DIR / f"nsys_speed_{int(size_mb)}mb.json"


DEFAULT_RESULT = result_path(DEFAULT_SIZE_MB)


def table_rows(path: Path) -> dict[str, int]:
    with nsys_sqlite.connect(path) as conn:
        return {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0]
                for t in nsys_sqlite.tables(conn)}


def summaries(path: Path) -> dict:
    """name -> zero-argument callable producing that summary from the export."""
    return {
        "kernels_by_name": lambda: nsys_sqlite.kernel_summary(path),
        "nvtx_by_name": lambda: nsys_sqlite.nvtx_summary(path),
        "stream_gaps": lambda: nsys_sqlite.stream_gap_summary(path),
        "memcpy_by_kind": lambda: nsys_sqlite.memcpy_summary(path),
        "nvtx_phase_shares": lambda: phases.phase_shares(nsys_sqlite.nvtx_ranges(path)),
    }


def fetch_rows_columns(conn: sqlite3.Connection, table: str, exprs: dict[str, str], *,
                       chunk_rows: int = 1_000_000) -> dict[str, np.ndarray]:
    """The same arrays as nsys_sqlite.int_columns, fetched the plain way: rows of Python ints."""
    select = ", ".join(f"COALESCE(CAST({e} AS INTEGER), -1)" for e in exprs.values())
    cur = conn.execute(f'SELECT {select} FROM "{table}" ORDER BY rowid')
    parts = [np.array(rows, dtype=np.int64).reshape(-1, len(exprs))
             for rows in iter(lambda: cur.fetchmany(chunk_rows), [])]
    a = np.concatenate(parts) if parts else np.zeros((0, len(exprs)), dtype=np.int64)
    return {k: a[:, i] for i, k in enumerate(exprs)}


def column_fetch(path: Path) -> dict:
    """name -> callable for the group_concat-vs-rows comparison on the kernel table."""
    def via(fn):
        def call():
            with nsys_sqlite.connect(path) as conn:
                return fn(conn, nsys_sqlite.KERNEL_TABLE, GAP_COLUMNS)
        return call
    return {"group_concat": via(nsys_sqlite.int_columns), "fetch_rows": via(fetch_rows_columns)}


def run(size_mb: float, scratch: Path, repeats: int, keep: bool, row_fetch: bool = True) -> dict:
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / f"synthetic_{int(size_mb)}mb.sqlite"
    t0 = time.perf_counter()
    info = synthetic_nsys.write_export(path, size_mb=size_mb)
    gen_s = time.perf_counter() - t0
    print(f"wrote {path} ({info['bytes'] / 1e6:.0f} MB, {info['steps']} steps) in {gen_s:.1f} s", flush=True)
    rows = table_rows(path)
    print("rows: " + ", ".join(f"{t}={n}" for t, n in rows.items()), flush=True)
    timings = {}
    for name, fn in summaries(path).items():
        timings[name] = time_repeats(fn, repeats=repeats, warmup=1)
        print(f"{name:>18}: median {timings[name]['median']:.2f} s "
              f"(min {timings[name]['min']:.2f}, max {timings[name]['max']:.2f})", flush=True)
    total = sum(t["median"] for t in timings.values())
    print(f"{'all summaries':>18}: {total:.2f} s", flush=True)
    out = {"file_bytes": info["bytes"], "steps": info["steps"], "rows": rows, "generate_s": gen_s,
           "summaries_s": timings, "all_summaries_median_s": total}
    if row_fetch:
        fns = column_fetch(path)
        a, b = (fn() for fn in fns.values())
        if not all(np.array_equal(a[k], b[k]) for k in GAP_COLUMNS):
            raise RuntimeError("int_columns and the row-by-row fetch disagree")
        del a, b
        fetch = {k: time_repeats(fn, repeats=repeats, warmup=1) for k, fn in fns.items()}
        fetch["speedup_median"] = fetch["fetch_rows"]["median"] / fetch["group_concat"]["median"]
        out["kernel_columns_fetch_s"] = {"table": nsys_sqlite.KERNEL_TABLE, "columns": list(GAP_COLUMNS),
                                         **fetch}
        print(f"{'kernel columns':>18}: group_concat {fetch['group_concat']['median']:.2f} s, "
              f"rows {fetch['fetch_rows']['median']:.2f} s ({fetch['speedup_median']:.1f}x)", flush=True)
    if not keep:
        path.unlink()
    return out


# README section ------------------------------------------------------------------------

SUMMARY_LABELS = {
    "kernels_by_name": "kernels per name (SQL)",
    "nvtx_by_name": "NVTX ranges per name (SQL)",
    "stream_gaps": "gaps between kernels per stream",
    "memcpy_by_kind": "copies per kind (SQL)",
    "nvtx_phase_shares": "all {nvtx} NVTX ranges into pandas + phase shares",
}


def _millions(n: int) -> str:
    return f"{n / 1e6:.1f} M"


def _median_range(t: dict) -> str:
    lo, hi = f"{t['min']:.2f}", f"{t['max']:.2f}"
    return f"{t['median']:.2f} s" + ("" if lo == hi else f" ({lo}-{hi})")


def _command(recorded: str) -> str:
    """provenance.command names the script file; show it as the module invocation."""
    head, _, args = recorded.partition(" ")
    if Path(head).name != "bench_nsys_speed.py":
        return recorded
    return " ".join(filter(None, [".venv/bin/python -m analysis.bench_nsys_speed", args]))


def render(doc: dict, result: Path = DEFAULT_RESULT, readme: Path = README) -> str:
    """The generated body of the README's speed section, from one result document."""
    prov, cfg, res = doc["provenance"], doc["config"], doc["results"]
    m, rows, s = prov["machine"], res["rows"], res["summaries_s"]
    rel = Path(os.path.relpath(Path(result).resolve(), Path(readme).resolve().parent)).as_posix()
    held = [f"{_millions(rows[t])} {what}" for t, what in (
        (nsys_sqlite.KERNEL_TABLE, "kernels"), (nsys_sqlite.RUNTIME_TABLE, "runtime calls"),
        (nsys_sqlite.NVTX_TABLE, "NVTX ranges")) if t in rows]
    held_text = ", ".join(held[:-1]) + (" and " if len(held) > 1 else "") + held[-1] if held else "no rows"
    nvtx = _millions(rows.get(nsys_sqlite.NVTX_TABLE, 0))
    table = ["| summary | median (min-max) |", "| --- | --- |"]
    table += [f"| {SUMMARY_LABELS.get(k, k).format(nvtx=nvtx)} | {_median_range(t)} |" for k, t in s.items()]
    fetch = res.get("kernel_columns_fetch_s")
    if fetch:
        gc, fr = fetch["group_concat"]["median"], fetch["fetch_rows"]["median"]
        faster = (f": {fetch['speedup_median']:.1f}x faster than\nfetching the same"
                  f" {len(fetch['columns'])} columns row by row ({gc:.2f} s vs {fr:.2f} s, medians)")
    else:
        faster = (" rather than as rows\nof Python ints (this result does not time the two;"
                  " newer runs of the benchmark do)")
    slowest = (" it is the\nslowest step, and"
               if max(s, key=lambda k: s[k]["median"]) == "nvtx_phase_shares" else "\n")
    return (
        f"`{_command(prov['command'])}` (result:\n"
        f"`{rel}`, {m['cpu_count']}-core {m['cpu_model']}, 1-minute load average {m['loadavg_1m']:.1f}"
        f" at the end of the run,\n"
        f"{cfg['repeats']} repeats after {cfg['warmup']} warm-up, export in the page cache)."
        f" The synthetic export held\n{held_text}:\n\n"
        + "\n".join(table) + "\n\n"
        "Gaps are computed in numpy from integer columns that SQLite hands over as one\n"
        f"`group_concat` string per chunk (`nsys_sqlite.int_columns`){faster}.\n"
        f"Loading every NVTX range still goes row by row (names are text);{slowest}"
        " real vLLM exports hold far fewer NVTX ranges per GB than kernels.\n")


def write_readme(result: Path = DEFAULT_RESULT, readme: Path = README) -> bool:
    """Re-render the README's speed section from `result`; False (untouched) without markers."""
    return fill_file(readme, {BLOCK: render(read_result(result), result, readme)})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=float, default=DEFAULT_SIZE_MB,
                    help=f"target export size in MB (default {DEFAULT_SIZE_MB:.0f})")
    ap.add_argument("--scratch", type=Path, default=DEFAULT_SCRATCH, help="where the export is written")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per summary (after one warm-up)")
    ap.add_argument("--keep", action="store_true", help="keep the export afterwards")
    ap.add_argument("--no-row-fetch", action="store_true",
                    help="skip timing int_columns against fetching the kernel columns row by row")
    ap.add_argument("--result", type=Path, default=None,
                    help="result JSON (default results/reference/nsys_speed/nsys_speed_<size>mb.json)")
    ap.add_argument("--render-only", action="store_true",
                    help="measure nothing: re-render analysis/README.md's speed section from --result "
                         "(default results/reference/nsys_speed/nsys_speed_1000mb.json)")
    args = ap.parse_args(argv)
    if args.render_only:
        src = args.result or DEFAULT_RESULT
        if not write_readme(src):
            print(f"{README}: no generated block {BLOCK!r} (experiments.common.docs markers)", file=sys.stderr)
            return 1
        print(f"rendered {README} from {src}")
        return 0
    print(f"command: {' '.join(sys.argv)}  sqlite {sqlite3.sqlite_version}", flush=True)
    results = run(args.size_mb, args.scratch, args.repeats, args.keep, row_fetch=not args.no_row_fetch)
    out = args.result or result_path(args.size_mb)
    write_result(out, results, benchmark_version=BENCHMARK_VERSION,
                 config={"size_mb": args.size_mb, "repeats": args.repeats, "warmup": 1,
                         "kernels_per_step": synthetic_nsys.KERNELS_PER_STEP,
                         "sqlite_version": sqlite3.sqlite_version})
    print(f"result: {out}")
    if Path(out).resolve() == DEFAULT_RESULT and write_readme(DEFAULT_RESULT):
        print(f"rendered {README}")  # only the committed default result drives the README
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
