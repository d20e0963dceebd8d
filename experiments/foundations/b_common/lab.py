"""Plumbing every b-lab shares: the command line, where files go, the generated README block.

Full runs write into the lab folder (committed results/ and plots/); --quick
runs go to build/foundations/<lab>/ unless --out-dir says otherwise, so a quick
check never overwrites a committed result.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from experiments.common.docs import fill_blocks
from experiments.common.fmt import fixed as fmt
from experiments.common.fmt import machine_line  # noqa: F401 - the b-labs' names for them
from experiments.common.fmt import md_table as fmt_table
from experiments.common.fmt import spread_paren as spread  # noqa: F401
from experiments.common.provenance import REPO_ROOT
from experiments.common.results import read_result, write_result

EXTRA_PACKAGES = ["numba", "triton", "numba-cuda", "cupy-cuda12x"]


class LabFiles:
    """results/, plots/ and README.md of one lab, rooted at `out_dir`."""

    def __init__(self, lab_dir: Path, out_dir: Path | None = None):
        self.lab_dir = Path(lab_dir)
        self.out_dir = Path(out_dir) if out_dir else self.lab_dir
        self.results = self.out_dir / "results"
        self.plots = self.out_dir / "plots"
        self.readme = self.lab_dir / "README.md"

    @property
    def name(self) -> str:
        return self.lab_dir.name

    @property
    def module(self) -> str:
        return f"experiments.foundations.{self.name}"

    def result_path(self, stem: str) -> Path:
        return self.results / f"{stem}.json"

    def plot_path(self, stem: str) -> Path:
        return self.plots / f"{stem}.png"

    def rel(self, path: Path) -> str:
        """Repo-relative name of a file, as it is (or will be) committed in the lab folder.

        Files under out_dir are named by their place in the lab folder, so a README
        rendered from a copy of the results (the consistency test) cites the same paths.
        """
        path = Path(path).resolve()
        try:
            path = self.lab_dir.resolve() / path.relative_to(self.out_dir.resolve())
        except ValueError:
            pass
        try:
            return str(path.relative_to(REPO_ROOT))
        except ValueError:
            return str(path)

    def write(self, stem: str, results, *, config: dict, benchmark_version: int = 1) -> Path:
        path = write_result(
            self.result_path(stem),
            results,
            config=config,
            benchmark_version=benchmark_version,
            extra_packages=EXTRA_PACKAGES,
        )
        print(f"wrote {self.rel(path)}")
        return path

    def read(self, stem: str) -> dict | None:
        path = self.result_path(stem)
        return read_result(path) if path.exists() else None


def lab_parser(description: str, *, gpu_help: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and few repeats (seconds); writes under build/ unless --out-dir",
    )
    p.add_argument("--gpu", action="store_true", help=gpu_help)
    p.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: redraw plots and the README block from the committed results",
    )
    p.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="where results/ and plots/ go (default: the lab folder, or build/ with --quick)",
    )
    return p


def files_for(args, lab_dir: Path) -> LabFiles:
    out = args.out_dir
    if out is None and args.quick:
        out = REPO_ROOT / "build" / "foundations" / Path(lab_dir).name
    return LabFiles(lab_dir, out)


def skip(reason: str, what: str) -> None:
    """The one line a lab prints when a half cannot run here."""
    print(f"SKIP {what}: {reason}")


# ---------------------------------------------------------------- README rendering
def render_readme(files: LabFiles, blocks: dict[str, str]) -> None:
    """Write each block's body between its experiments.common.docs markers in the lab README."""
    files.readme.write_text(fill_blocks(files.readme.read_text(), blocks))
    print(f"rendered {files.rel(files.readme)}")


def md_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    return fmt_table(headers, rows, cell=fmt)


def gpu_not_measured(module: str) -> str:
    return (
        f"GPU results: not yet measured; run `python -m {module} --gpu` on an NVIDIA machine "
        f"(or `python -m experiments.foundations.b_common.run_gpu_labs` for every lab)."
    )


def lab_main(
    argv: list[str] | None,
    *,
    doc: str,
    lab_dir: Path,
    gpu_help: str,
    run_cpu,
    run_gpu,
    render,
    add_arguments=None,
    early_exit=None,
) -> int:
    """The shared entry point: parse, run one half (CPU by default, GPU with --gpu), redraw, render README.

    add_arguments(parser) adds lab-specific flags; early_exit(args) may return an
    exit code to stop before anything runs (b5's nsys workload).
    """
    p = lab_parser(doc.strip().splitlines()[0], gpu_help=gpu_help)
    if add_arguments:
        add_arguments(p)
    args = p.parse_args(argv)
    if early_exit:
        code = early_exit(args)
        if code is not None:
            return code
    files = files_for(args, lab_dir)
    if not args.render_only:
        # provenance() records sys.argv: make it the command that reproduces this run.
        saved = sys.argv
        sys.argv = [f"python -m {files.module}", *(sys.argv[1:] if argv is None else argv)]
        try:
            (run_gpu if args.gpu else run_cpu)(files, args.quick)
        finally:
            sys.argv = saved
    blocks = render(files)
    if files.out_dir == files.lab_dir:
        render_readme(files, blocks)
    return 0
