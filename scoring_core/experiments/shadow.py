"""Shadow scoring: a candidate chain scores a share of the rows off the caller's path.

The caller's thread appends the row to a bounded deque (no lock) and sets an event; one
worker thread scores it with the shadow engine and appends the pair (the served score,
the shadow's score) to a JSON Lines file. The shadow's score is never served. A shadow
that is slow, hangs or raises only fills its queue: rows that find it full are dropped
and counted, never waited for. Outcomes (``scoring_shadow_rows_total{outcome}``):
``scored``, ``failed`` (the shadow raised, or its chain was exhausted) and ``dropped``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scoring_core.errors import exception_text
from scoring_core.experiments.exposures import timestamp

if TYPE_CHECKING:
    from scoring_core.engine import Engine

__all__ = ["SHADOW_OUTCOMES", "ShadowRunner"]

logger = logging.getLogger("scoring_core")

SHADOW_OUTCOMES = ("scored", "failed", "dropped")
MAX_WAITING = 1_000  # rows (or batches) waiting for the shadow; past it they are dropped
CLOSE_WAIT_S = 2.0
WARN_EVERY_S = 10.0


class ShadowRunner:
    """Scores rows with ``engine`` on a worker thread; writes the pairs to ``log``."""

    def __init__(self, engine: Engine, *, experiment: str, log: Path | None) -> None:
        self.engine = engine
        self.experiment = experiment
        self.log = log
        self._waiting: deque[tuple[float, Any, Any, Any, Any, bool]] = deque()
        self._lock = threading.Lock()  # the counts: taken by the worker, and on a drop
        self.outcomes = dict.fromkeys(SHADOW_OUTCOMES, 0)
        self._wake = threading.Event()
        self._stopping = False
        self._warned_at = -WARN_EVERY_S
        self._file: Any = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            self._file = log.open("a", encoding="utf-8")
        self._thread = threading.Thread(
            target=self._run, name=f"scoring-shadow-{experiment}", daemon=True
        )
        self._thread.start()

    def submit(
        self, seconds: float, rows: Any, units: Any, variants: Any, served: Any, *, batch: bool
    ) -> None:
        """Queue one row (``batch=False``) or a 2-D array of rows and what was served."""
        if self._stopping or len(self._waiting) >= MAX_WAITING:
            with self._lock:
                self.outcomes["dropped"] += len(units) if batch else 1
            return
        self._waiting.append((seconds, rows, units, variants, served, batch))
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while self._waiting:
                self._score(self._waiting.popleft())
            if self._stopping:
                return

    def _score(self, item: tuple[float, Any, Any, Any, Any, bool]) -> None:
        seconds, rows, units, variants, served, batch = item
        n = len(units) if batch else 1
        pairs: list[dict[str, Any]] = []
        try:
            if batch:
                result = self.engine.score_batch(rows)
                shadow_scores = result.scores.tolist()
                shadow_scorers = result.scorers.tolist()
                served_scores, served_scorers = served
            else:
                one = self.engine.score(rows)
                shadow_scores, shadow_scorers = [one.score], [one.scorer]
                served_scores, served_scorers = [served.score], [served.scorer]
                units, variants = [units], [variants]
        except Exception as exc:
            with self._lock:
                self.outcomes["failed"] += n
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY_S:  # one warning per 10 s, not per row
                self._warned_at = now
                logger.warning(
                    "experiment %s: the shadow chain failed (counted in diagnostics, and as "
                    'scoring_shadow_rows_total{outcome="failed"}): %s',
                    self.experiment,
                    exception_text(exc),
                )
            return
        ts = timestamp(seconds)
        for i in range(n):
            pairs.append(
                {
                    "ts": ts,
                    "experiment": self.experiment,
                    "unit": units[i],
                    "variant": variants[i],
                    "served_score": float(served_scores[i]),
                    "served_scorer": served_scorers[i],
                    "shadow_score": float(shadow_scores[i]),
                    "shadow_scorer": shadow_scorers[i],
                    "shadow_chain": self.engine.name,
                }
            )
        with self._lock:
            self.outcomes["scored"] += n
        if self._file is not None and not self._file.closed:
            try:
                self._file.write("".join(json.dumps(p) + "\n" for p in pairs))
                self._file.flush()
            except (OSError, ValueError) as exc:  # ValueError: closed while it hung
                logger.error("experiment %s: shadow pairs not written: %s", self.experiment, exc)

    def counts(self) -> dict[str, Any]:
        with self._lock:
            outcomes = dict(self.outcomes)
        return {
            "chain": self.engine.name,
            "rows": outcomes,
            "waiting": len(self._waiting),
            "log": None if self.log is None else str(self.log),
        }

    def close(self, wait_s: float = CLOSE_WAIT_S) -> list[Exception]:
        """Score what is waiting (up to ``wait_s``), then close the shadow engine.

        A shadow still busy after ``wait_s`` (it hangs) is left behind: its waiting rows
        count as dropped, and its engine is closed without waiting for the call."""
        if self._stopping:
            return []
        self._stopping = True
        self._wake.set()
        self._thread.join(wait_s)
        errors: list[Exception] = []
        if self._thread.is_alive():
            left = 0
            while self._waiting:
                item = self._waiting.popleft()
                left += len(item[2]) if item[5] else 1
            with self._lock:
                self.outcomes["dropped"] += left
            logger.warning(
                "experiment %s: the shadow chain did not finish within %.1f s; left behind",
                self.experiment,
                wait_s,
            )
        try:
            self.engine.close(wait_s=0.0 if self._thread.is_alive() else CLOSE_WAIT_S)
        except Exception as exc:
            errors.append(exc)
        if self._file is not None:
            self._file.close()
        return errors
