"""Bounding how long a step may take, without slowing the normal path.

Two mechanisms, chosen per step when the engine is built:

* A scorer that can be cancelled (it has ``cancel_token()`` and ``cancel(token)``,
  and ``score(X, token)``; the ONNX scorer does, through ``RunOptions.terminate``)
  runs on the caller's thread. One :class:`Watchdog` thread per engine cancels the
  calls that overrun. The cost on the normal path is a token and a heap push.
* Any other scorer whose step sets ``timeout_ms`` runs on a worker thread, and the
  caller waits at most the timeout. Python code blocked in another thread cannot be
  interrupted, so an overrunning call is abandoned: it keeps its worker until it
  returns, and its late result is dropped.

Steps without ``timeout_ms`` (and no chain ``deadline_ms``) use neither.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

__all__ = ["StepTimeoutError", "ThreadedRunner", "Watchdog", "is_cancellable"]


class StepTimeoutError(Exception):
    """A step did not answer within its time budget."""

    def __init__(self, budget_s: float, *, cancelled: bool) -> None:
        self.budget_s = budget_s
        self.cancelled = cancelled
        how = "cancelled" if cancelled else "abandoned; its late result will be dropped"
        super().__init__(f"timed out after {budget_s * 1e3:g} ms ({how})")


def is_cancellable(scorer: Any) -> bool:
    """True when the scorer offers ``cancel_token()`` and ``cancel(token)``."""
    return callable(getattr(scorer, "cancel_token", None)) and callable(
        getattr(scorer, "cancel", None)
    )


class _Watch:
    __slots__ = ("cancel", "cancelled", "deadline", "done", "token")

    def __init__(self, deadline: float, token: Any, cancel: Callable[[Any], None]) -> None:
        self.deadline = deadline
        self.token = token
        self.cancel = cancel
        self.done = False
        self.cancelled = False

    def __lt__(self, other: _Watch) -> bool:
        return self.deadline < other.deadline


class Watchdog:
    """One thread that cancels calls past their deadline.

    Calls wait in a heap ordered by deadline. The thread wakes every ``tick_s`` (a
    quarter of the smallest budget seen, between 1 and 50 ms), so a call is cancelled
    at most one tick after its deadline; it never needs waking by the callers. It
    starts with the first watched call and ends with :meth:`stop`.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[_Watch] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.tick_s = 0.05
        self.cancelled = 0

    def watch(self, budget_s: float, token: Any, cancel: Callable[[Any], None]) -> _Watch:
        """Start watching a call; set ``done`` on the returned handle when it returns."""
        item = _Watch(self._clock() + budget_s, token, cancel)
        with self._lock:
            heapq.heappush(self._heap, item)
            if budget_s / 4 < self.tick_s:
                self.tick_s = max(0.001, budget_s / 4)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="scoring-watchdog", daemon=True
                )
                self._thread.start()
        return item

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            now = self._clock()
            overdue: list[_Watch] = []
            with self._lock:
                heap = self._heap
                while heap and (heap[0].done or heap[0].deadline <= now):
                    item = heapq.heappop(heap)
                    if not item.done:
                        overdue.append(item)
            for item in overdue:
                item.cancelled = True
                self.cancelled += 1
                try:
                    item.cancel(item.token)
                except Exception:  # a failing cancel must not stop the watchdog
                    continue

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)


class ThreadedRunner:
    """Runs a non-cancellable scorer on worker threads, waiting at most a budget."""

    def __init__(self, step_name: str, workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"step-{step_name}")
        self.abandoned = 0

    def call(self, fn: Callable[[Any], Any], X: Any, budget_s: float) -> Any:
        future = self._pool.submit(fn, X)
        try:
            return future.result(timeout=budget_s)
        except FutureTimeout:
            if not future.cancel():
                self.abandoned += 1
            raise StepTimeoutError(budget_s, cancelled=False) from None

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
