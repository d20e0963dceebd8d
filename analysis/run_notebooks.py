"""Execute the analysis notebooks headless (nbclient) so they never rot; optionally clear their outputs.

    .venv/bin/python -m analysis.run_notebooks              # run every analysis/*.ipynb on its example inputs
    .venv/bin/python -m analysis.run_notebooks --clear      # strip outputs before committing

The kernel is the `python3` kernelspec that ipykernel installs into the venv
(.venv/share/jupyter/kernels/python3); jupyter_client starts it with this interpreter.
Notebooks run with the repo root as working directory and on PYTHONPATH.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import nbformat

from tools.pins import REPO_ROOT

ANALYSIS_DIR = Path(__file__).resolve().parent
KERNEL_NAME = "python3"


def notebooks() -> list[Path]:
    return sorted(ANALYSIS_DIR.glob("*.ipynb"))


def execute_notebook(path: str | os.PathLike, *, env: dict[str, str] | None = None,
                     timeout: int = 300) -> nbformat.NotebookNode:
    """Run every cell; raises nbclient's CellExecutionError on the first failing cell.

    `env` entries are set in this process's environment for the duration (the kernel
    inherits it), which is how notebook parameters (ANALYSIS_* variables) are passed.
    """
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    saved = {k: os.environ.get(k) for k in ["PYTHONPATH", *(env or {})]}
    try:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), saved["PYTHONPATH"]) if p)
        os.environ.update(env or {})
        NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=timeout,
                       resources={"metadata": {"path": str(REPO_ROOT)}}).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def has_outputs(nb: nbformat.NotebookNode) -> bool:
    return any(c.get("outputs") or c.get("execution_count") for c in nb.cells if c.cell_type == "code")


def clear_outputs(path: str | os.PathLike) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.write(nb, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", type=Path, help="notebooks (default: analysis/*.ipynb)")
    ap.add_argument("--clear", action="store_true", help="clear outputs instead of executing")
    args = ap.parse_args(argv)
    for path in args.paths or notebooks():
        if args.clear:
            clear_outputs(path)
            print(f"cleared {path}")
        else:
            execute_notebook(path)
            print(f"ran {path}: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
