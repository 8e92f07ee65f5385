"""Reload a step when the files its scorer was loaded from change on disk.

A scorer opts in with ``watched_files()`` (:class:`~scoring_core.WatchesFiles`; the ONNX
scorer returns its model file and external data). With ``watch: {interval_s: 2}`` in the
YAML, one thread per engine compares each file's size and modification time every
interval; a change triggers ``engine.reload(step)``, which loads and checks the new file
beside the old one and keeps the old scorer serving if the new one is bad.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scoring_core.scorer import WatchesFiles

__all__ = ["FileWatcher", "file_signature"]

logger = logging.getLogger("scoring_core")
Signature = tuple[tuple[str, int, int] | tuple[str, None, None], ...]


def file_signature(scorer: Any) -> Signature | None:
    """(path, mtime_ns, size) of each file the scorer watches; None if it watches none."""
    if not isinstance(scorer, WatchesFiles):
        return None
    entries: list[tuple[str, int, int] | tuple[str, None, None]] = []
    for path in scorer.watched_files():
        try:
            stat = os.stat(Path(path))
        except OSError:
            entries.append((str(path), None, None))
        else:
            entries.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(entries)


class FileWatcher:
    """One daemon thread that polls the steps' files and asks for reloads."""

    def __init__(
        self,
        steps: Sequence[Any],
        reload: Callable[[str], str],
        interval_s: float,
        *,
        on_reload: Callable[[], None] | None = None,
    ) -> None:
        self._steps = list(steps)
        self._reload = reload
        self._on_reload = on_reload
        self.interval_s = interval_s
        self._baseline: dict[str, Signature | None] = {
            step.name: file_signature(step.scorer) for step in self._steps
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scoring-watch", daemon=True)
        self._thread.start()

    def check_now(self) -> list[str]:
        """Compare every step's files with the last load; reload the changed steps."""
        changed = []
        for step in self._steps:
            before = self._baseline.get(step.name)
            now = file_signature(step.scorer)
            if before is None or now == before:
                continue
            changed.append(step.name)
            logger.info("step %r: its files changed on disk, reloading", step.name)
            outcome = self._reload(step.name)
            if self._on_reload is not None:
                self._on_reload()
            # After a failed reload the old scorer keeps its old files; remember what was
            # seen so a bad file is tried once, not at every tick.
            self._baseline[step.name] = (
                file_signature(step.scorer) if outcome == "reloaded" else now
            )
        return changed

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check_now()
            except Exception:  # the watcher must outlive any one bad reload
                logger.exception("model file watch failed; it keeps running")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
