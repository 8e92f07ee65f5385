"""Walking the chain: each step in config order, per-row fallback, provenance.

The engine checks input and builds the steps; :class:`Chain` takes checked float32
rows and tries the steps in order, each through :meth:`StepCaller.attempt
<scoring_core.chain.attempt.StepCaller.attempt>`, the one path of a step call. A step
fails when it is unavailable, its breaker is open, the chain's deadline has passed, it
raised or timed out, or it returned the wrong shape, a non-number, a non-finite value or
a value outside ``output_range``. Failure is per row: in a batch only the rows a step
failed go on to the next step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from scoring_core.chain.attempt import StepCaller
from scoring_core.chain.step import Step
from scoring_core.errors import ChainExhaustedError, EngineClosedError, UnknownStepError
from scoring_core.observe.counters import ChainCounters
from scoring_core.resilience.timeouts import Watchdog
from scoring_core.results import (
    EXHAUSTED_SCORER,
    BatchResult,
    Fallback,
    Provenance,
    ScoreResult,
    StepFailure,
)

__all__ = ["Chain", "StepRun"]

_NO_FALLBACKS: tuple[Fallback, ...] = ()
_FIRST_ROW = np.zeros(1, dtype=np.intp)
_FIRST_ROW.flags.writeable = False


@dataclass(frozen=True)
class StepRun:
    """One step's scores on its own (see :meth:`Chain.score_step`)."""

    step: str
    scores: npt.NDArray[np.float64]
    failed: npt.NDArray[np.bool_]
    reason: str | None
    seconds: float


