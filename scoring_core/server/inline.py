"""Small infer requests on the event loop: which may be scored there (:class:`InlineGate`),
and the helpers of the plain-ASGI infer route (``app.ScoringApp``)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from scoring_core.server.errors import ProtocolError

__all__ = ["INFER_ROUTES", "INLINE_MAX_S", "InlineGate", "header_length_of", "infer_target",
           "too_large"]  # fmt: skip

logger = logging.getLogger("scoring_core.server")

#: a small request that holds the event loop longer than this moves its model to a thread
INLINE_MAX_S = float(os.environ.get("SCORING_SERVE_INLINE_MAX_MS", 20)) / 1e3
_BACK_AFTER = 1000

INFER_ROUTES = ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer")


def too_large(limit: int) -> ProtocolError:
    return ProtocolError(
        f"the request body is larger than the server's limit of {limit} bytes (--max-body-mb)",
        status=413,
    )


def header_length_of(value: str | bytes | None) -> int | None:
    """``Inference-Header-Content-Length``: the JSON header's length in a binary body."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ProtocolError("Inference-Header-Content-Length is not a number") from None


def infer_target(path: str) -> tuple[str, str | None] | None:
    """(name, version) when ``path`` is an infer route (as Starlette's ``{name}`` matches:
    one non-empty path segment each), else None."""
    if not path.startswith("/v2/models/") or not path.endswith("/infer"):
        return None
    parts = path[11:-6].split("/")
    if len(parts) == 1 and parts[0]:
        return parts[0], None
    if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
        return parts[0], parts[2]
    return None


class InlineGate:
    """Whether one model's small infer requests are scored on the event loop.

    Only a model whose every step ends on its own (``dataplane.may_score_inline``) may be,
    and each such request is timed: one that holds the loop longer than
    :data:`INLINE_MAX_S` sends the model's small requests to its own thread from then on
    (a WARNING says so); :data:`_BACK_AFTER` calls in a row there, each under a tenth of
    that, bring them back to the loop.
    """

    __slots__ = ("_streak", "allowed", "inline", "name")

    def __init__(self, name: str, allowed: bool) -> None:
        self.name = name
        self.allowed = self.inline = allowed
        self._streak = 0

    def timed_inline(self, seconds: float) -> None:
        if seconds > INLINE_MAX_S:
            self.inline = False
            self._streak = 0
            logger.warning(
                "model %r: a request held the event loop for %.1f ms (over %g ms, "
                "SCORING_SERVE_INLINE_MAX_MS); its small requests now go to a thread of "
                "their own until they are fast again",
                self.name,
                seconds * 1e3,
                INLINE_MAX_S * 1e3,
            )

    def timed_call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` on the model's thread, timed to bring it back to the loop."""
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            if self.allowed and not self.inline:
                if time.perf_counter() - started < INLINE_MAX_S / 10:
                    self._streak += 1
                    if self._streak >= _BACK_AFTER:
                        self.inline = True
                        logger.info("model %r: small requests are fast again, scored on "
                                    "the event loop", self.name)  # fmt: skip
                else:
                    self._streak = 0
