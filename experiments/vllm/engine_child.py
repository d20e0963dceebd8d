"""The one way the c-labs start real vLLM engines: a child process, one vLLM import, a list of jobs.

    python -m experiments.vllm.engine_child JOBS.json OUT.json

A job is {"module": "<python module with run(config) -> dict>", "config": {...}, "env": {...}}.
The child sets VLLM_ENABLE_V1_MULTIPROCESSING=0 before vLLM is imported when the
jobs want the EngineCore in-process (c1-c3 wrap its scheduler and steps), runs the
jobs one after the other (each builds and shuts down its own engine; "env" is applied
around its job only), and writes their results, in order, as one JSON list. The
parent (`run_jobs`) gets that list back; a failing child raises with its exit code.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

from experiments.common.provenance import REPO_ROOT

# The embedded tiny Llama with trained weights every c-lab engine runs (tools/train_tiny_model.py makes it).
TRAINED_MODEL = REPO_ROOT / "models" / "tiny-llama-trained"


def trained_model_missing(args) -> int | None:
    """A lab's early exit: exit code 1 with the fix when a measuring run has no trained weights."""
    if not args.render_only and not (TRAINED_MODEL / "model.safetensors").exists():
        print(f"no trained weights in {TRAINED_MODEL}: run `python -m tools.train_tiny_model` first")
        return 1
    return None


def run_jobs(jobs: list[tuple[str, dict]] | list[tuple[str, dict, dict]], *, in_process: bool = True,
             timeout: float | None = None) -> list[dict]:
    """Run (module, config[, env]) jobs in one fresh child process; their results in order."""
    spec = {"in_process": in_process,
            "jobs": [{"module": j[0], "config": j[1], "env": j[2] if len(j) > 2 else {}} for j in jobs]}
    with tempfile.TemporaryDirectory() as tmp:
        jobs_path, out_path = Path(tmp) / "jobs.json", Path(tmp) / "out.json"
        jobs_path.write_text(json.dumps(spec))
        subprocess.run([sys.executable, "-m", "experiments.vllm.engine_child", str(jobs_path), str(out_path)],
                       check=True, cwd=REPO_ROOT, timeout=timeout, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
        return json.loads(out_path.read_text())


def _run_one(job: dict) -> dict:
    with mock.patch.dict(os.environ, job["env"]):  # restored after the job, whatever it did
        return importlib.import_module(job["module"]).run(job["config"])


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    if spec["in_process"]:
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # before vLLM is imported: the EngineCore lives here
    results = [_run_one(job) for job in spec["jobs"]]
    Path(argv[1]).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
