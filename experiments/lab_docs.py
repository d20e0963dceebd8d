"""Every page with generated blocks (labs, notes, the product's READMEs), every page whose hand-written
prose quotes figures, and the command that renders or checks them all.

    python -m experiments.lab_docs            # re-render every block from the committed result files
    python -m experiments.lab_docs --check    # write nothing; exit 1 naming every stale block, every prose
                                              # figure not bound to its source value, every page whose blocks
                                              # changed since its prose was read (make docs-check)
    python -m experiments.lab_docs --mark-read PAGE...  # after re-reading PAGE's prose against its blocks
    python -m experiments.lab_docs --suggest PAGE FILE.json...  # candidate bindings to review by hand

Each page is a hand-written Markdown file plus the blocks its lab's render(files)
functions make from its result JSON (experiments.common.lab; the marker form and
the two pure functions are in experiments.common.docs). The renders draw their
plots into a temporary copy of the results: plots are redrawn by each lab's
--render-only, not here. How prose figures are bound: experiments.common.figures.

Adding a page: a page with generated blocks goes into LABS or product_pages(); any Markdown page with
hand-written prose is checked once it is neither GENERATED_MARKDOWN nor NOT_YET_BOUND (prose_pages()).
To bind a page listed in NOT_YET_BOUND: delete its line there, run `--check` to see its unbound figures,
write the page's `<!-- figures` comment (`--suggest PAGE FILE.json...` lists candidates: read each
key before keeping it), re-read the prose against its blocks and run `--mark-read PAGE`.
"""
from __future__ import annotations

import argparse
import contextlib
import fnmatch
import importlib
import io
import os
import shutil
import tempfile
from pathlib import Path

from experiments.common import figures
from experiments.common.docs import Page, run
from experiments.common.lab import LabFiles
from experiments.common.provenance import REPO_ROOT
from experiments.common.results import read_result

FOUNDATIONS = REPO_ROOT / "experiments" / "foundations"
VLLM_LABS = REPO_ROOT / "experiments" / "vllm"
# lab folder -> the modules whose render(files) fill its README's blocks (experiments.common.lab)
LABS = {
    FOUNDATIONS / "a1_gil_threads_vs_processes": ["lab"],
    FOUNDATIONS / "a2_producer_consumer_queues": ["lab"],
    FOUNDATIONS / "a3_read_vs_mmap": ["lab"],
    FOUNDATIONS / "a4_mock_inference_service": ["lab"],
    FOUNDATIONS / "a5_latency_throughput_profiling": ["lab"],
    FOUNDATIONS / "b1_gpu_structure": ["structure"],
    FOUNDATIONS / "b2_warp_divergence": ["divergence"],
    FOUNDATIONS / "b3_memory_bandwidth_coalescing": ["bandwidth"],
    FOUNDATIONS / "b4_streams_async_copy": ["streams"],
    FOUNDATIONS / "b5_launch_overhead_trace": ["trace"],
    VLLM_LABS / "c1_prefill_decode_batching": ["lab"],
    VLLM_LABS / "c2_paged_kv_cache": ["lab"],
    VLLM_LABS / "c3_mixed_scheduling": ["lab", "saturating", "sim_sweep"],
    VLLM_LABS / "c4_attention_graphs_quant": ["lab"],
    VLLM_LABS / "c5_speculative_decoding": ["spec_decoding", "phases"],
}
# Markdown written wholly by code (bench summaries, trace READMEs, copies of drafts inside result sets):
# no hand-written prose, so nothing to bind; checked by the code that writes them.
GENERATED_MARKDOWN = (
    "results/*/summary.md", "results/*/pr_draft/*.md", "results/reference/sim/served/breakdown.md",
    "results/reference/sim/validation/*.md", "nsys_traces/cost/*.md", "nsys_traces/*-*/README.md",
    "nsys_traces/*/bench/*/summary.md", "results/reference/sim/0002-modes/*modes.md",
    # the PR drafts: written whole by analysis/report.py from result files (`make report`)
    "docs/pr_draft/PR_*.md",
)
# Hand-written pages whose figures are not bound yet: being rewritten by other branches when this check
# came in; bind them after merging (see the module docstring) and delete their lines here.
NOT_YET_BOUND: tuple[str, ...] = ()
_NOT_PAGES = {"vllm", "build", ".venv", ".git", "node_modules", "__pycache__", ".pytest_cache"}  # at the top


def lab_page(folder: Path, modules: list[str]) -> Page:
    def render() -> dict[str, str]:
        package = ".".join(folder.relative_to(REPO_ROOT).parts)
        blocks: dict[str, str] = {}
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
            # the plots each render draws land in the copy, not in the lab
            if (folder / "results").exists():
                shutil.copytree(folder / "results", Path(tmp) / "results")
            for module in modules:
                blocks.update(importlib.import_module(f"{package}.{module}").render(LabFiles(folder, Path(tmp))))
        return blocks

    return Page(folder / "README.md", render)


