"""The one lab driver: command line, folder layout and README rendering shared by every lab (a, b, c).

    python -m experiments.<group>.<lab> [--quick] [--render-only] [--gpu] [--out-dir DIR]

A lab is `<lab>/README.md` plus `results/` (committed JSON) and `plots/` (PNG drawn from
that JSON). A lab module hands `run_lab` three functions:

- `run_cpu(files, args)` (and `run_gpu(files, args)` where the lab has a GPU half):
  measure and write result files through `files.write`;
- `render(files)`: draw the plots from `files.read` into `files.plots` and return
  `{README block name: Markdown}`.

A full run writes into the lab folder and re-renders the README's generated blocks
(experiments.common.docs markers). `--quick` writes under build/labs/<lab>/ (gitignored)
unless `--out-dir` says otherwise, so a quick check never overwrites a committed
figure; `--render-only` measures nothing and redraws from the result files already there.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from experiments.common.docs import fill_blocks
from experiments.common.provenance import REPO_ROOT
from experiments.common.results import read_result, write_result

QUICK_ROOT = REPO_ROOT / "build" / "labs"


class LabFiles:
    """results/, plots/ and README.md of one lab; results and plots rooted at `out_dir`."""

    def __init__(self, lab_dir: Path, out_dir: Path | None = None, extra_packages: list[str] | None = None):
        self.lab_dir = Path(lab_dir).resolve()
        self.extra_packages = extra_packages  # recorded with the version pins of every result file written
        self.out_dir = Path(out_dir).resolve() if out_dir else self.lab_dir
        self.results = self.out_dir / "results"
        self.plots = self.out_dir / "plots"
        self.readme = self.lab_dir / "README.md"

    @property
    def name(self) -> str:
        return self.lab_dir.name

    @property
    def module(self) -> str:
        """The lab's package name, e.g. experiments.foundations.a1_gil_threads_vs_processes."""
        try:
            return ".".join(self.lab_dir.relative_to(REPO_ROOT).parts)
        except ValueError:  # a lab folder outside the repo (tests)
            return self.lab_dir.name

    @property
    def in_lab_folder(self) -> bool:
        """Only a run into the lab folder itself may rewrite the committed README."""
        return self.out_dir == self.lab_dir

    def result_path(self, stem: str) -> Path:
        return self.results / f"{stem}.json"

    def plot_path(self, stem: str) -> Path:
        self.plots.mkdir(parents=True, exist_ok=True)
        return self.plots / f"{stem}.png"

    def rel(self, path: Path) -> str:
        """Repo-relative name of a file, as it is (or will be) committed in the lab folder.

        Files under out_dir are named by their place in the lab folder, so a README
        rendered from a copy of the results (the docs check) cites the same paths.
        """
        path = Path(path).resolve()
        try:
            path = self.lab_dir / path.relative_to(self.out_dir)
        except ValueError:
            pass
        try:
            return str(path.relative_to(REPO_ROOT))
        except ValueError:
            return str(path)

    def write(self, stem: str, results, *, config: dict, benchmark_version: int = 1,
              extra_packages: list[str] | None = None) -> Path:
        path = write_result(self.result_path(stem), results, config=config, benchmark_version=benchmark_version,
                            extra_packages=extra_packages if extra_packages is not None else self.extra_packages)
        print(f"wrote {self.rel(path)}")
        return path

    def read(self, stem: str) -> dict | None:
        path = self.result_path(stem)
        return read_result(path) if path.exists() else None

    def require(self, stem: str) -> dict:
        """The result file a render cannot do without: a clear error instead of a KeyError later."""
        doc = self.read(stem)
        if doc is None:
            raise SystemExit(f"no result file {self.rel(self.result_path(stem))}: run "
                             f"`python -m {self.module}` (without --render-only) first")
        return doc


def lab_parser(description: str, *, gpu_help: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="small sizes and few repeats; writes under build/labs/<lab>/ unless --out-dir")
    p.add_argument("--render-only", action="store_true",
                   help="measure nothing: redraw plots and the README blocks from the result files there")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="where results/ and plots/ go (default: the lab folder, or build/labs/<lab>/ with --quick)")
    if gpu_help:
        p.add_argument("--gpu", action="store_true", help=gpu_help)
    return p


def files_for(args: argparse.Namespace, lab_dir: Path, extra_packages: list[str] | None = None) -> LabFiles:
    out = args.out_dir
    if out is None and args.quick:
        out = QUICK_ROOT / Path(lab_dir).name
    return LabFiles(lab_dir, out, extra_packages)


def quick_args(**flags) -> argparse.Namespace:
    """The arguments of `--quick` for calling a lab's run_cpu/run_gpu from code (tests, run_gpu_labs)."""
    return argparse.Namespace(**{"quick": True, "render_only": False, "out_dir": None, "gpu": False, **flags})


def render_readme(files: LabFiles, blocks: dict[str, str]) -> None:
    """Write each block's body between its markers in the lab README."""
    files.readme.write_text(fill_blocks(files.readme.read_text(), blocks))
    print(f"rendered {files.rel(files.readme)}")


def run_lab(argv: list[str] | None, *, doc: str, lab_dir: Path,
            run_cpu: Callable[[LabFiles, argparse.Namespace], None],
            render: Callable[[LabFiles], dict[str, str]],
            run_gpu: Callable[[LabFiles, argparse.Namespace], None] | None = None, gpu_help: str | None = None,
            add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
            early_exit: Callable[[argparse.Namespace], int | None] | None = None,
            extra_packages: list[str] | None = None) -> int:
    """Parse, run one half (CPU by default, GPU with --gpu), redraw the plots, render the README.

    add_arguments(parser) adds lab-specific flags; early_exit(args) may return an exit
    code to stop before anything runs (b5's nsys workload, a missing model); extra_packages
    are the packages (beyond the pinned core) whose versions every result file records.
    """
    if (run_gpu is None) != (gpu_help is None):
        raise ValueError("a lab with a GPU half passes both run_gpu and gpu_help")
    p = lab_parser(doc.strip().splitlines()[0], gpu_help=gpu_help)
    if add_arguments:
        add_arguments(p)
    args = p.parse_args(argv)
    if early_exit:
        code = early_exit(args)
        if code is not None:
            return code
    files = files_for(args, lab_dir, extra_packages)
    if not args.render_only:
        # provenance() records sys.argv: make it the command that reproduces this run.
        saved = sys.argv
        sys.argv = [f"python -m {files.module}", *(sys.argv[1:] if argv is None else argv)]
        try:
            (run_gpu if getattr(args, "gpu", False) else run_cpu)(files, args)
        finally:
            sys.argv = saved
    blocks = render(files)
    if files.in_lab_folder:
        render_readme(files, blocks)
    return 0
