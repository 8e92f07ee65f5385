"""scoring-core: scoring with fallbacks.

A chain of scorers, configured in YAML and supplied by pluggy plugins, tried in
order until one produces a valid score; every score says which step produced it
and why the earlier ones did not.

``import scoring_core`` stays light: the engine and its dependencies (numpy,
pydantic, PyYAML) are imported the first time one of their names is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from scoring_core.errors import (
    ChainExhaustedError,
    ConfigError,
    DataFileError,
    EngineClosedError,
    InputError,
    MissingExtraError,
    PluginError,
    ScoringError,
    StepTimeoutError,
    UnknownStepError,
)
from scoring_core.hookspecs import hookimpl, hookspec

if TYPE_CHECKING:
    from scoring_core.engine import Engine
    from scoring_core.experiments.experiment import Experiment
    from scoring_core.results import BatchResult, Fallback, Provenance, ScoreResult
    from scoring_core.scorer import (
        DeclaresInputDtype,
        DescribesModel,
        RegisterScorer,
        Scorer,
        ScorerContext,
        SuppliesFeatureNames,
        SupportsCancel,
        SupportsClose,
        SupportsDescribe,
        WatchesFiles,
    )

__version__ = "0.1.0"

_LAZY = {
    "Engine": "scoring_core.engine",
    "Experiment": "scoring_core.experiments.experiment",
    "BatchResult": "scoring_core.results",
    "Fallback": "scoring_core.results",
    "Provenance": "scoring_core.results",
    "ScoreResult": "scoring_core.results",
    "RegisterScorer": "scoring_core.scorer",
    "Scorer": "scoring_core.scorer",
    "ScorerContext": "scoring_core.scorer",
    "SupportsCancel": "scoring_core.scorer",
    "SupportsClose": "scoring_core.scorer",
    "SupportsDescribe": "scoring_core.scorer",
    "SuppliesFeatureNames": "scoring_core.scorer",
    "DeclaresInputDtype": "scoring_core.scorer",
    "DescribesModel": "scoring_core.scorer",
    "WatchesFiles": "scoring_core.scorer",
}

__all__ = [
    "BatchResult",
    "ChainExhaustedError",
    "ConfigError",
    "DataFileError",
    "DeclaresInputDtype",
    "DescribesModel",
    "Engine",
    "EngineClosedError",
    "Experiment",
    "Fallback",
    "InputError",
    "MissingExtraError",
    "PluginError",
    "Provenance",
    "RegisterScorer",
    "ScoreResult",
    "Scorer",
    "ScorerContext",
    "ScoringError",
    "StepTimeoutError",
    "SuppliesFeatureNames",
    "SupportsCancel",
    "SupportsClose",
    "SupportsDescribe",
    "UnknownStepError",
    "WatchesFiles",
    "__version__",
    "hookimpl",
    "hookspec",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'scoring_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
