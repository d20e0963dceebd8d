"""Server-side protection: a token-bucket rate limiter and a circuit breaker (clock injectable for tests)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

Clock = Callable[[], float]


class TokenBucket:
    """`rate` tokens per second refill a bucket of `capacity`; a request takes one token or is refused.

    Refusal says when the next token will exist, which becomes the Retry-After header.
    """

    def __init__(self, rate: float, capacity: float, clock: Clock = time.monotonic):
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be > 0 and capacity >= 1")
        self.rate, self.capacity, self.clock = rate, capacity, clock
        self.tokens = capacity
        self.updated = clock()

    def try_acquire(self) -> tuple[bool, float]:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True, 0.0
        return False, (1 - self.tokens) / self.rate


class KeyedRateLimiter:
    """One bucket per client key (API key), so one noisy client cannot starve the others."""

    def __init__(self, rate: float, capacity: float, clock: Clock = time.monotonic, max_keys: int = 10_000):
        self.rate, self.capacity, self.clock, self.max_keys = rate, capacity, clock, max_keys
        self.buckets: dict[str, TokenBucket] = {}

    def try_acquire(self, key: str) -> tuple[bool, float]:
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.max_keys:  # bounded memory under key-spraying
                self.buckets.clear()
            bucket = self.buckets[key] = TokenBucket(self.rate, self.capacity, self.clock)
        return bucket.try_acquire()


def retry_after_header(seconds: float) -> str:
    """Retry-After takes whole seconds (RFC 9110); round up so a client never comes back too early."""
    return str(max(1, math.ceil(seconds)))


CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass
class CircuitBreaker:
    """closed -> (failure_threshold consecutive failures) -> open -> (reset_timeout_s) -> half_open.

    half_open lets `half_open_max_calls` trial calls through: a success closes the
    breaker, a failure opens it again. While open, calls fail fast without touching
    the backend, which gives a struggling backend room to recover.
    """

    failure_threshold: int = 5
    reset_timeout_s: float = 1.0
    half_open_max_calls: int = 1
    clock: Clock = time.monotonic
    state: str = CLOSED
    failures: int = 0
    opened_at: float = 0.0
    in_flight_trials: int = 0
    transitions: list[tuple[float, str]] = field(default_factory=list)

    def _move(self, state: str) -> None:
        self.state = state
        self.transitions.append((self.clock(), state))

    def allow(self) -> tuple[bool, float]:
        """May a call go to the backend now? If not, how long until it may try again."""
        if self.state == OPEN:
            waited = self.clock() - self.opened_at
            if waited < self.reset_timeout_s:
                return False, self.reset_timeout_s - waited
            self._move(HALF_OPEN)
            self.in_flight_trials = 0
        if self.state == HALF_OPEN:
            if self.in_flight_trials >= self.half_open_max_calls:
                return False, self.reset_timeout_s
            self.in_flight_trials += 1
        return True, 0.0

    def record_success(self) -> None:
        if self.state == HALF_OPEN:
            self._move(CLOSED)
        self.failures = 0
        self.in_flight_trials = 0

    def release(self) -> None:
        """A trial call ended with no verdict (client went away): free its half-open slot."""
        if self.state == HALF_OPEN and self.in_flight_trials > 0:
            self.in_flight_trials -= 1

    def record_failure(self) -> None:
        if self.state == HALF_OPEN:
            self._open()
            return
        self.failures += 1
        if self.state == CLOSED and self.failures >= self.failure_threshold:
            self._open()

    def _open(self) -> None:
        self.opened_at = self.clock()
        self.failures = 0
        self.in_flight_trials = 0
        self._move(OPEN)
