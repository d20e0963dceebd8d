"""Every lab page with generated blocks, and the command that renders or checks them all.

    python -m experiments.lab_docs            # re-render every block from the committed result files
    python -m experiments.lab_docs --check    # write nothing; exit 1 naming every stale block (make docs-check)

Each page is a hand-written Markdown file plus a function returning {block name:
body} rendered from its result JSON (the marker form and the two pure functions
are in experiments.common.docs). Plots are not redrawn here (each lab's
--render-only does that); b-lab renderers draw theirs into a temporary folder.
"""
from __future__ import annotations

import argparse
import importlib
import shutil
import tempfile
from pathlib import Path

from experiments.common.docs import Page, run
from experiments.common.provenance import REPO_ROOT
from experiments.common.results import read_result

FOUNDATIONS = REPO_ROOT / "experiments" / "foundations"
A_LABS = ["a1_gil_threads_vs_processes", "a2_producer_consumer_queues", "a3_read_vs_mmap",
          "a4_mock_inference_service", "a5_latency_throughput_profiling"]
B_LABS = {"b1_gpu_structure": "structure", "b2_warp_divergence": "divergence",
          "b3_memory_bandwidth_coalescing": "bandwidth", "b4_streams_async_copy": "streams",
          "b5_launch_overhead_trace": "trace"}


def a_lab_page(name: str) -> Page:
    folder = FOUNDATIONS / name

    def render() -> dict[str, str]:
        lab = importlib.import_module(f"experiments.foundations.{name}.lab")
        doc = read_result(folder / "results" / lab.RESULT_NAME)
        return {f"{name.split('_', 1)[0]}-results": lab.readme_tables(doc)}

    return Page(folder / "README.md", render)


def b_lab_page(name: str, module: str) -> Page:
    folder = FOUNDATIONS / name

    def render() -> dict[str, str]:
        from experiments.foundations.b_common.lab import LabFiles

        lab = importlib.import_module(f"experiments.foundations.{name}.{module}")
        with tempfile.TemporaryDirectory() as tmp:  # plots drawn by the renderer land here, not in the lab
            if (folder / "results").exists():
                shutil.copytree(folder / "results", Path(tmp) / "results")
            return lab.render(LabFiles(folder, Path(tmp)))

    return Page(folder / "README.md", render)


def request_path_note_page() -> Page:
    from experiments.foundations.a_common import request_path_note as note

    def render() -> dict[str, str]:
        return {"request-path-figures": note.render({k: read_result(p) for k, p in note.FILES.items()})}

    return Page(note.NOTE, render)


def pages() -> list[Page]:
    return ([a_lab_page(n) for n in A_LABS] + [request_path_note_page()]
            + [b_lab_page(n, m) for n, m in B_LABS.items()])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if any generated block is stale")
    args = ap.parse_args(argv)
    code = run(pages(), check=args.check, root=REPO_ROOT)
    if args.check and code == 0:
        print(f"all generated blocks of {len(pages())} lab pages are up to date")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
