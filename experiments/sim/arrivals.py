"""Arrival times on the virtual clock, drawn as `vllm bench serve` draws them.

`vllm.benchmarks.serve.get_request` (0.32.0): after `np.random.seed(seed)`, one
gamma(shape=burstiness, scale=1/(rate*burstiness)) interval per request
(burstiness 1 = Poisson), cumulated, then rescaled so the last request is sent
at exactly num_requests/rate seconds; rate inf sends everything at t=0.
That function sleeps in real time, so the arithmetic is repeated here.
"""
from __future__ import annotations

import math

from experiments.sim.errors import SimInputError


def arrival_times(num_requests: int, rate: float | str, seed: int, burstiness: float = 1.0) -> list[float]:
    import numpy as np

    rate = float(rate)
    if num_requests < 1:
        raise SimInputError("a workload needs at least one request")
    if not rate > 0 or not burstiness > 0:
        raise SimInputError(f"request rate and burstiness must be > 0, got {rate}, {burstiness}")
    if math.isinf(rate):
        return [0.0] * num_requests
    rng = np.random.RandomState(seed)
    if math.isinf(burstiness):
        delays = [1.0 / rate] * num_requests
    else:
        theta = 1.0 / (rate * burstiness)
        delays = [float(rng.gamma(shape=burstiness, scale=theta)) for _ in range(num_requests)]
    for i in range(1, num_requests):
        delays[i] += delays[i - 1]
    if delays[-1] != 0:
        factor = (num_requests / rate) / delays[-1]
        delays = [d * factor for d in delays]
    return delays
