"""Matplotlib set-up for headless PNG output, shared by labs and analysis."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on CI or servers
import matplotlib.pyplot as plt  # noqa: E402


def save_figure(fig, path: str | os.PathLike, *, source: str | None = None) -> Path:
    """Save a PNG; `source` (the result file it was drawn from) goes in a footer."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if source:
        fig.text(0.99, 0.005, f"data: {source}", ha="right", va="bottom", fontsize=6, color="grey")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
