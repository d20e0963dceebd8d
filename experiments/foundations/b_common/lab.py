"""What the b-labs share beyond the one lab driver (experiments.common.lab): the GPU packages their
result files record, the table and spread formats of their README blocks, the GPU-not-measured line.
"""

from __future__ import annotations

from typing import Sequence

from experiments.common.fmt import fixed as fmt
from experiments.common.fmt import machine_line  # noqa: F401 - the b-labs' names for them
from experiments.common.fmt import md_table as fmt_table
from experiments.common.fmt import spread_paren as spread  # noqa: F401

EXTRA_PACKAGES = ["numba", "triton", "numba-cuda", "cupy-cuda12x"]


def skip(reason: str, what: str) -> None:
    """The one line a lab prints when a half cannot run here."""
    print(f"SKIP {what}: {reason}")


def md_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    return fmt_table(headers, rows, cell=fmt)


def gpu_not_measured(module: str) -> str:
    return (
        f"GPU results: not yet measured; run `python -m {module} --gpu` on an NVIDIA machine "
        f"(or `python -m experiments.foundations.b_common.run_gpu_labs` for every lab)."
    )
