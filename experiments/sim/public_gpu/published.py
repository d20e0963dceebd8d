"""The errors the companion repository (`inference-sim/sim-to-real-accuracy-validation`) publishes for other
simulators, summarised per simulator: mean summary-row MAPE of E2E, TTFT and ITL mean over its experiments
(its `results_trainval/error_records.csv`: vLLM 0.15.1 runs on H100, none of them the experiments replayed
here). Extracted from a fetched git directory of it into results/reference/sim/public_gpu/published-errors.csv.
"""
from __future__ import annotations

import csv
import io
import subprocess
from collections import defaultdict
from pathlib import Path

from experiments.sim.errors import SimInputError
from experiments.sim.public_gpu import report

COMPANION_REPO = "inference-sim/sim-to-real-accuracy-validation"
COMPANION_COMMIT = "dcec3fd4711c761ac16557db720d1856b604579c"
COMPANION_PATH = "results_trainval/error_records.csv"
PUBLISHED_METRICS = ("e2e_mean", "ttft_mean", "itl_mean")


def summarise(text: str) -> list[dict]:
    vals: dict = defaultdict(lambda: defaultdict(list))
    for r in csv.DictReader(io.StringIO(text)):
        if r["stage_index"] == "-1" and r["metric_name"] in PUBLISHED_METRICS:
            vals[r["simulator"]][r["metric_name"]].append(float(r["mape"]))
    return [{"simulator": sim, "experiments": len(m["e2e_mean"]),
             **{k: f"{sum(m[k]) / len(m[k]):.3f}" for k in PUBLISHED_METRICS},
             "source": f"{COMPANION_REPO}@{COMPANION_COMMIT[:8]}:{COMPANION_PATH}"}
            for sim, m in sorted(vals.items())]


def extract(mirror: Path, out: Path = report.PUBLISHED_PATH) -> list[dict]:
    spec = f"{COMPANION_COMMIT}:{COMPANION_PATH}"
    proc = subprocess.run(["git", "--git-dir", str(mirror), "show", spec], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SimInputError(f"cannot read {spec} from {mirror}: {proc.stderr.strip()}")
    rows = summarise(proc.stdout)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    out.write_text(buf.getvalue())
    return rows
