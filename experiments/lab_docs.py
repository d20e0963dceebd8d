"""Every page with generated blocks (labs, notes, the product's READMEs), and the command that renders or
checks them all.

    python -m experiments.lab_docs            # re-render every block from the committed result files
    python -m experiments.lab_docs --check    # write nothing; exit 1 naming every stale block (make docs-check)

Each page is a hand-written Markdown file plus the blocks its lab's render(files)
functions make from its result JSON (experiments.common.lab; the marker form and
the two pure functions are in experiments.common.docs). The renders draw their
plots into a temporary copy of the results: plots are redrawn by each lab's
--render-only, not here.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import shutil
import tempfile
from pathlib import Path

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
# lab prose may also quote the cited GPU spec sheet
SPEC_SHEET = FOUNDATIONS / "b_common" / "specs.py"


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

    return Page(folder / "README.md", render, sources=(*sorted((folder / "results").glob("*.json")), SPEC_SHEET))


def request_path_note_page() -> Page:
    from experiments.foundations.a_common import request_path_note as note

    def render() -> dict[str, str]:
        return {"request-path-figures": note.render({k: read_result(p) for k, p in note.FILES.items()})}

    return Page(note.NOTE, render, sources=tuple(note.FILES.values()))


def product_pages() -> list[Page]:
    """The product's pages with generated blocks (rendered by make report / make sim, checked here too)."""
    from analysis import bench_nsys_speed, readme_figures, report
    from experiments.patch0002 import readme as patch0002
    from experiments.sim import report as sim
    from tools import train_tiny_model

    model = train_tiny_model.DEFAULT_OUT
    return [
        Page(readme_figures.README, lambda: {readme_figures.BLOCK: readme_figures.render(report.REFERENCE_ROOT)},
             versions=("12.9", "22.04", "3.10", "3.11")),  # CUDA, Ubuntu and Python versions in the set-up prose
        Page(bench_nsys_speed.README, lambda: {bench_nsys_speed.BLOCK: bench_nsys_speed.render(
            read_result(bench_nsys_speed.DEFAULT_RESULT))}, sources=(bench_nsys_speed.DEFAULT_RESULT,)),
        Page(sim.README, lambda: {sim.BLOCK: sim.render()}),
        Page(sim.PACKAGE_README, lambda: {sim.PACKAGE_BLOCK: sim.render_package_summary()},
             versions=("3.1",)),  # Llama-3.1-8B
        Page(patch0002.README, lambda: {patch0002.BLOCK: patch0002.render(REPO_ROOT / "results")}),
        Page(model / "README.md", lambda: {train_tiny_model.README_BLOCK: train_tiny_model.readme_figures(model)}),
    ]


def pages() -> list[Page]:
    return ([lab_page(folder, modules) for folder, modules in LABS.items()] + [request_path_note_page()]
            + product_pages())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if any generated block is stale")
    args = ap.parse_args(argv)
    code = run(pages(), check=args.check, root=REPO_ROOT)
    if args.check and code == 0:
        print(f"all generated blocks of {len(pages())} pages are up to date")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
