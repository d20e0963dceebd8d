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


def _committed_doc():
    from experiments.common.results import read_result
    from experiments.vllm.c5_speculative_decoding.spec_decoding import LAB_DIR, REPO

    path = LAB_DIR / "results" / "spec_decoding_cpu.json"
    return read_result(path), str(path.relative_to(REPO))


def test_answer_lives_inside_the_generated_block():
    """The Answer is generated (README = render of the JSON: tests/test_lab_docs.py), not hand-written."""
    from experiments.vllm.c5_speculative_decoding.spec_decoding import LAB_DIR

    committed = (LAB_DIR / "README.md").read_text()
    begin, end = committed.index("<!-- BEGIN GENERATED results -->"), committed.index("<!-- END GENERATED results -->")
    generated, outside = committed[begin:end], committed[:begin] + committed[end:]
    assert "## Answer" in generated
    assert "## Answer" not in outside, "the Answer must be generated (inside the GENERATED block), not hand-written"


def test_answer_words_follow_the_numbers():
    """The qualitative words are chosen from the figures, so a rerun with other numbers renders no false sentence."""
    import copy

    from experiments.vllm.c5_speculative_decoding.spec_decoding import answer_markdown

    doc, _ = _committed_doc()
    text = " ".join(answer_markdown(doc).split())  # undo the line wrapping
    assert "*halved*" in text and "rose x" in text and "7-9% of steps" in text
    slow = copy.deepcopy(doc)
    for r in slow["results"]["engine"]["rows"]:
        r["spec_tok_s_median"] = r["base_tok_s_median"] * 0.8
        r["speedup_median"] = 0.8
    text = " ".join(answer_markdown(slow).split())
    assert "*halved*" not in text and "rose x" not in text and "gain falls" not in text
    assert "throughput fell (x0.80 at concurrency 1" in text
    no_engine = copy.deepcopy(doc)
    del no_engine["results"]["engine"]
    assert "engine half was not run" in answer_markdown(no_engine)


def test_phase_split_per_token_adds_up():
    """phases.per_token_us on a made-up case: every timed phase, the rest of the step, the rest of the run."""
    from experiments.vllm.c5_speculative_decoding import phases as P

    ph = {k: {"s": 0.01, "cpu_s": 0.01, "calls": 10} for k in P.PHASES}
    ph["execute_model"] = {"s": 0.07, "cpu_s": 0.07, "calls": 10}
    ph["sample_tokens"] = {"s": 0.01, "cpu_s": 0.01, "calls": 10}
    us = P.per_token_us({"output_tokens": 100, "wall_s": 0.1, "cpu_s": 0.1, "phases": ph})
    assert us["_model_forward"] == 100.0 and abs(us["other in step"] - 200.0) < 1e-9
    assert abs(us["outside steps"] - 200.0) < 1e-9 and abs(sum(us.values()) - 1000.0) < 1e-9
