"""The chain: its steps, and walking them in order for each row."""

from scoring_core.chain.step import READY, UNAVAILABLE, Step
from scoring_core.chain.walk import Chain, StepRun

__all__ = ["READY", "UNAVAILABLE", "Chain", "Step", "StepRun"]
