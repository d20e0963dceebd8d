"""Import directions stay as the README's layout says: the product (patch machinery, bench, trace,
simulator, analysis, report) never imports the course (the labs); the bench owns its result store
and analysis reads it, not the reverse; no import cycles inside the product. Every import counts,
including those inside functions."""
from __future__ import annotations

import ast
from pathlib import Path

from tools import pins

ROOT = pins.REPO_ROOT
PRODUCT = ("tools", "analysis", "experiments.bench", "experiments.trace", "experiments.sim",
           "experiments.patch0002", "experiments.gpu_evidence", "experiments.common")
COURSE = ("experiments.foundations", "experiments.vllm", "experiments.lab_docs")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def in_package(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def imports(path: Path) -> set[str]:
    """Every module a file imports (absolute names; `from a import b` also counts `a.b`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def product_graph() -> dict[str, set[str]]:
    files = [p for p in ROOT.rglob("*.py")
             if not any(part in (".venv", "build", "vllm", "results", "nsys_traces") or part.startswith(".")
                        for part in p.relative_to(ROOT).parts)]
    modules = {module_name(p): p for p in files}
    graph = {}
    for name, path in modules.items():
        if in_package(name, PRODUCT) and not path.name.startswith("test_") and "tests" not in path.parts:
            graph[name] = {m for m in imports(path) if m in modules}
    return graph


def test_the_product_never_imports_the_course():
    bad = {m: sorted(i for i in deps if in_package(i, COURSE)) for m, deps in product_graph().items()}
    assert not {m: v for m, v in bad.items() if v}


def test_analysis_reads_the_bench_store_not_the_reverse():
    bad = {m: sorted(i for i in deps if in_package(i, ("analysis",)))
           for m, deps in product_graph().items() if in_package(m, ("experiments.bench",))}
    assert not {m: v for m, v in bad.items() if v}


def test_no_import_cycles_in_the_product():
    graph = product_graph()
    # Packages import their own submodules through __init__; only module-to-module edges count.
    graph = {m: {d for d in deps if d in graph and not m.startswith(d + ".") and not d.startswith(m + ".")}
             for m, deps in graph.items()}
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_no_generated_documents_inside_source_packages():
    """PR drafts, result JSON and plots of the product live under docs/ and results/, not in analysis/ or
    another product package (the labs keep their own results/ and plots/ beside their READMEs)."""
    found = []
    for package in ("analysis", "tools", "experiments/bench", "experiments/trace", "experiments/sim",
                    "experiments/patch0002", "experiments/gpu_evidence", "experiments/common"):
        for sub in ("pr_draft", "results"):
            if (ROOT / package / sub).exists():
                found.append(f"{package}/{sub}")
    assert not found, found


def test_one_marker_form_for_generated_blocks():
    """No second block mechanism comes back: every generated block is written by experiments.common.docs."""
    import re

    other = re.compile(r"<!-- (?!BEGIN GENERATED |END GENERATED )[\w.-]+:(?:begin|end)\b|<!-- (?:BEGIN|END) (?!GENERATED )[\w.-]+")
    bad = []
    for p in ROOT.rglob("*.md"):
        parts = p.relative_to(ROOT).parts
        if any(part in (".venv", "build", "vllm", "node_modules") or part.startswith(".") for part in parts):
            continue
        if other.search(p.read_text(errors="replace")):
            bad.append(str(p.relative_to(ROOT)))
    assert not bad, bad
