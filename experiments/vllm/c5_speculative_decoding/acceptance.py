"""The acceptance model of speculative decoding, and a Monte Carlo check of it.

One speculative step: a cheap drafter proposes k tokens, the target model scores
all k (+1) positions in one forward pass, the longest prefix of drafts that the
target agrees with is kept, and the target's own token at the first
disagreement (or after the last draft, if all k were accepted) is appended.
With every draft accepted independently with probability alpha, the number of
tokens a step yields is 1 + (accepted prefix length), whose mean is

    E[tokens/step] = (1 - alpha**(k+1)) / (1 - alpha)        (k + 1 at alpha = 1)

(Leviathan et al. 2023, "Fast Inference from Transformers via Speculative
Decoding", eq. 1). If one draft token costs c target forwards and verifying
k + 1 positions costs v(k) target forwards (1 for a memory-bound GPU decode,
more where the verify pass is compute-bound), the walltime speedup is

    speedup = E[tokens/step] / (k * c + v(k)).
"""
from __future__ import annotations

import numpy as np


def expected_tokens_per_step(alpha: float | np.ndarray, k: int) -> np.ndarray:
    alpha = np.asarray(alpha, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (1.0 - alpha ** (k + 1)) / (1.0 - alpha)
    return np.where(np.isclose(alpha, 1.0), k + 1.0, out)


def speedup(alpha: float | np.ndarray, k: int, draft_cost: float, verify_cost: float = 1.0) -> np.ndarray:
    """Tokens per unit time relative to plain decoding (1 token per target forward)."""
    return expected_tokens_per_step(alpha, k) / (k * draft_cost + verify_cost)


def best_k(alpha: float, draft_cost: float, k_max: int = 16, verify_cost_per_token: float = 0.0) -> tuple[int, float]:
    """k in 0..k_max maximising the speedup (k = 0 means: do not speculate)."""
    best = (0, 1.0)
    for k in range(1, k_max + 1):
        s = float(speedup(alpha, k, draft_cost, 1.0 + verify_cost_per_token * k))
        if s > best[1]:
            best = (k, s)
    return best


def simulate_tokens_per_step(alpha: float, k: int, steps: int, seed: int = 0) -> np.ndarray:
    """Monte Carlo: per step, draw k accept/reject coins and count 1 + leading accepts."""
    rng = np.random.default_rng(seed)
    accepted = rng.random((steps, k)) < alpha
    # leading run of True: index of the first False, or k if none
    first_reject = np.where(accepted.all(axis=1), k, np.argmin(accepted, axis=1))
    return 1 + first_reject


def alpha_from_counters(num_drafts: float, num_draft_tokens: float, num_accepted: float) -> dict:
    """Turn vLLM's spec-decode counters into the figures the model speaks in.

    vLLM counts per-token acceptance (accepted / draft tokens); the model's alpha
    is the per-position acceptance probability given the earlier drafts were
    accepted. Mean tokens per step = 1 + accepted / drafts (the bonus or
    correction token is always emitted).
    """
    out = {"num_drafts": num_drafts, "num_draft_tokens": num_draft_tokens, "num_accepted_tokens": num_accepted}
    out["draft_acceptance_rate"] = num_accepted / num_draft_tokens if num_draft_tokens else None
    out["mean_tokens_per_step"] = 1.0 + num_accepted / num_drafts if num_drafts else None
    return out


def alpha_for_mean_tokens(mean_tokens: float, k: int) -> float:
    """Invert E[tokens/step] for alpha by bisection (E is increasing in alpha)."""
    lo, hi = 0.0, 1.0
    target = min(max(mean_tokens, 1.0), k + 1.0)
    for _ in range(60):
        mid = (lo + hi) / 2
        if expected_tokens_per_step(mid, k) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
