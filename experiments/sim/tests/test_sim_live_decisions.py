"""One real engine start: record a small run now and replay it through the simulator step by step."""
from __future__ import annotations

import pytest

from experiments.sim import api, calibrate, decisions


@pytest.mark.vllm
def test_live_recorded_run_matches_step_by_step(tmp_path):
    rows = calibrate.recorded_rows(api.presets.EMBEDDED_MODEL)[:16]
    recorded = calibrate.record("baseline", rows, api.presets.EMBEDDED_MODEL, tmp_path / "recorded.json")
    replay = api.run_jobs([decisions.replay_job(recorded)])[0]
    verdict = decisions.compare(recorded["steps"], replay["steps"])
    assert verdict["identical"], verdict.get("first_mismatch")
    assert verdict["real_steps"] > 20
