"""Calling one step: the one path every step call takes.

A single row, a batch, ``score_step`` (a step alone, for ``scoring compare``) and, later,
shadow scoring and experiments all go through :meth:`StepCaller.attempt`: enter the
step's scorer slot, ask its breaker and the chain's deadline, call the scorer directly or
under its timeout, judge what came back (shape, numbers, finite, inside ``output_range``),
record the call in the step's counters and its breaker, log the fallback, leave the slot.

What it returns is ``(values, ok, failures, provenance)``:

* ``values``: the scores, a float for one row (``one_row=True``), else float64 of shape
  ``(n,)``; None when the step failed for every row it was given;
* ``ok``: None when every value is served, else the boolean mask of the rows served;
* ``failures``: ``()`` when nothing failed, else ``(kind, reason, mask)`` triples, where
  ``mask`` is None when the failure covers every row given;
* ``provenance``: the :class:`~scoring_core.results.Provenance` of the scorer slot that was
  called (the one that scored the rows served, even if a reload swapped the step's slot
  meanwhile), or None when no scorer was called.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring_core.chain.step import ScorerSlot, Step
from scoring_core.errors import EngineClosedError, StepTimeoutError, exception_text
from scoring_core.resilience.timeouts import ThreadedRunner, Watchdog
from scoring_core.results import Provenance

__all__ = ["FALLBACK_LOG_INTERVAL_S", "Failure", "StepCaller", "raised_text"]

logger = logging.getLogger("scoring_core")
_BIG = sys.float_info.max
_MIN = np.minimum.reduce
_MAX = np.maximum.reduce
_NUMBER_KINDS = frozenset("fiu")
FALLBACK_LOG_INTERVAL_S = 10.0

Failure = tuple[str, str, "npt.NDArray[np.bool_] | None"]  # kind, reason, rows (None: all)
_NO_FAILURES: tuple[Failure, ...] = ()


class _StepFailedError(Exception):
    """A step produced nothing usable for the rows it was given."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.reason = reason
        super().__init__(reason)


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


