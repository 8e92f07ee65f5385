"""Errors raised by scoring-core.

Every error the engine raises on purpose derives from :class:`ScoringError`::

    ScoringError
    ├── ConfigError          bad YAML, bad schema, bad options (key path + file:line)
    ├── PluginError          a plugin failed to import (strict mode) or clashed with another
    ├── InputError           a bad row: missing, unknown, non-finite or out-of-range feature
    │                        (also a ValueError)
    ├── UnknownStepError     a step name that is not in the chain (also a KeyError)
    ├── ChainExhaustedError  every step of the chain failed for a row
    ├── EngineClosedError    the engine was used after ``close()`` (also a RuntimeError)
    ├── StepTimeoutError     a step did not answer within its budget (its rows fall back;
    │                        it reaches callers only inside a fallback's reason)
    ├── DataFileError        a data file could not be read or written (file, column)
    │   └── OutputError      the system refused a file: a full disk, a file too large, a
    │                        read-only filesystem, a closed standard output (file, errno)
    └── MissingExtraError    an optional feature's library is not installed: names the
                             extra to install (also an ImportError)

Each error carries its context as attributes, so callers never parse messages. The edges
(the CLI, the HTTP server) map these to exit codes and statuses; nothing here knows them.
:func:`did_you_mean` words the "did you mean" hint every message about a name uses, and
:func:`exception_text` shows a plugin's exception, whatever its ``__str__`` does.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scoring_core.results import Fallback

__all__ = [
    "ChainExhaustedError",
    "ConfigError",
    "DataFileError",
    "EngineClosedError",
    "InputError",
    "MissingExtraError",
    "OutputError",
    "PluginError",
    "ScoringError",
    "StepTimeoutError",
    "UnknownStepError",
    "did_you_mean",
    "exception_text",
]


class ScoringError(Exception):
    """Base class of every error scoring-core raises on purpose."""


class ConfigError(ScoringError):
    """The configuration is invalid.

    ``key_path`` is the dotted path of the offending key (``chain[0].options.model``),
    ``file`` and ``line`` locate it in the YAML file when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        key_path: str | None = None,
        file: str | None = None,
        line: int | None = None,
    ) -> None:
        self.message = message
        self.key_path = key_path
        self.file = file
        self.line = line
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.file is not None and self.line is not None:
            where = f"{self.file}:{self.line}: "
        elif self.file is not None:
            where = f"{self.file}: "
        elif self.line is not None:
            where = f"line {self.line}: "
        key = f"{self.key_path}: " if self.key_path else ""
        return f"{where}{key}{self.message}"


class PluginError(ScoringError):
    """A plugin could not be loaded, or two plugins registered the same scorer name."""


class InputError(ScoringError, ValueError):
    """An input row is invalid; nothing was scored.

    ``feature`` names the offending feature (None when the row's shape is wrong),
    ``row`` is the 0-based row index within the call, and ``reason`` is the message
    without its ``row N:`` prefix (to show beside a row number of your own).
    """

    def __init__(self, message: str, *, feature: str | None = None, row: int | None = None):
        self.feature = feature
        self.row = row
        self.reason = message
        super().__init__(message)

    @classmethod
    def for_row(cls, row: int, reason: str, *, feature: str | None = None) -> InputError:
        """The error about row ``row``: its message reads ``row N: reason``."""
        error = cls(f"row {row}: {reason}", feature=feature, row=row)
        error.reason = reason
        return error


class UnknownStepError(ScoringError, KeyError):
    """A step name that is not in the chain (``engine.reload("nueral")``).

    ``step`` is the name asked for, ``steps`` the chain's step names.
    """

    def __init__(self, step: str, steps: Sequence[str]) -> None:
        self.step = step
        self.steps = tuple(steps)
        super().__init__(
            f"no step {step!r} in the chain{did_you_mean(step, self.steps, list_known=False)}; "
            f"steps: {', '.join(self.steps) or 'none'}"
        )

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0])


