"""vLLM's own unit tests (scheduler, KV cache, prefix cache, patch 0002's) pass on the patched engine.

Runs tools/upstream_tests.py (selection: tools/upstream_tests.txt) against
build/vllm-patched; `make test` builds it first (apply-patches).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tools import pins

from tools import upstream_tests


def test_selection_runs_whole_directories_and_every_drop_says_why(tmp_path):
    tests, deselects, ignores, slow = upstream_tests.parse_list(upstream_tests.DEFAULT_LIST)
    assert {"tests/v1/core", "tests/v1/engine", "tests/config", "tests/engine"} <= set(tests)
    assert deselects and all("::" in d for d in deselects)
    # make test may skip a slow test only in a file the series does not touch
    touched = {line.split()[2].removeprefix("a/") for p in sorted((pins.REPO_ROOT / "patches").glob("*.patch"))
               for line in p.read_text().splitlines() if line.startswith("diff --git ")}
    assert slow and all("::" in s and s.split("::")[0] not in touched for s in slow)
    bad = tmp_path / "list.txt"
    bad.write_text("tests/v1/core\ndeselect tests/v1/core/test_scheduler.py::test_x\n")
    with pytest.raises(SystemExit, match="needs a target and a `# reason`"):
        upstream_tests.parse_list(bad)


@pytest.mark.vllm
@pytest.mark.slow
def test_upstream_unit_tests_pass_on_patched_engine(tmp_path):
    if not (pins.PATCHED_ENGINE_DIR / "vllm" / "__init__.py").exists():
        pytest.skip("build/vllm-patched missing: run `make apply-patches`")
    out = tmp_path / "upstream-tests.json"
    proc = subprocess.run([sys.executable, "-m", "tools.upstream_tests", "--skip-slow", "--json", str(out)],
                          cwd=pins.REPO_ROOT, capture_output=True, text=True, timeout=900)
    tail = (proc.stdout + proc.stderr)[-4000:]
    assert out.exists(), tail
    result = json.loads(out.read_text())
    assert result["engine"] == str(pins.PATCHED_ENGINE_DIR.resolve())
    assert proc.returncode == 0 and result["ok"], tail
    assert result["tests"] > 0 and result["failures"] == 0 and result["errors"] == 0, tail
    assert "tests/v1/core" in result["paths"] and "tests/v1/engine" in result["paths"]
    assert result["skipped_slow"]  # make test-vllm-upstream runs those
