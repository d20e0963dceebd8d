"""How long summarising a large nsys SQLite export takes (a speed benchmark, not a test).

Writes a schema-faithful synthetic export of about --size-mb MB (analysis.synthetic_nsys)
into a scratch folder outside git, then times the summaries a first look at a real
trace needs: kernels per name, NVTX ranges per name, gaps between kernels per stream,
copies per kind, and NVTX ranges -> phase shares. The target is seconds per summary
on a gigabyte. Run:

    .venv/bin/python -m analysis.bench_nsys_speed --size-mb 1000

The result (with provenance) goes to analysis/results/nsys_speed_<size>mb.json.
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from pathlib import Path

from experiments.common.provenance import REPO_ROOT
from experiments.common.results import write_result
from experiments.common.timing import time_repeats

from analysis import nsys_sqlite, phases, synthetic_nsys

BENCHMARK_VERSION = 1
DEFAULT_SCRATCH = REPO_ROOT / "build" / "analysis"  # /build/ is gitignored


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


def run(size_mb: float, scratch: Path, repeats: int, keep: bool) -> dict:
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
    if not keep:
        path.unlink()
    return {"file_bytes": info["bytes"], "steps": info["steps"], "rows": rows, "generate_s": gen_s,
            "summaries_s": timings, "all_summaries_median_s": total}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=float, default=1000.0, help="target export size in MB (default 1000)")
    ap.add_argument("--scratch", type=Path, default=DEFAULT_SCRATCH, help="where the export is written")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per summary (after one warm-up)")
    ap.add_argument("--keep", action="store_true", help="keep the export afterwards")
    ap.add_argument("--result", type=Path, default=None,
                    help="result JSON (default analysis/results/nsys_speed_<size>mb.json)")
    args = ap.parse_args(argv)
    print(f"command: {' '.join(sys.argv)}  sqlite {sqlite3.sqlite_version}", flush=True)
    results = run(args.size_mb, args.scratch, args.repeats, args.keep)
    out = args.result or Path(__file__).resolve().parent / "results" / f"nsys_speed_{int(args.size_mb)}mb.json"
    write_result(out, results, benchmark_version=BENCHMARK_VERSION,
                 config={"size_mb": args.size_mb, "repeats": args.repeats, "warmup": 1,
                         "kernels_per_step": synthetic_nsys.KERNELS_PER_STEP,
                         "sqlite_version": sqlite3.sqlite_version})
    print(f"result: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
