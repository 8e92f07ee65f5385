"""Calling the scorer under test: read-only rows, a time limit, and how a failure is told.

Internal to the conformance check (:mod:`scoring_core.testing.conformance`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "FloatRows",
    "HungError",
    "Scores",
    "StopChecksError",
    "WroteInputError",
    "call_with_timeout",
    "describe_error",
    "read_only",
    "rows_label",
]


FloatRows = npt.NDArray[np.float32]
Scores = npt.NDArray[np.float64]


class HungError(Exception):
    """A call did not return in time."""


class StopChecksError(Exception):
    """The remaining checks cannot run."""


class WroteInputError(Exception):
    """score(X) tried to write to its read-only input (already reported)."""


def read_only(X: FloatRows) -> FloatRows:
    """A C-contiguous read-only copy of ``X``, as the engine passes rows to a scorer."""
    copy = np.array(X, dtype=np.float32, order="C", copy=True)
    copy.flags.writeable = False
    return copy


def call_with_timeout(timeout_s: float, function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function(*args)`` on a worker thread; raise its error, or HungError on timeout."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = function(*args)
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=run, name="scoring-conformance", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise HungError
    if "error" in box:
        raise box["error"]
    return box["value"]


def describe_error(exc: BaseException) -> str:
    """The error's type and message, for a violation: ``"ValueError: bad rows"``."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def rows_label(n: int) -> str:
    """``"1 row"`` or ``"n rows"``."""
    return "1 row" if n == 1 else f"{n} rows"
