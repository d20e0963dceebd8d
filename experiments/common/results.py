"""Atomic result files: a reader never sees half a file.

Write to a temporary file in the same directory, fsync, then rename over the
target (rename is atomic on POSIX within one filesystem).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from experiments.common.provenance import provenance


def write_json_atomic(path: str | os.PathLike, data: Any, *, compact: bool = False) -> Path:
    """`compact`: no indentation or spaces (large per-event traces); otherwise indent=2."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            if compact:
                json.dump(data, fh, separators=(",", ":"), default=str)
            else:
                json.dump(data, fh, indent=2, sort_keys=False, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_result(path: str | os.PathLike, results: Any, *, config: dict | None = None,
                 benchmark_version: int = 1, extra_packages: list[str] | None = None,
                 compact: bool = False) -> Path:
    """Write `results` with provenance and config into one self-describing JSON file."""
    doc = {
        "benchmark_version": benchmark_version,
        "provenance": provenance(extra_packages),
        "config": config or {},
        "results": results,
    }
    return write_json_atomic(path, doc, compact=compact)


def read_result(path: str | os.PathLike) -> dict:
    doc = json.loads(Path(path).read_text())
    for key in ("provenance", "results"):
        if key not in doc:
            raise ValueError(f"{path}: not a result file (missing {key!r})")
    return doc
