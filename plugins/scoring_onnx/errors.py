"""Errors the ``onnx`` scorer raises on purpose.

::

    scoring_core.ScoringError
    ├── OnnxLoadError       the step could not load its model; the message is the reason
    └── ScorerClosedError   score() was called after close()
"""

from __future__ import annotations

from pathlib import Path

from scoring_core import ScoringError

__all__ = ["OnnxLoadError", "ScorerClosedError"]


class OnnxLoadError(ScoringError):
    """The model could not be loaded, or does not fit the engine's features.

    ``path`` is the model file as resolved; the message says what was expected, what
    was found, and what to do.
    """

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        self.path = path
        super().__init__(message)


class ScorerClosedError(ScoringError, RuntimeError):
    """The scorer was used after ``close()``; the engine builds a new one on reload."""