class ChainExhaustedError(ScoringError):
    """Every step of the chain failed for at least one row.

    ``fallbacks`` holds one record per step tried, each with ``.step`` and ``.reason``;
    ``row`` is the first row that no step could score (0 for a single row).
    """

    def __init__(self, fallbacks: Sequence[Fallback], *, row: int = 0) -> None:
        self.fallbacks = tuple(fallbacks)
        self.row = row
        details = "; ".join(f"{f.step}: {f.reason}" for f in self.fallbacks) or "no steps"
        super().__init__(
            f"every step of the chain failed for row {row} ({details}); "
            "run `scoring check` to see each step's status, or set `on_exhausted: {score: ...}` "
            "to serve an explicit default"
        )


class EngineClosedError(ScoringError, RuntimeError):
    """The engine was used after ``close()``; build a new one."""

    def __init__(self, message: str = "the engine is closed; build a new Engine to score again"):
        super().__init__(message)


class StepTimeoutError(ScoringError):
    """A step did not answer within its time budget.

    ``budget_s`` is the budget in seconds; ``cancelled`` is True when the call was
    cancelled (a scorer with cancellation), False when it was abandoned on its worker
    thread. The engine turns it into a ``timeout`` fallback of that step.
    """

    def __init__(self, budget_s: float, *, cancelled: bool) -> None:
        self.budget_s = budget_s
        self.cancelled = cancelled
        how = "cancelled" if cancelled else "abandoned; its late result will be dropped"
        super().__init__(f"timed out after {budget_s * 1e3:.3g} ms ({how})")


class DataFileError(ScoringError):
    """A data file could not be read or written: unreadable, empty, truncated, a missing
    column, a column that cannot hold numbers. ``file`` and ``column`` say where."""

    def __init__(self, message: str, *, file: str | None = None, column: str | None = None):
        self.file = file
        self.column = column
        super().__init__(message)


class MissingExtraError(ScoringError, ImportError):
    """An optional feature needs a library that is not installed. ``extra`` is the
    scoring-core extra that brings it (``serve``); the message says what to run."""

    def __init__(self, feature: str, *, extra: str, library: str) -> None:
        self.extra = extra
        self.library = library
        super().__init__(
            f"{feature} needs {library}, which is not installed: "
            f"pip install 'scoring-core[{extra}]'",
            name=library,
        )


class OutputError(DataFileError):
    """The system refused to write (or finish) a file: no space left, the file-size limit,
    a read-only filesystem, no permission, a closed standard output. Not a problem with the
    data: ``file`` names the file, ``errno`` is the system's error number (None if unknown)."""

    def __init__(self, message: str, *, file: str | None = None, errno: int | None = None):
        self.errno = errno
        super().__init__(message, file=file)

    @classmethod
    def of(cls, exc: OSError, file: str, what: str = "write") -> OutputError:
        """``cannot write FILE: <the system's reason>`` for the OSError ``exc``."""
        reason = exc.strerror or str(exc) or type(exc).__name__
        return cls(f"cannot {what} {file}: {reason}", file=file, errno=exc.errno)


def did_you_mean(word: str, candidates: Iterable[str], *, list_known: bool = True) -> str:
    """A ``"; did you mean 'x'?"`` suffix, or (``list_known``) a list of the known names."""
    known = sorted(set(candidates))
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    if list_known and known and len(known) <= 12:
        return f"; known: {', '.join(known)}"
    return ""


def exception_text(exc: BaseException) -> str:
    """``Type: message`` (or ``Type`` alone), for an exception a plugin raised.

    Never raises: a plugin's exception whose ``__str__`` raises or returns a non-string is
    shown by its type, so one broken plugin cannot break the message about it.
    """
    name = type(exc).__name__
    try:
        text = str(exc)
    except Exception:
        text = "(its message could not be read)"
    return f"{name}: {text}" if text else name
