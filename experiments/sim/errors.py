"""Errors the simulator raises for bad input; each message names the cause."""
from __future__ import annotations


class SimInputError(ValueError):
    """Unknown variant/model/workload, an uncalibrated cost model, bad engine arguments."""


class SimStalled(RuntimeError):
    """The scheduler scheduled no tokens for too many steps while requests were waiting."""
