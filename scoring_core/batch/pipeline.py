"""Overlapping reading, scoring and writing: one thread reads ahead, one writes behind.

pyarrow parsing and writing, numpy copies and ONNX Runtime release the GIL, so on two
cores the stages overlap. Each hand-off holds at most ``depth`` items, so memory stays
bounded; errors surface in the main thread, in order.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Generic, TypeVar

__all__ = ["WriteBehind", "map_in_order", "read_ahead"]

T = TypeVar("T")
R = TypeVar("R")
_POLL_S = 0.1
_GIVE_UP_S = 10.0  # a producer stuck on a pipe is abandoned (its thread is a daemon)


def read_ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Run ``items`` in a background thread, ``depth`` items ahead of the consumer."""
    box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        box.put(("item", item), timeout=_POLL_S)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(("done", None))
        except BaseException as exc:  # raised in the consumer
            box.put(("error", exc))

    thread = threading.Thread(target=produce, name="scoring-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        _drain(box, thread)


def map_in_order(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``fn`` over ``items`` on ``workers`` threads, yielding results in input order.

    At most ``workers + 1`` items are in flight, so memory stays bounded. The first error
    is raised in input order; items submitted after it are cancelled or left to finish.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="scoring-chunk") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _drain(box: queue.Queue[Any], thread: threading.Thread) -> None:
    for _ in range(int(_GIVE_UP_S / _POLL_S)):
        if not thread.is_alive():
            return
        with contextlib.suppress(queue.Empty):
            box.get(timeout=_POLL_S)


class WriteBehind(Generic[T]):
    """Calls ``write(item)`` for each submitted item in a background thread, in order.

    ``submit`` raises the first error the writer hit; leaving the ``with`` block waits for
    the writes to finish (and raises their error, if any).
    """

    def __init__(self, write: Callable[[T], None], depth: int = 1) -> None:
        self._write = write
        self._box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="scoring-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            kind, item = self._box.get()
            if kind == "done":
                return
            if self._error is None:
                try:
                    self._write(item)
                except BaseException as exc:  # raised in the main thread
                    self._error = exc

    def submit(self, item: T) -> None:
        self._raise_error()
        self._box.put(("item", item))

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def __enter__(self) -> WriteBehind[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._box.put(("done", None))
        self._thread.join()
        if exc is None:
            self._raise_error()
