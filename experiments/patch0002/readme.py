"""Render the "Results" section of experiments/patch0002/README.md from committed result files.

    python -m experiments.patch0002.readme [--results results/reference]

Reads the newest complete long_docs comparison (the sweep, or `make bench PRESET=long-docs`)
under the results root and writes, between the README's result markers, every arm side by
side per arrival pattern, the verdicts beyond the A/A noise floor and the sweep plot. The
tables are the PR draft's (analysis.report); nothing is typed in.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis import report
from experiments.bench import store
from experiments.common.docs import fill_file

README = Path(__file__).with_name("README.md")
BLOCK = "results"  # the README's generated block (experiments.common.docs markers)
METRICS = report.COMPARISON_METRICS


def comparison_block(bench: Path) -> str:
    manifest = store.load_manifest(bench)
    _, claims = report.claims_table(store.summary(bench), METRICS)
    verdicts = "\n".join(f"- {c}" for c in claims) or "- none: every difference is within the A/A noise floor."
    plot = f"\n![sweep](../../{report.rel(bench)}/sweep.png)\n" if (bench / "sweep.png").exists() else ""
    return (f"### [{bench.name}]({report.rel(bench)}) (`{manifest['provenance']['command']}`)\n\n"
            f"{report.environment_block(manifest)}\n{report.comparison_section(bench)}\n"
            f"Verdicts beyond the noise floor (each arm against upstream defaults, and the pairs the preset "
            f"names):\n\n{verdicts}\n{plot}")


def render(root: Path) -> str:
    sets = report.benches_for(report.COMPARISON_PRESETS, root)
    if not sets:
        return "No complete long_docs comparison under the results root yet.\n"
    return comparison_block(sets[-1])


def write(root: Path, readme: Path = README) -> None:
    if not fill_file(readme, {BLOCK: render(root)}):
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
