"""Counters and latency histograms of the chain and its steps, read by diagnostics and
metrics alike (see :mod:`scoring_core.observe.counters`)."""

from scoring_core.observe.counters import (
    FAILURE_KINDS,
    LATENCY_BUCKETS_S,
    ChainCounters,
    Histogram,
    StepCounters,
    StepSnapshot,
)
from scoring_core.observe.snapshot import ChainSnapshot, ModelIdentity, StepView

__all__ = [
    "FAILURE_KINDS",
    "LATENCY_BUCKETS_S",
    "ChainCounters",
    "ChainSnapshot",
    "Histogram",
    "ModelIdentity",
    "StepCounters",
    "StepSnapshot",
    "StepView",
]
