"""Keeping stdout for the output while plugins run: ``scoring score -o -``.

A plugin that prints (at import, at load, in ``score``) must not corrupt an output written
to stdout; while :func:`prints_to_stderr` is active, its text goes to stderr.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["prints_to_stderr"]


@contextlib.contextmanager
def prints_to_stderr(active: bool = True) -> Iterator[None]:
    """While active, text written to ``sys.stdout`` (a plugin's ``print``) goes to stderr.

    For ``scoring score -o -``: stdout belongs to the output, written through
    ``sys.stdout.buffer``, which stays the real stdout; so do ``fileno`` and ``isatty``.
    """
    if not active:
        yield
        return
    real = sys.stdout
    sys.stdout = _TextToStderr(real)
    try:
        yield
    finally:
        sys.stdout = real


class _TextToStderr:
    """A stand-in for ``sys.stdout``: text to stderr, bytes (``.buffer``) to stdout."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.buffer = real.buffer

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        sys.stderr.writelines(lines)

    def flush(self) -> None:
        sys.stderr.flush()
        self._real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)
