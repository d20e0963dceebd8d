"""Lab plumbing: where results go, the common CLI flags, README tables rendered from results.

A full run writes into the lab's committed `results/` folder and re-renders the
README's result tables; a `--quick` run writes under the gitignored `build/` so
it never overwrites a committed figure.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from experiments.common.docs import fill_blocks
from experiments.common.fmt import machine_short as machine_line  # noqa: F401 - the a-labs' names for them
from experiments.common.fmt import md_table  # noqa: F401
from experiments.common.fmt import sig as fmt  # noqa: F401
from experiments.common.provenance import REPO_ROOT


def lab_dir(module_file: str) -> Path:
    return Path(module_file).resolve().parent


def default_out_dir(module_file: str, quick: bool) -> Path:
    folder = lab_dir(module_file)
    if quick:
        return REPO_ROOT / "build" / "foundations" / folder.name / "quick"
    return folder / "results"


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small preset (seconds); writes under build/ unless --out-dir is given")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where result JSON and PNG files go (default: the lab's results/ folder, "
                             "or build/foundations/<lab>/quick with --quick)")
    parser.add_argument("--no-readme", action="store_true",
                        help="do not re-render the README's result tables")
    parser.add_argument("--render-only", action="store_true",
                        help="measure nothing: redraw the plots and README tables from the result file already there")
    return parser


def resolve_out_dir(args: argparse.Namespace, module_file: str) -> Path:
    out = args.out_dir if args.out_dir is not None else default_out_dir(module_file, args.quick)
    out.mkdir(parents=True, exist_ok=True)
    return out


def should_render_readme(args: argparse.Namespace, module_file: str, out_dir: Path) -> bool:
    """Only a full run into the committed results folder may rewrite the README."""
    return (not args.no_readme and not args.quick
            and out_dir.resolve() == (lab_dir(module_file) / "results").resolve())


def rel(path: Path) -> str:
    """Path relative to the repo root, as cited in READMEs and plot footers."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def render_readme_block(readme: Path, name: str, markdown: str) -> None:
    """Replace the body of the generated block `name` in readme (experiments.common.docs markers)."""
    readme.write_text(fill_blocks(readme.read_text(), {name: markdown}))


def publish(args: argparse.Namespace, module_file: str, out: Path, result_name: str, measure: Callable[[], dict], *,
            config: dict, benchmark_version: int, plots: dict, readme_block: str, readme_tables,
            extra_packages: list[str] | None = None) -> dict:
    """Measure and write the result file, draw each plot from it, and (full runs only) re-render the README.

    Plots and tables read the file just written, not the in-memory results, so
    what the README shows is exactly what the committed JSON holds. With
    --render-only nothing is measured: the existing result file is redrawn.
    """
    from experiments.common.results import read_result, write_result

    path = out / result_name
    if args.render_only:
        if not path.exists():
            raise SystemExit(f"--render-only: no result file {rel(path)}; run the lab without it first")
    else:
        path = write_result(path, measure(), config=config, benchmark_version=benchmark_version,
                            extra_packages=extra_packages)
    doc = read_result(path)
    for filename, draw in plots.items():
        draw(doc, out / filename, rel(path))
    if should_render_readme(args, module_file, out):
        render_readme_block(lab_dir(module_file) / "README.md", readme_block, readme_tables(doc))
    print(f"{'rendered from' if args.render_only else 'wrote'} {rel(path)}: {', '.join(plots)} in {rel(out)}")
    return doc
