"""Pure parts of c5: the acceptance model against a Monte Carlo simulation."""
import numpy as np
import pytest

from experiments.vllm.c5_speculative_decoding import acceptance as A


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.6, 0.8, 0.95])
@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_expected_tokens_matches_monte_carlo(alpha, k):
    sim = A.simulate_tokens_per_step(alpha, k, steps=100_000, seed=k)
    expected = float(A.expected_tokens_per_step(alpha, k))
    stderr = sim.std() / np.sqrt(sim.size)
    assert abs(sim.mean() - expected) < 5 * stderr + 1e-9


def test_limits():
    assert float(A.expected_tokens_per_step(1.0, 4)) == 5.0
    assert float(A.expected_tokens_per_step(0.0, 4)) == 1.0
    # more drafts never reduce expected tokens, but with a costly drafter they reduce speedup
    assert A.expected_tokens_per_step(0.7, 8) > A.expected_tokens_per_step(0.7, 4)
    assert A.speedup(0.5, 8, draft_cost=0.2) < A.speedup(0.5, 2, draft_cost=0.2)


def test_speedup_below_one_when_drafts_are_rejected_and_costly():
    assert float(A.speedup(0.1, 4, draft_cost=0.1)) < 1.0
    k, s = A.best_k(0.1, 0.1)
    assert k == 0 and s == 1.0
    k, s = A.best_k(0.9, 0.02)
    assert k >= 6 and s > 3


def test_counters_and_inversion():
    c = A.alpha_from_counters(num_drafts=100, num_draft_tokens=400, num_accepted=200)
    assert c["draft_acceptance_rate"] == 0.5 and c["mean_tokens_per_step"] == 3.0
    a = A.alpha_for_mean_tokens(3.0, 4)
    assert abs(float(A.expected_tokens_per_step(a, 4)) - 3.0) < 1e-9


def test_repeated_ngram_fraction():
    from experiments.vllm.c5_speculative_decoding.spec_decoding import repeated_ngram_fraction
    # grams ending at each output token: (2,3,1) new, (3,1,2) new, (1,2,3) seen in the prompt
    assert repeated_ngram_fraction([1, 2, 3], [1, 2, 3]) == 1 / 3
    assert repeated_ngram_fraction([1, 2, 3], [4, 5, 6]) == 0.0


def test_answer_is_written_by_hand():
    """The Answer is hand-written below the generated tables; its figures are bound to the result file in the
    page's '<!-- figures' comment and checked by make docs-check (experiments.common.figures)."""
    from experiments.common.docs import find_blocks
    from experiments.vllm.c5_speculative_decoding.spec_decoding import LAB_DIR

    committed = (LAB_DIR / "README.md").read_text()
    assert "## Answer" in committed
    assert not any("## Answer" in body for body in find_blocks(committed).values())


def test_phase_split_per_token_adds_up():
    """phases.per_token_us on a made-up case: every timed phase, the rest of the step, the rest of the run."""
    from experiments.vllm.c5_speculative_decoding import phases as P

    ph = {k: {"s": 0.01, "cpu_s": 0.01, "calls": 10} for k in P.PHASES}
    ph["execute_model"] = {"s": 0.07, "cpu_s": 0.07, "calls": 10}
    ph["sample_tokens"] = {"s": 0.01, "cpu_s": 0.01, "calls": 10}
    us = P.per_token_us({"output_tokens": 100, "wall_s": 0.1, "cpu_s": 0.1, "phases": ph})
    assert us["_model_forward"] == 100.0 and abs(us["other in step"] - 200.0) < 1e-9
    assert abs(us["outside steps"] - 200.0) < 1e-9 and abs(sum(us.values()) - 1000.0) < 1e-9


def test_step_time_comes_from_the_engines_step_count():
    from experiments.vllm.c5_speculative_decoding.spec_decoding import summarise

    def run(wall, steps, drafts=0):
        return {"workload": "w", "concurrency": 1, "temperature": 1.0, "wall_s": wall,
                "output_tokens_per_s": 128 / wall, "token_ids": [[1]],
                "spec": {"num_drafts": drafts, "num_draft_tokens": 4 * drafts, "num_accepted_tokens": 0,
                         "engine_steps": steps, "accepted_per_pos": [0, 0, 0, 0]}}

    (r,) = summarise({"runs": [run(1.0, 128), run(1.2, 128)]}, {"runs": [run(2.0, 128, 13), run(2.2, 128, 13)]})
    assert r["base_steps"] == r["spec_steps"] == 256
    assert abs(r["step_ratio_measured"] - (2.1 / 1.1)) < 1e-9 and abs(r["drafts_per_step"] - 26 / 256) < 1e-12
    assert r["speedup_median"] < 1


def test_phase_timers_count_the_forward_wait_only_directly_under_the_step():
    """'wait for forward' is FutureWrapper.result: the blocking RPCs call it too, inside their own timers."""
    from experiments.vllm.c5_speculative_decoding import phases as P

    class Future:
        def result(self):
            return 1

    class Engine:
        def __init__(self):
            self.f = Future()

        def rpc(self):
            return self.f.result()

        def step(self):
            self.f.result()
            return self.rpc()

    totals: dict = {}
    P.install_timers(totals, [("step", Engine, "step"), ("sample_tokens RPC", Engine, "rpc"),
                              ("wait for forward", Future, "result")])
    e = Engine()
    for _ in range(3):
        e.step()
    assert totals["step"][1] == 3 and totals["sample_tokens RPC"][1] == 3
    assert totals["wait for forward"][1] == 3  # the 3 calls inside rpc() are not counted


def test_steps_with_drafts_are_timed_apart():
    """A step whose SchedulerOutput carries draft tokens is recorded under DRAFTED, phase by phase."""
    from types import SimpleNamespace

    from experiments.vllm.c5_speculative_decoding import phases as P

    class Runner:
        def execute_model(self, scheduler_output):
            return self._sample(None)

        def _sample(self, logits):
            return 1

    totals: dict = {}
    P.install_timers(totals, [("execute_model", Runner, "execute_model"), ("_sample", Runner, "_sample")])
    r = Runner()
    for drafts in ({}, {"a": [1, 2]}, {}, {}):
        r.execute_model(SimpleNamespace(scheduled_spec_decode_tokens=drafts))
    assert totals["execute_model"][1] == 3 and totals["execute_model" + P.DRAFTED][1] == 1
    assert totals["_sample"][1] == 3 and totals["_sample" + P.DRAFTED][1] == 1
    case = {"output_tokens": 4, "wall_s": 1.0, "cpu_s": 1.0,
            "phases": {k: {"s": v[0], "calls": v[1], "cpu_s": v[2]} for k, v in totals.items()}}
    assert P.engine_steps(case, "uni") == 4
    split = P.step_split(case, "uni")
    assert split["steps_with_drafts"] == 1 and split["steps_without"] == 3


def test_timers_keep_static_methods_static():
    from experiments.vllm.c5_speculative_decoding import phases as P

    class S:
        @staticmethod
        def greedy(x):
            return x + 1

        def forward(self, x):
            return self.greedy(x)

    totals: dict = {}
    P.install_timers(totals, [("forward", S, "forward"), ("greedy", S, "greedy")])
    assert S().forward(1) == 2 and S.greedy(2) == 3
    assert totals["forward"][1] == 1 and totals["greedy"][1] == 2
