"""Bounding how long a step may take, without slowing the normal path.

Two mechanisms, chosen per step when the engine is built:

* A scorer that can be cancelled (:class:`scoring_core.SupportsCancel`: ``cancel_token()``,
  ``cancel(token)`` and ``score(X, token)``; the ONNX scorer is, through
  ``RunOptions.terminate``)
  runs on the caller's thread. One :class:`Watchdog` thread per engine cancels the
  calls that overrun. The cost on the normal path is a token and a dict insert.
* Any other scorer whose step sets ``timeout_ms`` runs on a daemon worker thread,
  and the caller waits at most the timeout. Python code blocked in another thread cannot be
  interrupted, so an overrunning call is abandoned: it keeps its worker until it
  returns, and its late result is dropped.

Steps without ``timeout_ms`` (and no chain ``deadline_ms``) use neither.

Loads are bounded the same way (``load_timeout_s``): a load past it is abandoned on its
thread. At exit the process waits up to :data:`EXIT_WAIT_S` for abandoned loads still
running, because a process that exits while onnxruntime runs in another thread can abort
("terminate called without an active exception").
"""

from __future__ import annotations

import atexit
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from scoring_core.errors import StepTimeoutError

__all__ = ["EXIT_WAIT_S", "ThreadedRunner", "Watchdog", "join_at_exit"]

EXIT_WAIT_S = 10.0
_at_exit: list[threading.Thread] = []
_at_exit_lock = threading.Lock()


def join_at_exit(thread: threading.Thread) -> None:
    """Have the process wait (at most :data:`EXIT_WAIT_S` in all) for ``thread`` at exit."""
    with _at_exit_lock:
        _at_exit[:] = [t for t in _at_exit if t.is_alive()]
        _at_exit.append(thread)


@atexit.register
def _join_abandoned() -> None:
    ends = time.monotonic() + EXIT_WAIT_S
    with _at_exit_lock:
        threads = list(_at_exit)
    for thread in threads:
        thread.join(max(0.0, ends - time.monotonic()))


class _Watch:
    __slots__ = ("cancel", "cancelled", "deadline", "done", "token")

    def __init__(self, deadline: float, token: Any, cancel: Callable[[Any], None]) -> None:
        self.deadline = deadline
        self.token = token
        self.cancel = cancel
        self.done = False
        self.cancelled = False


class Watchdog:
    """One thread that cancels calls past their deadline.

    Calls in flight sit in a dict (an insert and a pop per call, no lock: both are
    atomic under the GIL), so the thread's work at each tick is proportional to the
    calls running, not to the calls made. It wakes every ``tick_s`` (a quarter of
    the smallest configured budget, between 1 and 50 ms), so a call is cancelled at
    most one tick after its deadline, and callers never have to wake it. It uses the
    real monotonic clock (a test clock that stands still must not stop
    cancellation), starts with the first watched call and ends with :meth:`stop`.
    """

    def __init__(
        self,
        smallest_budget_s: float | None = None,
        *,
        on_cancel: Callable[[], None] | None = None,
    ) -> None:
        self._on_cancel = on_cancel
        self._active: dict[int, _Watch] = {}
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        budget = 0.2 if smallest_budget_s is None else smallest_budget_s
        self.tick_s = min(0.05, max(0.001, budget / 4))

    def watch(self, budget_s: float, token: Any, cancel: Callable[[Any], None]) -> _Watch:
        """Start watching a call; pass the handle to :meth:`finish` when it returns."""
        item = _Watch(time.monotonic() + budget_s, token, cancel)
        self._active[id(item)] = item
        if self._thread is None:
            self._start()
        return item

    def finish(self, item: _Watch) -> None:
        item.done = True
        self._active.pop(id(item), None)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="scoring-watchdog", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            now = time.monotonic()
            for item in list(self._active.values()):
                if item.done or item.deadline > now:
                    continue
                self._active.pop(id(item), None)
                item.cancelled = True
                if self._on_cancel is not None:
                    self._on_cancel()
                try:
                    item.cancel(item.token)
                except Exception:  # a failing cancel must not stop the watchdog
                    continue

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)


class _Call:
    __slots__ = ("X", "done", "error", "fn", "result")

    def __init__(self, fn: Callable[[Any], Any], X: Any) -> None:
        self.fn = fn
        self.X = X
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class ThreadedRunner:
    """Runs a non-cancellable scorer's calls on daemon worker threads, waiting at most a budget.

    Idle workers are reused; a call that finds none idle starts a new one, so callers
    never queue behind each other and the whole budget is the scorer's. A worker
    stuck in an abandoned call stays stuck (nothing can stop it), but it is a daemon
    thread: it never keeps the process from exiting.
    """

    def __init__(self, step_name: str, *, on_abandoned: Callable[[], None] | None = None) -> None:
        self._name = step_name
        self._on_abandoned = on_abandoned
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._workers = 0
        self._threads: list[threading.Thread] = []
        self._stopped = False

    def call(self, fn: Callable[[Any], Any], X: Any, budget_s: float) -> Any:
        task = _Call(fn, X)
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                self._workers += 1
                worker = threading.Thread(
                    target=self._work, name=f"step-{self._name}-{self._workers}", daemon=True
                )
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(worker)
                worker.start()
        self._calls.put(task)
        if not task.done.wait(budget_s):
            if self._on_abandoned is not None:
                self._on_abandoned()
            raise StepTimeoutError(budget_s, cancelled=False)
        if task.error is not None:
            raise task.error
        return task.result

    def _work(self) -> None:
        while True:
            task = self._calls.get()
            if task is None:
                return
            try:
                task.result = task.fn(task.X)
            except BaseException as exc:  # handed to the caller, who decides
                task.error = exc
            task.done.set()
            with self._lock:
                if self._stopped:
                    return
                self._idle += 1

    def shutdown(self, wait_s: float = 0.0) -> bool:
        """Stop the idle workers; wait up to ``wait_s`` for the busy ones (abandoned calls)
        to return. True when no worker is left running."""
        with self._lock:
            self._stopped = True
            idle, self._idle = self._idle, 0
            threads = list(self._threads)
        for _ in range(idle):
            self._calls.put(None)
        ends = time.monotonic() + wait_s
        for thread in threads:
            thread.join(max(0.0, ends - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)
