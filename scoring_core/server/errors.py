"""Errors become HTTP statuses here, in one table (core errors know no statuses).

Every answer that is not a success is ``{"error": "..."}``. A client's mistake is a 4xx
that says what was wrong; what is not the client's fault and not ours (a chain that
cannot score, a server shutting down) is a 503; anything else is a 500 whose body says
only to look at the server's log, where the traceback is. No traceback reaches a client.
"""

from __future__ import annotations

from scoring_core.errors import (
    ChainExhaustedError,
    ConfigError,
    DataFileError,
    EngineClosedError,
    InputError,
    ScoringError,
    UnknownStepError,
)

__all__ = [
    "INTERNAL_ERROR_TEXT",
    "NotReadyError",
    "ProtocolError",
    "UnauthorizedError",
    "UnknownModelError",
    "status_of",
]

INTERNAL_ERROR_TEXT = "internal server error; the server's log has the details"


class ProtocolError(Exception):
    """The request is not what the protocol says (bad JSON, a tensor without a shape...).

    ``status`` is the HTTP status to answer with (400 unless said otherwise).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        self.status = status
        super().__init__(message)


class UnknownModelError(ProtocolError):
    """No served model (chain) of that name, or not that version of it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=404)


class NotReadyError(ProtocolError):
    """The model is not built yet, or cannot score now."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=503)


class UnauthorizedError(ProtocolError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=401)


# core error -> status; the first class an error is an instance of wins
_STATUSES: tuple[tuple[type[BaseException], int], ...] = (
    (InputError, 400),
    (UnknownStepError, 404),
    (ChainExhaustedError, 503),  # every step failed: the chain cannot score these rows now
    (EngineClosedError, 503),  # shutting down
    (ConfigError, 400),
    (DataFileError, 400),  # a CSV body that cannot be read
    (ScoringError, 500),
)


def status_of(error: BaseException) -> int:
    """The HTTP status for ``error``; 500 for anything unexpected."""
    if isinstance(error, ProtocolError):
        return error.status
    for kind, status in _STATUSES:
        if isinstance(error, kind):
            return status
    return 500
