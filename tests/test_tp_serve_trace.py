"""The committed TP=2 serve trace (experiments.trace.tp_serve): the patched EngineCore's torch trace,
with patch 0001's ranges, next to both workers' traces; the baseline engine writes none."""
from __future__ import annotations

import json

import pytest

from analysis import chrome_trace
from analysis.report import latest_trace
from experiments.trace import tp_serve
from experiments.trace.overhead_micro import PATCH_0001_RANGES


def test_file_roles_follow_vllm_trace_names():
    assert tp_serve.file_role("vm_7.engine_core.1.pt.trace.json.gz") == "engine_core"
    assert tp_serve.file_role("rank1.17967.pt.trace.json.gz") == "worker rank1"
    assert tp_serve.file_role("vm_7.async_llm.1.pt.trace.json.gz") == "frontend"


def test_committed_run_has_engine_core_next_to_both_workers():
    run = latest_trace(served_tp=True)
    if run is None:
        pytest.skip("no committed TP serve trace")
    manifest = json.loads((run / "trace_manifest.json").read_text())
    for variant, info in manifest["variants"].items():
        roles = [f["role"] for f in info["files"].values()]
        assert sorted(r for r in roles if r.startswith("worker")) == ["worker rank0", "worker rank1"], variant
        assert roles.count("engine_core") == (variant == "patched"), variant
        tdir = run / info["trace_dir"]
        ranges = chrome_trace.load_profiler_dir(tdir, categories=(chrome_trace.USER_ANNOTATION,))
        for name, counts in info["files"].items():  # the table matches the committed traces
            mine = ranges[ranges["file"] == name]
            assert counts["ranges"] == len(mine)
            assert counts["patch_0001_ranges"] == int(mine["name"].isin(PATCH_0001_RANGES).sum())
    core = next(f for f in manifest["variants"]["patched"]["files"].values() if f["role"] == "engine_core")
    assert core["patch_0001_ranges"] > 0
