"""Recompute the summary of complete bench dirs from their run records with the current aggregation.

    python -m experiments.bench.resummarize results/reference/cpu/<bench_id> [...]

Only the derived files change (summary.json/.md/.png); the run records, the measurements, are
read, never written. The manifest records the aggregation version and who recomputed it, when.
Use it after a change to experiments.bench.aggregate (bump AGGREGATION_VERSION), then `make report`.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from experiments.bench import store
from experiments.bench import aggregate
from experiments.bench.runner import write_summary
from experiments.common.provenance import git_state
from experiments.common.results import write_json_atomic


def resummarize(bench_dir: Path, argv: list[str], repo_state: dict | None = None,
                same_schedule_engines: tuple[str, ...] = ()) -> list[dict]:
    """`repo_state`: git state taken before the first dir is rewritten (its own writes dirty the tree).
    `same_schedule_engines`: replay the arms of these engines for their same-schedule groups first (a set
    measured before the bench did it itself; only engines unchanged since it ran: the baseline engine is
    pristine 0.32.0, a patched arm of an older series would replay today's series)."""
    manifest = store.load_manifest(bench_dir)  # refuses incomplete benches
    runs = store.load_runs(bench_dir)
    if same_schedule_engines:
        from experiments.sim import same_schedule

        cfg = manifest["config"]
        cfg["same_schedule"] = same_schedule.for_bench(cfg, engines=same_schedule_engines)
        print(f"resummarize: {bench_dir.name}: same schedule: {same_schedule.describe(cfg['same_schedule'])}")
    summary = write_summary(bench_dir, runs, manifest["config"], source=f"{bench_dir}/summary.json")
    manifest["aggregation_version"] = aggregate.AGGREGATION_VERSION
    manifest["summary_recomputed"] = {"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                      **(repo_state or git_state()), "command": " ".join(argv)}
    write_json_atomic(bench_dir / "manifest.json", manifest)
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m experiments.bench.resummarize", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench_dirs", nargs="+", type=Path)
    ap.add_argument("--same-schedule", choices=("baseline", "all"),
                    help="replay the arms (of the baseline engine only, or all) for their same-schedule groups "
                         "and pool those groups into the floors")
    args = ap.parse_args(argv)
    engines = {"baseline": ("baseline",), "all": ("baseline", "patched"), None: ()}[args.same_schedule]
    state = git_state()
    for d in args.bench_dirs:
        summary = resummarize(d, ["python", "-m", "experiments.bench.resummarize", *(argv or [])], state, engines)
        print(f"resummarize: {d}: {len(summary)} rows (aggregation version {aggregate.AGGREGATION_VERSION})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
