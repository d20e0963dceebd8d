"""Bad input fails before any simulation, naming the cause; a scheduler that stops progressing is an error."""
from __future__ import annotations

import pytest

from experiments.sim import api, driver
from experiments.sim.arrivals import arrival_times
from experiments.sim.cost_models import ConstantStepCost
from experiments.sim.errors import SimInputError, SimStalled


def test_unknown_variant_model_workload():
    with pytest.raises(SimInputError, match="unknown variant 'nightly'"):
        api.make_job("nightly", None, "mixed_long_short", 16, 0, "cpu")
    with pytest.raises(SimInputError, match="engine must be baseline or patched"):
        api.make_job({"engine": "upstream-main"}, None, "mixed_long_short", 16, 0, "cpu")
    with pytest.raises(SimInputError, match="unknown model"):
        api.make_job("baseline", None, "mixed_long_short", 16, 0, "cpu", model="models/no-such-model")
    with pytest.raises(SimInputError, match="missing workload 'chatbot_arena'"):
        api.make_job("baseline", None, "chatbot_arena", 16, 0, "cpu")
    with pytest.raises(SimInputError, match="rate and burstiness must be > 0"):
        api.make_job("baseline", None, "mixed_long_short", 0, 0, "cpu")


def test_a_served_variant_simulates_its_engine_not_its_server_env():
    """A served set's variant def names the hook and the checkout it ran from: never the simulator's."""
    from experiments.sim.served import served_variant

    vdef = served_variant({"engine": "patched", "env": {"X": "1"}, "engine_args": {}})
    assert api.resolve_variant(vdef)["env"] == {"X": "1"}
    assert "PYTHONPATH" in vdef["env"]  # the caller's def is left as it was


def test_arrivals_follow_vllm_bench_serve():
    """Rescaled so the last request goes out at n/rate; inf sends everything at once; seeded."""
    a = arrival_times(64, 16, seed=0)
    assert a[-1] == pytest.approx(64 / 16)
    assert a == arrival_times(64, 16, seed=0) and a != arrival_times(64, 16, seed=1)
    assert arrival_times(5, "inf", seed=0) == [0.0] * 5


class StuckScheduler:
    """Accepts requests, never schedules a token (what a scheduler bug or an impossible config looks like)."""

    def __init__(self):
        self.waiting, self.running, self.requests = [], [], {}
        self.kv_cache_manager = type("K", (), {"block_pool": type("P", (), {"get_num_free_blocks": lambda s: 0})()})()

    def add_request(self, req):
        self.waiting.append(req)

    def has_requests(self):
        return bool(self.waiting)

    has_unfinished_requests = has_requests

    def schedule(self):
        return type("SO", (), {"num_scheduled_tokens": {}, "total_num_scheduled_tokens": 0})()

    def update_from_output(self, so, out):
        return {}


def test_no_progress_for_n_steps_raises():
    rows = [{"request_id": "r0", "prompt_token_ids": [1, 5, 6], "output_tokens": 4, "arrival_s": 0.0}]
    with pytest.raises(SimStalled, match="no tokens scheduled for 8 consecutive steps"):
        driver.run(StuckScheduler(), None, rows, ConstantStepCost(), stall_steps=8)
