"""A/B experiments between chains: assignment, exposures, shadow scoring, analysis.

``Experiment`` (public as ``scoring_core.Experiment``) is imported when first used, so
``import scoring_core.experiments`` stays light. docs/experiments.md tells the whole story.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scoring_core.experiments.experiment import Experiment
    from scoring_core.experiments.results import ExperimentBatchResult, ExperimentScoreResult

__all__ = ["Experiment", "ExperimentBatchResult", "ExperimentScoreResult"]

_LAZY = {
    "Experiment": "scoring_core.experiments.experiment",
    "ExperimentBatchResult": "scoring_core.experiments.results",
    "ExperimentScoreResult": "scoring_core.experiments.results",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'scoring_core.experiments' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
