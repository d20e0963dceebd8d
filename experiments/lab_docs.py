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

    return Page(folder / "README.md", render, sources=tuple(sorted((folder / "results").glob("*.json"))))


def b_lab_page(name: str, module: str) -> Page:
    folder = FOUNDATIONS / name

    def render() -> dict[str, str]:
        from experiments.foundations.b_common.lab import LabFiles

        lab = importlib.import_module(f"experiments.foundations.{name}.{module}")
        with tempfile.TemporaryDirectory() as tmp:  # plots drawn by the renderer land here, not in the lab
            if (folder / "results").exists():
                shutil.copytree(folder / "results", Path(tmp) / "results")
            return lab.render(LabFiles(folder, Path(tmp)))

    # the b-labs' prose may also quote the cited spec sheet (b_common/specs.py)
    return Page(folder / "README.md", render, sources=(*sorted((folder / "results").glob("*.json")),
                                                        FOUNDATIONS / "b_common" / "specs.py"))


def request_path_note_page() -> Page:
    from experiments.foundations.a_common import request_path_note as note

    def render() -> dict[str, str]:
        return {"request-path-figures": note.render({k: read_result(p) for k, p in note.FILES.items()})}

    return Page(note.NOTE, render, sources=tuple(note.FILES.values()))


VLLM_LABS = REPO_ROOT / "experiments" / "vllm"
# c-lab page -> (module with readme_blocks(doc, *result paths), result files; the first is the doc)
C_LABS = {
    "c1_prefill_decode_batching": [("report", ["results/prefill_decode_cpu.json"])],
    "c2_paged_kv_cache": [("report", ["results/paged_kv_cpu.json", "results/paged_kv_trace_cpu.json"])],
    "c3_mixed_scheduling": [("report", ["results/mixed_scheduling_cpu.json"]),
                            ("saturating", ["results/saturating_cpu.json"])],
    # c4 renders from its GPU result when a GPU run committed one, else from the CPU one (as its main() does)
    "c4_attention_graphs_quant": [("lab", ["results/attention_quant_gpu.json|results/attention_quant_cpu.json"])],
    "c5_speculative_decoding": [("spec_decoding", ["results/spec_decoding_cpu.json"])],
}


def c_lab_page(name: str) -> Page:
    folder = VLLM_LABS / name

    def existing(spec: str) -> Path:
        return next((folder / f for f in spec.split("|") if (folder / f).exists()), folder / spec.split("|")[-1])

    def render() -> dict[str, str]:
        blocks: dict[str, str] = {}
        for module, files in C_LABS[name]:
            paths = [existing(f) for f in files]
            fn = importlib.import_module(f"experiments.vllm.{name}.{module}").readme_blocks
            blocks.update(fn(read_result(paths[0]), *(str(p.relative_to(REPO_ROOT)) for p in paths)))
        return blocks

    # c-lab prose may quote the cited GPU spec sheet too (b_common/specs.py)
    return Page(folder / "README.md", render, sources=(*sorted((folder / "results").glob("*.json")),
                                                        FOUNDATIONS / "b_common" / "specs.py"))


def pages() -> list[Page]:
    return ([a_lab_page(n) for n in A_LABS] + [request_path_note_page()]
            + [b_lab_page(n, m) for n, m in B_LABS.items()] + [c_lab_page(n) for n in C_LABS])


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
