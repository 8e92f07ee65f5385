"""scoring-core: scoring with fallbacks.

A chain of scorers, configured in YAML and supplied by pluggy plugins, tried in
order until one produces a valid score; every score says which step produced it
and why the earlier ones did not.
"""

from scoring_core.context import Scorer, ScorerContext
from scoring_core.engine import Engine
from scoring_core.errors import (
    ChainExhaustedError,
    ConfigError,
    EngineClosedError,
    InputError,
    PluginError,
    ScoringError,
)
from scoring_core.hookspecs import hookimpl, hookspec
from scoring_core.results import BatchResult, Fallback, ScoreResult

__version__ = "0.1.0"

__all__ = [
    "BatchResult",
    "ChainExhaustedError",
    "ConfigError",
    "Engine",
    "EngineClosedError",
    "Fallback",
    "InputError",
    "PluginError",
    "ScoreResult",
    "Scorer",
    "ScorerContext",
    "ScoringError",
    "__version__",
    "hookimpl",
    "hookspec",
]