class Chain:
    """The steps of an engine, tried in order for each row."""

    def __init__(
        self,
        steps: Sequence[Step],
        *,
        output_range: tuple[float, float] | None,
        default: float | None,
        deadline_ms: float | None,
        clock: Callable[[], float],
        is_closed: Callable[[], bool],
        counters: ChainCounters | None = None,
        name: str = "default",
        config_sha256: str | None = None,
    ) -> None:
        self.steps = tuple(steps)
        self.names = tuple(step.name for step in self.steps)
        self.default = default
        self.deadline_ms = deadline_ms
        self.deadline_s = None if deadline_ms is None else deadline_ms / 1e3
        self.clock = clock
        self.is_closed = is_closed
        self.counters = counters if counters is not None else ChainCounters()
        budgets = [s.timeout_s for s in self.steps if s.timeout_s is not None]
        if self.deadline_s is not None:
            budgets.append(self.deadline_s)
        self.watchdog = Watchdog(
            min(budgets) if budgets else None,
            on_cancel=lambda: self.counters.count("timeouts_cancelled"),
        )
        self.caller = StepCaller(
            output_range=output_range,
            deadline_ms=deadline_ms,
            clock=clock,
            is_closed=is_closed,
            last=self.steps[-1] if self.steps else None,
            watchdog=self.watchdog,
        )
        self.range_text = self.caller.range_text
        # The provenance of a default served by on_exhausted: no step, no model.
        self.exhausted_provenance = Provenance(
            chain=name,
            step=EXHAUSTED_SCORER,
            scorer=None,
            model_version=None,
            model_sha256=None,
            config_sha256=config_sha256,
        )

    @property
    def rows_exhausted(self) -> int:
        return self.counters.get("rows_exhausted")

    # -- one row ----------------------------------------------------------------------------

    def score_row(self, X: npt.NDArray[np.float32], defaults_used: tuple[str, ...]) -> ScoreResult:
        fallbacks: list[Fallback] = []
        deadline_at = None if self.deadline_s is None else self.clock() + self.deadline_s
        attempt = self.caller.attempt
        for step in self.steps:
            value, _, failures, provenance = attempt(step, X, deadline_at, one_row=True)
            if not failures:
                return ScoreResult(
                    value,
                    step.name,
                    tuple(fallbacks) if fallbacks else _NO_FALLBACKS,
                    defaults_used,
                    provenance,
                )
            kind, reason, _ = failures[0]
            fallbacks.append(Fallback(step.name, reason, kind))
        self._exhaust(1)
        if self.default is None:
            raise ChainExhaustedError(fallbacks, row=0)
        return ScoreResult(
            self.default,
            EXHAUSTED_SCORER,
            tuple(fallbacks),
            defaults_used,
            self.exhausted_provenance,
        )

    def _exhaust(self, rows: int) -> None:
        """Count rows no step could score; a closing engine explains them instead."""
        if self.is_closed():  # the steps failed because they were being closed
            raise EngineClosedError()
        self.counters.count("rows_exhausted", rows)

    # -- many rows --------------------------------------------------------------------------

    def score_rows(
        self,
        X: npt.NDArray[np.float32],
        rows: npt.NDArray[np.intp],
        defaults_used: tuple[tuple[str, ...], ...] | None,
    ) -> BatchResult:
        """Score checked rows; ``rows`` maps them to the caller's row numbers."""
        n = X.shape[0]
        if n == 1:
            return self._one_row_batch(X, rows, defaults_used)
        scores = np.empty(n, dtype=np.float64)
        scorer_index = np.full(n, -1, dtype=np.int16)
        failures: list[StepFailure] = []
        remaining: npt.NDArray[np.intp] = np.arange(n)
        provenances: list[Provenance | None] = [None] * (len(self.steps) + 1)
        deadline_at = None if self.deadline_s is None else self.clock() + self.deadline_s
        for step_index, step in enumerate(self.steps):
            if remaining.size == 0:
                break
            whole = remaining.size == n
            values, ok, failed, provenances[step_index] = self.caller.attempt(
                step, X if whole else X[remaining], deadline_at
            )
            for kind, reason, mask in failed:
                failed_rows = remaining if mask is None else remaining[mask]
                failures.append(StepFailure(step.name, failed_rows, reason, kind))
            if values is None:
                continue
            if ok is None:
                if whole:
                    scores = values
                    scorer_index[:] = step_index
                else:
                    scores[remaining] = values
                    scorer_index[remaining] = step_index
                remaining = remaining[:0]
                break
            served = remaining[ok]
            scores[served] = values[ok]
            scorer_index[served] = step_index
            remaining = remaining[~ok]
        if remaining.size:
            self._exhaust(int(remaining.size))
            if self.default is None:
                first = int(remaining[0])
                records = [
                    Fallback(f.step, f.reason, f.kind)
                    for f in failures
                    if bool((f.rows == first).any())
                ]
                raise ChainExhaustedError(records, row=int(rows[first]))
            scores[remaining] = self.default
            provenances[-1] = self.exhausted_provenance
        return BatchResult(
            scores, scorer_index, self.names, failures, defaults_used, rows, provenances
        )

    def _one_row_batch(
        self,
        X: npt.NDArray[np.float32],
        rows: npt.NDArray[np.intp],
        defaults_used: tuple[tuple[str, ...], ...] | None,
    ) -> BatchResult:
        """A batch of one row, walked as :meth:`score_row` walks it (about twice as fast
        as the masks of the batch path for one row: a server's single-row requests)."""
        failures: list[StepFailure] = []
        provenances: list[Provenance | None] = [None] * (len(self.steps) + 1)
        deadline_at = None if self.deadline_s is None else self.clock() + self.deadline_s
        attempt = self.caller.attempt
        for step_index, step in enumerate(self.steps):
            value, _, failed, provenances[step_index] = attempt(step, X, deadline_at, one_row=True)
            if not failed:
                return BatchResult(
                    np.array([value]),
                    np.array([step_index], dtype=np.int16),
                    self.names,
                    failures,
                    defaults_used,
                    rows,
                    provenances,
                )
            kind, reason, _ = failed[0]
            failures.append(StepFailure(step.name, _FIRST_ROW, reason, kind))
        self._exhaust(1)
        if self.default is None:
            records = [Fallback(f.step, f.reason, f.kind) for f in failures]
            raise ChainExhaustedError(records, row=int(rows[0]))
        provenances[-1] = self.exhausted_provenance
        return BatchResult(
            np.array([self.default], dtype=np.float64),
            np.array([-1], dtype=np.int16),
            self.names,
            failures,
            defaults_used,
            rows,
            provenances,
        )

    # -- one step alone ---------------------------------------------------------------------

    def score_step(self, name: str, X: npt.NDArray[np.float32]) -> StepRun:
        """Score checked rows with one step alone, no fallback; failed rows are NaN."""
        try:
            step = self.steps[self.names.index(name)]
        except ValueError:
            raise UnknownStepError(name, self.names) from None
        n = X.shape[0]
        started = time.perf_counter_ns()
        values, ok, failed, _ = self.caller.attempt(step, X, None, alone=True)
        seconds = (time.perf_counter_ns() - started) / 1e9
        scores = np.full(n, np.nan)
        if values is None:
            return StepRun(name, scores, np.ones(n, dtype=bool), failed[0][1], seconds)
        if ok is None:
            return StepRun(name, values, np.zeros(n, dtype=bool), None, seconds)
        scores[ok] = values[ok]
        reason = f"returned scores outside {self.range_text} or non-finite"
        return StepRun(name, scores, ~ok, reason, seconds)
