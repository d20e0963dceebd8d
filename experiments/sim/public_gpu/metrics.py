"""The error schema of `inference-sim/sim-to-real-accuracy-validation` (its experiment/metrics.py and
ground_truth.py): per experiment (its whole run: their `stage_index = -1` summary), E2E and TTFT mean,
p90 and p99 in ms, and ITL mean as TPOT of the means, (mean E2E - mean TTFT) / (mean output tokens - 1)
(their ground truth has no ITL p90/p99, so their tables compare none); per metric the absolute
percentage error (MAPE) and the signed one (MPE) of the simulated value against the measured one."""
from __future__ import annotations

METRICS = ("e2e_mean", "e2e_p90", "e2e_p99", "ttft_mean", "ttft_p90", "ttft_p99", "itl_mean")


def summary(ttft_s: list[float], e2e_s: list[float], output_tokens: list[int]) -> dict:
    import numpy as np

    e2e, ttft = np.array(e2e_s) * 1e3, np.array(ttft_s) * 1e3
    out = {}
    for name, v in (("e2e", e2e), ("ttft", ttft)):
        out[f"{name}_mean"] = float(v.mean())
        out[f"{name}_p90"] = float(np.percentile(v, 90))
        out[f"{name}_p99"] = float(np.percentile(v, 99))
    out["itl_mean"] = float((e2e.mean() - ttft.mean()) / max(float(np.mean(output_tokens)) - 1, 1))
    return out


def errors(predicted: dict, actual: dict) -> dict:
    """{metric: {predicted, actual, mape, mpe}} (percent), as the companion's compute_mape / compute_mpe."""
    out = {}
    for m in METRICS:
        p, a = predicted[m], actual[m]
        mpe = (p - a) / abs(a) * 100
        out[m] = {"predicted": p, "actual": a, "mape": abs(mpe), "mpe": mpe}
    return out
