"""Errors the ``onnx`` scorer raises on purpose.

::

    scoring_core.ScoringError
    ├── OnnxLoadError       the step could not load its model; the message is the reason
    │   └── OnnxConfigError the step's options do not fit the model (several outputs and
    │                       no `output:`, a `class:` the model does not have); also a
    │                       ConfigError, so the engine refuses to start
    └── ScorerClosedError   score() was called after close()
"""

from __future__ import annotations

from pathlib import Path

from scoring_core import ConfigError, ScoringError

__all__ = ["OnnxConfigError", "OnnxLoadError", "ScorerClosedError"]


class OnnxLoadError(ScoringError):
    """The model could not be loaded, or does not fit the engine's features.

    ``path`` is the model file as resolved; the message says what was expected, what
    was found, and what to do.
    """

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        self.path = path
        # (version, reason) of each model version that failed, for a folder of versions
        self.version_failures: list[tuple[int, str]] = []
        super().__init__(message)


class OnnxConfigError(OnnxLoadError, ConfigError):
    """The step's options cannot work with this model; the message says what to write.

    A :class:`~scoring_core.ConfigError` too: the engine does not start on it, since no
    reload of the same configuration could serve the model.
    """

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        self.path = path
        self.version_failures = []
        ConfigError.__init__(self, message)


class ScorerClosedError(ScoringError, RuntimeError):
    """The scorer was used after ``close()``; the engine builds a new one on reload."""
