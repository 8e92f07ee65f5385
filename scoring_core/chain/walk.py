"""Walking the chain: each step in config order, per-row fallback, provenance.

The engine checks input and builds the steps; :class:`Chain` takes checked float32
rows and tries the steps in order. A step fails when it is unavailable, its breaker
is open, the chain's deadline has passed, it raised or timed out, or it returned the
wrong shape, a non-number, a non-finite value or a value outside ``output_range``.
Failure is per row: in a batch only the rows a step failed go on to the next step.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring_core.chain.step import ScorerSlot, Step
from scoring_core.errors import ChainExhaustedError, EngineClosedError
from scoring_core.resilience.timeouts import StepTimeoutError, Watchdog
from scoring_core.results import EXHAUSTED_SCORER, BatchResult, Fallback, ScoreResult, StepFailure

__all__ = ["Chain", "StepRun"]

logger = logging.getLogger("scoring_core")
_BIG = sys.float_info.max
_MIN = np.minimum.reduce
_MAX = np.maximum.reduce
_NUMBER_KINDS = frozenset("fiu")
_NO_FALLBACKS: tuple[Fallback, ...] = ()
_SKIPS = frozenset({"circuit_open", "deadline"})  # the step was not called
FALLBACK_LOG_INTERVAL_S = 10.0


class _StepFailedError(Exception):
    """A step produced nothing usable for the rows it was given."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class StepRun:
    """One step's scores on its own (see :meth:`Chain.score_step`)."""

    step: str
    scores: npt.NDArray[np.float64]
    failed: npt.NDArray[np.bool_]
    reason: str | None
    seconds: float


