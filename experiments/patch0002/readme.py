"""Render the "Results" section of experiments/patch0002/README.md from committed result files.

    python -m experiments.patch0002.readme [--results results/reference]

Reads the newest complete `prefill-cap` bench and the newest complete sweep
(bench dir with sweep.json) under the results root and writes tables between
the README's result markers. Every figure comes from those files (the table
code is the PR draft's, analysis.report); nothing is typed in.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from analysis import bench_results, report
from experiments.common.readme import replace_between

README = Path(__file__).with_name("README.md")
BEGIN, END = "<!-- results:begin (python -m experiments.patch0002.readme) -->", "<!-- results:end -->"
METRICS = ("short_p90_ttft_ms", "long_p90_ttft_ms", "median_ttft_ms", "median_itl_ms", "p99_itl_ms",
           "output_throughput")


def bench_block(bench: Path) -> str:
    manifest = bench_results.load_manifest(bench)
    table, claims = report.claims_table(bench_results.summary(bench), METRICS)
    verdicts = "\n".join(f"- {c}" for c in claims) or "- none: every difference is within the A/A noise floor."
    return (f"### Bench `prefill-cap` ([{bench.name}]({report.rel(bench)}), "
            f"`make bench PRESET=prefill-cap NO_TRACE=1`)\n\n{report.environment_block(manifest)}\n"
            f"{table}\nVerdicts beyond the noise floor:\n\n{verdicts}\n\n"
            f"![summary](../../{report.rel(bench)}/summary.png)\n")


def sweep_block(bench: Path) -> str:
    sweep = json.loads((bench / "sweep.json").read_text())
    manifest = bench_results.load_manifest(bench)
    rows = ["| point | engine | engine args | repeats | short p90 TTFT ms (median) | output tok/s (median) |",
            "|---|---|---|---|---|---|"]
    for p in sweep["points"]:
        rows.append(f"| {p['name']} | {p['engine']} | `{p['engine_args']}` | {p['repeats']} | "
                    f"{p[sweep['x']]:.1f} | {p[sweep['y']]:.1f} |")
    return (f"### Sweep ([{bench.name}]({report.rel(bench)}), `{manifest['provenance']['command']}`)\n\n"
            f"Workload `{sweep['workload']}` at {sweep['request_rate']} req/s; "
            f"{report.environment_block(manifest)}\n" + "\n".join(rows) +
            f"\n\n![sweep](../../{report.rel(bench)}/sweep.png)\n")


def render(root: Path) -> str:
    # newest set per preset and arrival rate, as in the PR draft
    caps = report.benches_for(("prefill-cap",), root)
    sweeps = [d for d in report.benches_for(("patch0002-sweep",), root) if (d / "sweep.json").exists()]
    parts = [bench_block(caps[-1]) if caps else "No complete `prefill-cap` bench under the results root yet.\n"]
    parts += [sweep_block(d) for d in sweeps] or ["No complete sweep under the results root yet.\n"]
    return "\n".join(parts)


def write(root: Path, readme: Path = README) -> None:
    if not replace_between(readme, BEGIN, END, render(root)):
        raise SystemExit(f"{readme}: result markers missing")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.patch0002.readme", description=__doc__)
    ap.add_argument("--results", type=Path, default=report.REFERENCE_ROOT)
    args = ap.parse_args(argv)
    write(args.results)
    print(f"readme: wrote {report.rel(README)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