def request_path_note_page() -> Page:
    from experiments.foundations.a_common import request_path_note as note

    def render() -> dict[str, str]:
        return {"request-path-figures": note.render({k: read_result(p) for k, p in note.FILES.items()})}

    return Page(note.NOTE, render)


def product_pages() -> list[Page]:
    """The product's pages with generated blocks (rendered by make report / make sim, checked here too)."""
    from analysis import bench_nsys_speed, readme_figures, report
    from experiments.patch0002 import readme as patch0002
    from experiments.sim import report as sim
    from tools import train_tiny_model

    model = train_tiny_model.DEFAULT_OUT
    return [
        Page(readme_figures.README, lambda: {readme_figures.BLOCK: readme_figures.render(report.REFERENCE_ROOT)}),
        Page(bench_nsys_speed.README, lambda: {bench_nsys_speed.BLOCK: bench_nsys_speed.render(
            read_result(bench_nsys_speed.DEFAULT_RESULT))}),
        Page(sim.README, lambda: {sim.BLOCK: sim.render()}),
        Page(sim.PACKAGE_README, lambda: {sim.PACKAGE_BLOCK: sim.render_package_summary()}),
        Page(patch0002.README, lambda: {patch0002.BLOCK: patch0002.render(REPO_ROOT / "results")}),
        Page(model / "README.md", lambda: {train_tiny_model.README_BLOCK: train_tiny_model.readme_figures(model)}),
    ]


def pages() -> list[Page]:
    return ([lab_page(folder, modules) for folder, modules in LABS.items()] + [request_path_note_page()]
            + product_pages())


def markdown_pages(root: Path = REPO_ROOT) -> list[Path]:
    """Every Markdown file of the repository outside vLLM's tree, builds and environments."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not (d in _NOT_PAGES and (Path(folder) == root or d.startswith("."))))
        found += [Path(folder) / f for f in sorted(files) if f.endswith(".md")]
    return found


def _listed(path: Path, patterns) -> bool:
    rel = path.relative_to(REPO_ROOT).as_posix()
    return any(fnmatch.fnmatchcase(rel, p) for p in patterns)  # "*" also matches "/": any depth


def prose_pages() -> list[Path]:
    """Pages whose hand-written prose is checked: every Markdown page but generated and not-yet-bound ones."""
    return [p for p in markdown_pages() if not _listed(p, GENERATED_MARKDOWN) and not _listed(p, NOT_YET_BOUND)]


def figure_problems(paths: list[Path] | None = None) -> list[str]:
    return [f"{p.relative_to(REPO_ROOT)}: {problem}" for p in (paths or prose_pages()) for problem in
            figures.problems(p)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if any generated block is stale, "
                    "any prose figure is not bound to its value, or any page's blocks changed since its prose was read")
    ap.add_argument("--mark-read", nargs="+", type=Path, metavar="PAGE",
                    help="record that PAGE's prose has been re-read against its current generated blocks")
    ap.add_argument("--suggest", nargs="+", type=Path, metavar=("PAGE", "FILE"),
                    help="print candidate binding lines for PAGE's unbound figures from the JSON FILEs (review each)")
    args = ap.parse_args(argv)
    named = [*(args.mark_read or []), *(args.suggest or [])]
    missing = [str(p) for p in named if not p.is_file()]
    if missing:
        ap.error(f"no such file: {', '.join(missing)}")
    if args.mark_read:
        for page in args.mark_read:
            print(f"{page}: read: {figures.mark(page.resolve())}")
        return 0
    if args.suggest:
        print("\n".join(figures.suggest(args.suggest[0].resolve(), [p.resolve() for p in args.suggest[1:]])))
        return 0
    code = run(pages(), check=args.check, root=REPO_ROOT)
    if not args.check:  # a re-render that changed a page's figures: its prose must be re-read before the check passes
        unread = [p for p in figure_problems() if "changed since the prose was read" in p]
        if unread:
            print("re-read the prose of these pages against their new blocks, then --mark-read them:\n  "
                  + "\n  ".join(sorted({u.split(":")[0] for u in unread})))
    if args.check:
        bad = figure_problems()
        if bad:
            print("prose figures check failed (see experiments/common/figures.py):\n  " + "\n  ".join(bad))
            return 1
        if code == 0:
            print(f"all generated blocks of {len(pages())} pages are up to date; the prose figures of "
                  f"{len(prose_pages())} pages are bound to their sources")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