class StepCaller:
    """Calls the steps of one chain and judges their answers (see the module's doc)."""

    def __init__(
        self,
        *,
        output_range: tuple[float, float] | None,
        deadline_ms: float | None,
        clock: Callable[[], float],
        is_closed: Callable[[], bool],
        last: Step | None,
        watchdog: Watchdog,
    ) -> None:
        self.low, self.high = output_range if output_range is not None else (-_BIG, _BIG)
        self.range_text = (
            f"[{self.low:g}, {self.high:g}]" if output_range is not None else "(finite)"
        )
        self.deadline_ms = deadline_ms
        self.clock = clock
        self.is_closed = is_closed
        self.last = last
        self.watchdog = watchdog
        self.log_fallback = _FallbackLog()

    def attempt(
        self,
        step: Step,
        X: npt.NDArray[np.float32],
        deadline_at: float | None,
        *,
        one_row: bool = False,
        alone: bool = False,
    ) -> tuple[Any, npt.NDArray[np.bool_] | None, tuple[Failure, ...], Provenance | None]:
        """Call ``step`` on the rows ``X``; see the module's doc for what comes back.

        ``alone`` (``score_step``): the breaker neither skips nor hears the call, the
        chain's deadline does not apply, and no fallback is logged (nothing falls back).
        """
        slot = step.slot
        if slot is None or not slot.enter():  # no scorer, or a reload swapped it just now
            slot = self._enter(step)
            if slot is None:
                reason = f"unavailable: {step.reason}"
                return (*self._whole(step, X, "unavailable", reason, alone), None)
        if X.dtype != slot.dtype:  # rows checked in float64 for another step's model
            X = _read_only(X.astype(slot.dtype))
        started = time.perf_counter_ns()
        try:
            out = (
                self._call(step, slot, X, deadline_at, alone)
                if step.guarded
                else (slot.scorer.score(X))
            )
        except _StepFailedError as failure:
            if failure.kind not in ("circuit_open", "deadline"):  # those never called it
                self._settle(step, X.shape[0], 0, time.perf_counter_ns() - started, alone)
            return (*self._whole(step, X, failure.kind, failure.reason, alone), None)
        except Exception as exc:
            self._settle(step, X.shape[0], 0, time.perf_counter_ns() - started, alone)
            return (*self._whole(step, X, "error", raised_text(exc), alone), None)
        finally:
            slot.exit()
        elapsed = time.perf_counter_ns() - started
        if one_row:
            value, ok, failures = self._judge_one(step, out, elapsed, alone)
        else:
            value, ok, failures = self._judge_batch(step, out, X.shape[0], elapsed, alone)
        return value, ok, failures, slot.provenance

    # -- judging what came back -------------------------------------------------------------

    def _judge_one(
        self, step: Step, out: Any, elapsed: int, alone: bool
    ) -> tuple[Any, None, tuple[Failure, ...]]:
        if (
            type(out) is np.ndarray
            and (out.shape == (1,) or out.shape == (1, 1))
            and out.dtype.kind in _NUMBER_KINDS
        ):
            value = float(out.item())
        else:
            value, problem = _single_value(out)
            if problem is not None:
                self._settle(step, 1, 0, elapsed, alone)
                return self._failed(step, "bad_shape", problem, 1, alone)
        if self.low <= value <= self.high:
            self._settle(step, 1, 1, elapsed, alone)
            return value, None, _NO_FAILURES
        self._settle(step, 1, 0, elapsed, alone)
        if not np.isfinite(value):
            return self._failed(
                step, "non_finite", f"returned a non-finite score ({value})", 1, alone
            )
        reason = f"returned {value:g}, outside output_range {self.range_text}"
        return self._failed(step, "out_of_range", reason, 1, alone)

    def _judge_batch(
        self, step: Step, out: Any, n: int, elapsed: int, alone: bool
    ) -> tuple[Any, npt.NDArray[np.bool_] | None, tuple[Failure, ...]]:
        try:
            values = _batch_values(out, n)
        except _StepFailedError as failure:
            self._settle(step, n, 0, elapsed, alone)
            return self._failed(step, failure.kind, failure.reason, n, alone)
        if _MIN(values) >= self.low and _MAX(values) <= self.high:  # NaN fails both
            self._settle(step, n, n, elapsed, alone)
            # never hand back the scorer's own buffer
            if not values.flags.owndata or values is out:
                values = values.copy()
            return values, None, _NO_FAILURES
        ok = (values >= self.low) & (values <= self.high)
        served = int(np.count_nonzero(ok))
        self._settle(step, n, served, elapsed, alone)
        bad = ~ok
        finite = np.isfinite(values)
        failures: list[Failure] = []
        for kind, mask in (("non_finite", bad & ~finite), ("out_of_range", bad & finite)):
            rows = int(np.count_nonzero(mask))
            if rows:
                reason = (
                    "returned a non-finite score"
                    if kind == "non_finite"
                    else f"returned a score outside output_range {self.range_text}"
                )
                self._record_failed(step, kind, reason, rows, alone)
                failures.append((kind, reason, mask))
        return values, ok, tuple(failures)

    # -- calling ------------------------------------------------------------------------------

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
        self, step: Step, slot: ScorerSlot, X: Any, deadline_at: float | None, alone: bool
    ) -> Any:
        """Call a step that has a breaker, a timeout, or a chain deadline to respect.

        The breaker is asked here (a skip raises ``circuit_open``); the call's outcome is
        recorded once, by :meth:`_settle`, once the answer has been judged.
        """
        guard = None if alone else step.breaker
        if guard is not None and not guard.allow():
            raise _StepFailedError(
                "circuit_open", "circuit open: skipped until the breaker half-opens"
            )
        budget = step.timeout_s
        if deadline_at is not None and step is not self.last and not alone:
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
            if slot.cancellable and not step.strict:
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
            if slot.cancellable:  # strict: abandoned at the deadline, and told to stop
                return self._call_strict(step.runner, slot.scorer, X, budget)
            return step.runner.call(slot.scorer.score, X, budget)
        except StepTimeoutError as exc:
            raise _StepFailedError("timeout", str(exc)) from None

    @staticmethod
    def _call_strict(runner: ThreadedRunner, scorer: Any, X: Any, budget: float) -> Any:
        """``timeout_mode: strict`` for a cancellable scorer: the call runs on a worker
        thread and the caller waits at most ``budget``; past it the call is abandoned and
        its token cancelled, so the scorer stops at its next chance (onnxruntime: the end
        of the node it is in) instead of running to the end."""
        token = scorer.cancel_token()
        try:
            return runner.call(lambda rows: scorer.score(rows, token), X, budget)
        except StepTimeoutError:
            try:
                scorer.cancel(token)
            except Exception as exc:
                logger.debug("cancel() of an abandoned call raised %s", exception_text(exc))
            raise

    # -- bookkeeping --------------------------------------------------------------------------

    def _settle(
        self, step: Step, rows_in: int, rows_served: int, elapsed: int, alone: bool
    ) -> None:
        """Count one call of ``step``; its breaker hears whether it failed (no row served)."""
        step.counters.record_call(rows_in, rows_served, elapsed)
        if step.breaker is not None and not alone:
            step.breaker.record(rows_served == 0)

    def _record_failed(self, step: Step, kind: str, reason: str, rows: int, alone: bool) -> None:
        step.counters.record_failed(kind, rows)
        if not alone and kind != "unavailable":
            self.log_fallback(step.name, kind, reason, rows, last=step is self.last)

    def _failed(
        self, step: Step, kind: str, reason: str, rows: int, alone: bool
    ) -> tuple[None, None, tuple[Failure, ...]]:
        self._record_failed(step, kind, reason, rows, alone)
        return None, None, ((kind, reason, None),)

    def _whole(
        self, step: Step, X: npt.NDArray[np.float32], kind: str, reason: str, alone: bool
    ) -> tuple[None, None, tuple[Failure, ...]]:
        return self._failed(step, kind, reason, X.shape[0], alone)


def raised_text(exc: BaseException) -> str:
    """``raised Type: message``, whatever the exception's ``__str__`` does."""
    return f"raised {exception_text(exc)}"


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


def _read_only(X: npt.NDArray[Any]) -> npt.NDArray[Any]:
    X.flags.writeable = False
    return X