class _FallbackLog:
    """Logs fallbacks at WARNING, at most once per interval per (step, kind)."""

    def __init__(self, interval_s: float = FALLBACK_LOG_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._next: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def __call__(self, step: str, kind: str, reason: str, rows: int, *, last: bool) -> None:
        key = (step, kind)
        now = time.monotonic()
        with self._lock:
            if now < self._next.get(key, 0.0):
                self._suppressed[key] = self._suppressed.get(key, 0) + rows
                return
            self._next[key] = now + self.interval_s
            suppressed = self._suppressed.pop(key, 0)
        more = f" ({suppressed} more rows since the last message)" if suppressed else ""
        then = "no step is left to try" if last else "falling back"
        logger.warning("step %r failed for %d row(s), %s: %s%s", step, rows, then, reason, more)


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
    ) -> None:
        self.steps = tuple(steps)
        self.names = tuple(step.name for step in self.steps)
        self.low, self.high = output_range if output_range is not None else (-_BIG, _BIG)
        self.range_text = (
            f"[{self.low:g}, {self.high:g}]" if output_range is not None else "(finite)"
        )
        self.default = default
        self.deadline_ms = deadline_ms
        self.deadline_s = None if deadline_ms is None else deadline_ms / 1e3
        self.clock = clock
        self.is_closed = is_closed
        budgets = [s.timeout_s for s in self.steps if s.timeout_s is not None]
        if self.deadline_s is not None:
            budgets.append(self.deadline_s)
        self.watchdog = Watchdog(min(budgets) if budgets else None)
        self.log_fallback = _FallbackLog()
        self._last = self.steps[-1] if self.steps else None
        self._exhausted_lock = threading.Lock()
        self.rows_exhausted = 0

    # -- one row ----------------------------------------------------------------------------

    def score_row(self, X: npt.NDArray[np.float32], defaults_used: tuple[str, ...]) -> ScoreResult:
        fallbacks: list[Fallback] = []
        low, high = self.low, self.high
        deadline_at = None if self.deadline_s is None else self.clock() + self.deadline_s
        for step in self.steps:
            slot = step.slot
            if slot is None or not slot.enter():  # no scorer, or a reload swapped it just now
                slot = self._enter(step)
                if slot is None:
                    fallbacks.append(self._unavailable(step, 1))
                    continue
            started = time.perf_counter_ns()
            try:
                out = (
                    self._call(step, slot, X, deadline_at)
                    if step.guarded
                    else (slot.scorer.score(X))
                )
            except _StepFailedError as failure:
                if failure.kind not in _SKIPS:
                    _settle(step, 1, 0, time.perf_counter_ns() - started)
                fallbacks.append(self._failed(step, failure.kind, failure.reason, 1))
                continue
            except Exception as exc:
                _settle(step, 1, 0, time.perf_counter_ns() - started)
                fallbacks.append(self._raised(step, exc, 1))
                continue
            finally:
                slot.exit()
            elapsed = time.perf_counter_ns() - started
            if (
                type(out) is np.ndarray
                and (out.shape == (1,) or out.shape == (1, 1))
                and out.dtype.kind in _NUMBER_KINDS
            ):
                value = float(out.item())
            else:
                value, problem = _single_value(out)
                if problem is not None:
                    _settle(step, 1, 0, elapsed)
                    fallbacks.append(self._failed(step, "bad_shape", problem, 1))
                    continue
            ok = low <= value <= high
            _settle(step, 1, 1 if ok else 0, elapsed)
            if ok:
                return ScoreResult(
                    value,
                    step.name,
                    tuple(fallbacks) if fallbacks else _NO_FALLBACKS,
                    defaults_used,
                )
            kind, reason = self._bad_value(value)
            fallbacks.append(self._failed(step, kind, reason, 1))
        return self._exhausted_row(fallbacks, defaults_used)

    def _exhausted_row(
        self, fallbacks: list[Fallback], defaults_used: tuple[str, ...]
    ) -> ScoreResult:
        self._exhaust(1)
        if self.default is None:
            raise ChainExhaustedError(fallbacks, row=0)
        return ScoreResult(self.default, EXHAUSTED_SCORER, tuple(fallbacks), defaults_used)

    def _exhaust(self, rows: int) -> None:
        """Count rows no step could score; a closing engine explains them instead."""
        if self.is_closed():  # the steps failed because they were being closed
            raise EngineClosedError()
        with self._exhausted_lock:
            self.rows_exhausted += rows

    # -- many rows --------------------------------------------------------------------------

    def score_rows(
        self,
        X: npt.NDArray[np.float32],
        rows: npt.NDArray[np.intp],
        defaults_used: tuple[tuple[str, ...], ...] | None,
    ) -> BatchResult:
        """Score checked rows; ``rows`` maps them to the caller's row numbers."""
        n = X.shape[0]
        scores = np.empty(n, dtype=np.float64)
        scorer_index = np.full(n, -1, dtype=np.int16)
        failures: list[StepFailure] = []
        remaining: npt.NDArray[np.intp] = np.arange(n)
        deadline_at = None if self.deadline_s is None else self.clock() + self.deadline_s
        for step_index, step in enumerate(self.steps):
            if remaining.size == 0:
                break
            n_in = int(remaining.size)
            slot = self._enter(step)
            if slot is None:
                fallback = self._unavailable(step, n_in)
                failures.append(StepFailure(step.name, remaining, fallback.reason, fallback.kind))
                continue
            subset = X if n_in == n else X[remaining]
            started = time.perf_counter_ns()
            try:
                out = (
                    self._call(step, slot, subset, deadline_at)
                    if step.guarded
                    else (slot.scorer.score(subset))
                )
                values = _batch_values(out, n_in)
            except _StepFailedError as failure:
                if failure.kind not in _SKIPS:
                    _settle(step, n_in, 0, time.perf_counter_ns() - started)
                self._failed(step, failure.kind, failure.reason, n_in)
                failures.append(StepFailure(step.name, remaining, failure.reason, failure.kind))
                continue
            except Exception as exc:
                _settle(step, n_in, 0, time.perf_counter_ns() - started)
                fallback = self._raised(step, exc, n_in)
                failures.append(StepFailure(step.name, remaining, fallback.reason, fallback.kind))
                continue
            finally:
                slot.exit()
            elapsed = time.perf_counter_ns() - started
            if _MIN(values) >= self.low and _MAX(values) <= self.high:  # NaN fails both
                if n_in == n:  # never hand back the scorer's own buffer
                    scores = (
                        values if values.flags.owndata and values is not out else (values.copy())
                    )
                    scorer_index[:] = step_index
                else:
                    scores[remaining] = values
                    scorer_index[remaining] = step_index
                _settle(step, n_in, n_in, elapsed)
                remaining = remaining[:0]
                break
            ok = (values >= self.low) & (values <= self.high)
            served = remaining[ok]
            scores[served] = values[ok]
            scorer_index[served] = step_index
            _settle(step, n_in, int(served.size), elapsed)
            bad = ~ok
            finite = np.isfinite(values)
            for kind, mask in (("non_finite", bad & ~finite), ("out_of_range", bad & finite)):
                if mask.any():
                    failed_rows = remaining[mask]
                    reason = (
                        "returned a non-finite score"
                        if kind == "non_finite"
                        else f"returned a score outside output_range {self.range_text}"
                    )
                    self._failed(step, kind, reason, int(failed_rows.size))
                    failures.append(StepFailure(step.name, failed_rows, reason, kind))
            remaining = remaining[bad]
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
        return BatchResult(scores, scorer_index, self.names, failures, defaults_used)

    # -- one step alone ---------------------------------------------------------------------

    def score_step(self, name: str, X: npt.NDArray[np.float32]) -> StepRun:
        """Score checked rows with one step alone, no fallback; failed rows are NaN."""
        try:
            step = self.steps[self.names.index(name)]
        except ValueError:
            raise KeyError(f"no step {name!r}; steps: {', '.join(self.names)}") from None
        n = X.shape[0]
        scores = np.full(n, np.nan)
        slot = self._enter(step)
        if slot is None:
            return StepRun(name, scores, np.ones(n, dtype=bool), f"unavailable: {step.reason}", 0)
        started = time.perf_counter()
        try:
            out = (
                self._call(step, slot, X, None, breaker=False)
                if step.guarded
                else slot.scorer.score(X)
            )
            values = _batch_values(out, n)
        except _StepFailedError as failure:
            return StepRun(
                name, scores, np.ones(n, dtype=bool), failure.reason, time.perf_counter() - started
            )
        except Exception as exc:
            return StepRun(
                name,
                scores,
                np.ones(n, dtype=bool),
                _raised_text(exc),
                time.perf_counter() - started,
            )
        finally:
            slot.exit()
        seconds = time.perf_counter() - started
        ok = (values >= self.low) & (values <= self.high)
        scores[ok] = values[ok]
        reason = None if ok.all() else f"returned scores outside {self.range_text} or non-finite"
        return StepRun(name, scores, ~ok, reason, seconds)

    # -- calling a step ---------------------------------------------------------------------

    def _enter(self, step: Step) -> ScorerSlot | None:
        """The step's slot with this call counted in, or None when the step has no scorer."""
        for _ in range(8):  # a reload may swap the slot between the read and the count
            slot = step.slot
            if slot is None:
                if self.is_closed():
                    raise EngineClosedError()
                return None
            if slot.enter():
                return slot
        raise EngineClosedError()  # only reached when the engine closes in a tight race

    def _call(
        self,
        step: Step,
        slot: ScorerSlot,
        X: Any,
        deadline_at: float | None,
        *,
        breaker: bool = True,
    ) -> Any:
        """Call a step that has a breaker, a timeout, or a chain deadline to respect.

        The breaker is asked here (a skip raises ``circuit_open``); the call's outcome is
        recorded once, by :func:`_settle`, where the caller has judged it. With
        ``breaker=False`` (``score_step``) the breaker neither skips nor counts the call.
        """
        guard = step.breaker if breaker else None
        if guard is not None and not guard.allow():
            raise _StepFailedError(
                "circuit_open", "circuit open: skipped until the breaker half-opens"
            )
        budget = step.timeout_s
        if deadline_at is not None and step is not self._last:
            remaining = deadline_at - self.clock()
            if remaining <= 0:
                if guard is not None:
                    guard.release()  # the probe it granted never ran
                raise _StepFailedError(
                    "deadline", f"skipped: the chain's deadline_ms ({self.deadline_ms:g}) passed"
                )
            budget = remaining if budget is None else min(budget, remaining)
        try:
            if budget is None:
                return slot.scorer.score(X)
            if slot.cancellable:
                scorer = slot.scorer
                token = scorer.cancel_token()
                watch = self.watchdog.watch(budget, token, scorer.cancel)
                try:
                    return scorer.score(X, token)
                except Exception:
                    if watch.cancelled:
                        raise StepTimeoutError(budget, cancelled=True) from None
                    raise
                finally:
                    self.watchdog.finish(watch)
            if step.runner is None:
                return slot.scorer.score(X)  # a deadline alone never moves a step to a thread
            return step.runner.call(slot.scorer.score, X, budget)
        except StepTimeoutError as exc:
            raise _StepFailedError("timeout", str(exc)) from None

    # -- bookkeeping ------------------------------------------------------------------------

    def _unavailable(self, step: Step, rows: int) -> Fallback:
        step.stats.record_failed("unavailable", rows)
        return Fallback(step.name, f"unavailable: {step.reason}", "unavailable")

    def _failed(self, step: Step, kind: str, reason: str, rows: int) -> Fallback:
        step.stats.record_failed(kind, rows)
        self.log_fallback(step.name, kind, reason, rows, last=step is self._last)
        return Fallback(step.name, reason, kind)

    def _raised(self, step: Step, exc: Exception, rows: int) -> Fallback:
        return self._failed(step, "error", _raised_text(exc), rows)

    def _bad_value(self, value: float) -> tuple[str, str]:
        if not np.isfinite(value):
            return "non_finite", f"returned a non-finite score ({value})"
        return "out_of_range", f"returned {value:g}, outside output_range {self.range_text}"


