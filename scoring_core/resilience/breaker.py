"""A circuit breaker per step, with resilience4j's semantics.

* **closed**: calls go through; outcomes fill a sliding window of the last
  ``window`` calls. Once at least ``minimum_calls`` are in the window and the share
  of failures reaches ``failure_rate``, the breaker opens.
* **open**: the step is skipped at no cost (the result says ``circuit_open``) for
  ``open_seconds``; then the breaker turns half-open.
* **half-open**: exactly ``half_open_calls`` probe calls go through, however many
  threads ask; when they have all answered, the breaker closes if their failure
  share is below ``failure_rate`` and opens again otherwise.

Input errors never reach a step, so they never count. The clock is injectable.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker"]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_rate: float = 0.5,
        minimum_calls: int = 20,
        window: int = 100,
        open_seconds: float = 30.0,
        half_open_calls: int = 3,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.failure_rate = failure_rate
        self.minimum_calls = minimum_calls
        self.open_seconds = open_seconds
        self.half_open_calls = half_open_calls
        self._clock = clock
        self._lock = threading.Lock()
        self._window: deque[bool] = deque(maxlen=window)
        self._failures = 0
        self._state = CLOSED
        self._opened_at = 0.0
        self._probes_started = 0
        self._probe_outcomes: list[bool] = []
        self.transitions: deque[tuple[str, str]] = deque(maxlen=64)  # the latest ones
        # skips and moves are counted where every count of the step is
        # (scoring_core.observe), through ``on_event``
        self._on_event = on_event if on_event is not None else _ignore

    @property
    def state(self) -> str:
        with self._lock:
            self._maybe_half_open()
            return self._state

    def allow(self) -> bool:
        """May a call go through now? Counts a skip when it may not."""
        with self._lock:
            if self._state == CLOSED:
                return True
            self._maybe_half_open()
            if self._state == HALF_OPEN and self._probes_started < self.half_open_calls:
                self._probes_started += 1
                return True
        self._on_event("breaker_skipped")
        return False

    def record(self, failed: bool) -> None:
        """The outcome of a call that :meth:`allow` let through."""
        with self._lock:
            if self._state == HALF_OPEN:
                self._probe_outcomes.append(failed)
                if len(self._probe_outcomes) >= self.half_open_calls:
                    rate = sum(self._probe_outcomes) / len(self._probe_outcomes)
                    self._move(OPEN if rate >= self.failure_rate else CLOSED)
                return
            if self._state == OPEN:
                return  # a call that started before the breaker opened
            if len(self._window) == self._window.maxlen and self._window[0]:
                self._failures -= 1
            self._window.append(failed)
            self._failures += failed
            calls = len(self._window)
            if calls >= self.minimum_calls and self._failures / calls >= self.failure_rate:
                self._move(OPEN)

    def release(self) -> None:
        """Give back a half-open probe that :meth:`allow` granted but that never ran."""
        with self._lock:
            if self._state == HALF_OPEN and self._probes_started > len(self._probe_outcomes):
                self._probes_started -= 1

    def _maybe_half_open(self) -> None:
        if self._state == OPEN and self._clock() - self._opened_at >= self.open_seconds:
            self._move(HALF_OPEN)

    def _move(self, state: str) -> None:
        self.transitions.append((self._state, state))
        self._on_event(f"breaker_{state}")
        self._state = state
        if state == OPEN:
            self._opened_at = self._clock()
        elif state == HALF_OPEN:
            self._probes_started = 0
            self._probe_outcomes = []
        else:
            self._window.clear()
            self._failures = 0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self._maybe_half_open()
            calls = len(self._window)
            return {
                "state": self._state,
                "failure_rate": round(self._failures / calls, 4) if calls else 0.0,
                "calls_in_window": calls,
            }


def _ignore(event: str) -> None:
    pass
