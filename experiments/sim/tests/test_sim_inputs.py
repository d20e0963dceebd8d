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
    spec = {"speculative_config": {"method": "ngram", "num_speculative_tokens": 3}}
    with pytest.raises(SimInputError, match="needs both"):
        api.make_job("baseline", spec, "mixed_long_short", 16, 0, "cpu")
    with pytest.raises(SimInputError, match="needs both"):
        api.make_job("baseline", None, "mixed_long_short", 16, 0, "cpu", spec_acceptance=0.5)
    with pytest.raises(SimInputError, match=r"within \[0, 1\]"):
        api.make_job("baseline", spec, "mixed_long_short", 16, 0, "cpu", spec_acceptance=1.5)


def test_drafts_are_accepted_up_to_the_first_rejection():
    """Each draft accepted with probability a once the ones before were: the mean accepted of k drafts is
    a + a^2 + ... + a^k; none at 0, all at 1; the same seed gives the same draws."""
    import random

    from experiments.sim.driver import accepted_drafts

    assert accepted_drafts(random.Random(0), 3, 0.0) == 0 and accepted_drafts(random.Random(0), 3, 1.0) == 3
    rng = random.Random(1)
    draws = [accepted_drafts(rng, 3, 0.6) for _ in range(20000)]
    assert sum(draws) / len(draws) == pytest.approx(0.6 + 0.36 + 0.216, abs=0.02)
    assert draws[:50] == [accepted_drafts(r, 3, 0.6) for r in [random.Random(1)] for _ in range(50)]


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
        self.num_spec_tokens = 0  # no speculative decoding
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


def test_fast_path_tokenizes_as_the_server_does(tmp_path):
    """The shipped model's tokenizer.json read by `tokenizers` gives AutoTokenizer's ids on every bench
    workload's prompts; a model whose tokenizer class may rewrite special tokens takes the
    AutoTokenizer path."""
    import shutil

    from transformers import AutoTokenizer

    from experiments.bench import presets, workloads
    from experiments.sim.prompts import Tokenizer, plain_tokenizer_json

    model = presets.EMBEDDED_MODEL
    assert plain_tokenizer_json(model) is not None
    fast, auto = Tokenizer(model), AutoTokenizer.from_pretrained(model)
    prompts = [r["prompt"] for name in sorted(workloads.SPECS)
               for r in workloads.generate(workloads.make_spec(name), seed=0).rows]
    assert prompts and all(fast.ids(p) == auto(p).input_ids for p in prompts)
    other = tmp_path / "llama-class"
    shutil.copytree(model, other, ignore=shutil.ignore_patterns("*.safetensors", "*.png"))
    cfg = other / "tokenizer_config.json"
    cfg.write_text(cfg.read_text().replace("PreTrainedTokenizerFast", "LlamaTokenizerFast"))
    assert plain_tokenizer_json(str(other)) is None