def _settle(step: Step, rows_in: int, rows_served: int, elapsed_ns: int) -> None:
    """Count one call of ``step``; its breaker hears whether it failed (no row served)."""
    step.stats.record(rows_in, rows_served, elapsed_ns)
    if step.breaker is not None:
        step.breaker.record(rows_served == 0)


def _raised_text(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = "(its message could not be read)"
    return f"raised {type(exc).__name__}: {text}" if text else f"raised {type(exc).__name__}"


def _what(out: Any) -> str:
    return (
        f"{type(out).__name__} of {out.dtype}"
        if isinstance(out, np.ndarray)
        else (type(out).__name__)
    )


def _single_value(out: Any) -> tuple[float, str | None]:
    try:
        array = np.asarray(out)
    except Exception:
        return 0.0, f"returned {_what(out)}, not an array of numbers"
    if array.dtype.kind not in _NUMBER_KINDS:
        return 0.0, f"returned {_what(out)}, not numbers"
    if array.shape not in ((1,), (1, 1)):
        return 0.0, f"returned shape {array.shape}, expected (1,) or (1, 1) for one row"
    return float(array.item()), None


def _batch_values(out: Any, n: int) -> npt.NDArray[np.float64]:
    """The step's output as float64 of shape (n,), or _StepFailedError("bad_shape")."""
    try:
        array = np.asarray(out)
    except Exception:
        raise _StepFailedError(
            "bad_shape", f"returned {_what(out)}, not an array of numbers"
        ) from None
    if array.dtype.kind not in _NUMBER_KINDS:
        raise _StepFailedError("bad_shape", f"returned {_what(out)}, not numbers")
    if array.shape == (n, 1):
        array = array.reshape(n)
    if array.shape != (n,):
        raise _StepFailedError(
            "bad_shape", f"returned shape {array.shape}, expected ({n},) or ({n}, 1)"
        )
    return array.astype(np.float64, copy=False)
