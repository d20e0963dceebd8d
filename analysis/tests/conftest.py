"""Shared fixtures: one real torch profiler directory per test session (profiled on CPU, ~1 s)."""
from __future__ import annotations

import pytest

from analysis import examples


@pytest.fixture(scope="session")
def torch_traces(tmp_path_factory) -> dict:
    """vLLM-style profiler dir: EngineCore_DP0 (gzip) and dp0_pp0_tp0_rank0 (plain), 4 steps each.

    scale=8 (ranges of 4-40 ms): entering a range costs 60-130 us under the profiler on a slow
    2-core VM, which at 0.5 ms ranges moved a phase share by more than the tests' slack; at scale=4
    it still did once with three test workers on two cores (EngineCore's 'other' share)."""
    return examples.write_example_torch_traces(tmp_path_factory.mktemp("profiler"), steps=4, scale=8.0)
