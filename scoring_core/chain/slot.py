"""A loaded scorer and the calls in flight on it: :class:`ScorerSlot`.

A reload swaps a step's slot; the old slot closes its scorer once the last call that
entered it has left, so a call always finishes on the scorer it started with.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from scoring_core.errors import exception_text
from scoring_core.results import Provenance
from scoring_core.scorer import SupportsCancel, SupportsClose

__all__ = ["CLOSE_ERROR_RECORD", "ScorerSlot", "close_scorer", "input_dtype_of"]

logger = logging.getLogger("scoring_core")
CLOSE_ERROR_RECORD = "scoring_close_error"  # a log record's attribute: a close() that raised


class ScorerSlot:
    """A loaded scorer and the calls using it right now.

    A slot is retired when a reload replaces its scorer or the engine closes; the
    scorer is closed once the last call that entered the slot has left, so calls in
    flight always finish on the scorer they started with.
    """

    __slots__ = (
        "calls",
        "cancellable",
        "closed",
        "done",
        "dtype",
        "error",
        "lock",
        "provenance",
        "retired",
        "scorer",
        "step_name",
    )

    def __init__(self, scorer: Any, step_name: str, provenance: Provenance | None = None) -> None:
        self.scorer = scorer
        self.step_name = step_name
        # What this scorer stamps on every score it gives: built once, here, never per row,
        # and never changed, so a score carries the slot that really scored it.
        self.provenance = provenance
        self.cancellable = isinstance(scorer, SupportsCancel)
        # The rows' element type this scorer takes (DeclaresInputDtype), float32 unless it
        # says float64; the engine converts rows checked in the other type.
        self.dtype = input_dtype_of(scorer)
        self.lock = threading.Lock()
        # One entry per call in flight. list.append and list.pop are atomic, so the
        # normal path takes no lock: each side changes the list before it reads
        # ``retired``, and ``retire`` sets ``retired`` before it reads the list, so
        # whoever comes last sees the slot idle and closes it.
        self.calls: list[None] = []
        self.retired = False
        self.closed = False
        self.done = threading.Event()
        self.error: Exception | None = None

    def enter(self) -> bool:
        """Count a call in; False when the slot is retired (look up the step's new slot)."""
        self.calls.append(None)
        if self.retired:
            self.calls.pop()
            self._close_if_idle()
            return False
        return True

    def exit(self) -> None:
        self.calls.pop()
        if self.retired:
            self._close_if_idle()

    def retire(self) -> None:
        """No new calls; close the scorer now, or when the last call in flight leaves."""
        self.retired = True
        self._close_if_idle()

    def _close_if_idle(self) -> None:
        if self.calls:
            return
        with self.lock:
            if self.closed:
                return
            self.closed = True
        self._close()

    def close_after(self, timeout_s: float) -> Exception | None:
        """Retire, wait up to ``timeout_s`` for calls in flight, then make sure it is closed."""
        self.retire()
        if not self.done.wait(timeout_s):
            with self.lock:
                close_now = not self.closed
                self.closed = True
            if close_now:
                logger.warning(
                    "step %r: calls still running after %.1f s; closing its scorer anyway",
                    self.step_name,
                    timeout_s,
                )
                self._close()
            self.done.wait(timeout_s)
        return self.error

    def _close(self) -> None:
        self.error = close_scorer(self.scorer, self.step_name)
        self.done.set()


def close_scorer(scorer: Any, step_name: str) -> Exception | None:
    """Call ``scorer.close()`` if it has one; return its exception, annotated."""
    if not isinstance(scorer, SupportsClose):
        return None
    try:
        scorer.close()
    except Exception as exc:
        exc.add_note(f"while closing the scorer of step {step_name!r}")
        logger.error(
            "step %r: close() raised %s",
            step_name,
            exception_text(exc),
            extra={CLOSE_ERROR_RECORD: step_name},
        )
        return exc
    return None


def input_dtype_of(scorer: Any) -> np.dtype[Any]:
    """float64 when the scorer declares ``input_dtype`` float64, else float32."""
    declared = getattr(scorer, "input_dtype", None)
    try:
        dtype = np.dtype(declared) if declared is not None else _FLOAT32
    except TypeError:
        return _FLOAT32
    return dtype if dtype == np.float64 else _FLOAT32


_FLOAT32 = np.dtype(np.float32)
