"""The engine: builds the chain from a config, scores rows through it, closes it."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from scoring_core.config import (
    EngineConfig,
    ExhaustedDefault,
    load_feature_file,
    parse_config,
    validate_options,
)
from scoring_core.context import ScorerContext
from scoring_core.errors import ChainExhaustedError, ConfigError, EngineClosedError, InputError
from scoring_core.features import FeatureSchema, PreparedBatch
from scoring_core.plugins import PluginHost, raise_unknown_scorer
from scoring_core.results import BatchResult, Fallback, ScoreResult, StepFailure
from scoring_core.steps import Step, close_scorer
from scoring_core.timeouts import StepTimeoutError, Watchdog
from scoring_core.watch import FileWatcher
from scoring_core.yaml_loader import LoadedYaml, format_path, load_yaml_file

__all__ = ["Engine", "StepRun"]

logger = logging.getLogger("scoring_core")
_BIG = sys.float_info.max
_MIN = np.minimum.reduce
_MAX = np.maximum.reduce
FALLBACK_LOG_INTERVAL_S = 10.0


class _SkippedError(Exception):
    """A step was not called (open circuit, chain deadline passed)."""

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

    def __call__(self, step: str, kind: str, reason: str, rows: int) -> None:
        key = (step, kind)
        now = time.monotonic()
        with self._lock:
            if now < self._next.get(key, 0.0):
                self._suppressed[key] = self._suppressed.get(key, 0) + rows
                return
            self._next[key] = now + self.interval_s
            suppressed = self._suppressed.pop(key, 0)
        more = f" ({suppressed} more rows since the last message)" if suppressed else ""
        logger.warning("step %r failed for %d row(s), falling back: %s%s", step, rows, reason, more)


@dataclass(frozen=True)
class StepRun:
    """One step's scores on its own (see :meth:`Engine.score_step`)."""

    step: str
    scores: npt.NDArray[np.float64]
    failed: npt.NDArray[np.bool_]
    reason: str | None
    seconds: float


class Engine:
    """A fallback chain of scorers, built from YAML or a mapping.

    Use :meth:`from_yaml` or :meth:`from_config`; close it with :meth:`close` or a
    ``with`` block. Safe to call from many threads at once.
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
        base_dir: Path,
        source: LoadedYaml | None = None,
        plugins: Sequence[Any] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._closed = False
        self._clock = clock
        self._watchdog = Watchdog(clock)
        self._deadline_ms = config.deadline_ms
        self._deadline_s = None if config.deadline_ms is None else config.deadline_ms / 1e3
        self._close_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._config = config
        self._source = source
        self.base_dir = base_dir
        self.config_file = source.file if source is not None else None
        self._fallback_log = _FallbackLog()
        self._counters = {"rows_exhausted": 0, "rows_rejected": 0}

        self._schema = FeatureSchema(self._resolve_features(config))
        if config.output_range is not None:
            self._low, self._high = (float(v) for v in config.output_range)
        else:
            self._low, self._high = -_BIG, _BIG
        self._default = (
            float(config.on_exhausted.score)
            if isinstance(config.on_exhausted, ExhaustedDefault)
            else None
        )

        self._host = PluginHost(
            config_plugins=config.plugins,
            disabled=config.disable_plugins,
            code_plugins=plugins,
            base_dir=base_dir,
            config_file=self.config_file,
        )
        self._steps = self._build_steps()
        self._step_names = tuple(step.name for step in self._steps)
        for step in self._steps:
            step.load()
        self._refuse_without_required()
        self._reload_lock = threading.Lock()
        self._watcher: FileWatcher | None = None
        if config.watch is not None:
            self._watcher = FileWatcher(
                self._steps, lambda name: self.reload(name)[name], config.watch.interval_s
            )
        for error in self._host.call_each("scoring_engine_started", engine=self):
            logger.error("scoring_engine_started failed: %s", error)

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_yaml(
        cls,
        path: str | Path,
        *,
        plugins: Sequence[Any] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> Engine:
        """Build an engine from a YAML file; relative paths resolve against its folder.

        ``plugins`` are plugin objects to register besides the entry points; ``clock``
        (seconds, monotonic) drives circuit breakers and deadlines, and tests move it.
        """
        source = load_yaml_file(path)
        config = parse_config(source)
        return cls(
            config,
            base_dir=Path(path).resolve().parent,
            source=source,
            plugins=plugins,
            clock=clock,
        )

    @classmethod
    def from_config(
        cls,
        mapping: Mapping[str, Any],
        base_dir: str | Path = ".",
        *,
        plugins: Sequence[Any] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> Engine:
        """Build an engine from a mapping with the same schema as the YAML file."""
        source = LoadedYaml(data=dict(mapping))
        config = parse_config(source)
        return cls(
            config, base_dir=Path(base_dir).resolve(), source=None, plugins=plugins, clock=clock
        )

    def _config_error(self, message: str, path: tuple[str | int, ...]) -> ConfigError:
        return ConfigError(
            message,
            key_path=format_path(path),
            file=self.config_file,
            line=self._source.line_of(path) if self._source is not None else None,
        )

    def _resolve_features(self, config: EngineConfig) -> list[Any]:
        if isinstance(config.features, str):
            path = Path(config.features)
            path = path if path.is_absolute() else self.base_dir / path
            try:
                return load_feature_file(path)
            except ConfigError as exc:
                if exc.file == str(path) and exc.line is None and "does not exist" in exc.message:
                    raise self._config_error(
                        f"the feature file {str(path)!r} does not exist", ("features",)
                    ) from None
                raise
        return list(config.features)

    def _build_steps(self) -> list[Step]:
        steps = []
        required = set(self._config.require)
        context_data = {"feature_names": self._schema.names, "base_dir": self.base_dir}
        output_range = (self._low, self._high) if self._config.output_range else None
        for index, step_config in enumerate(self._config.chain):
            registration = self._host.scorers.get(step_config.scorer)
            if registration is None:
                path = ("chain", index, "scorer")
                raise_unknown_scorer(
                    step_config.scorer,
                    self._host.scorers,
                    key_path=format_path(path),
                    file=self.config_file,
                    line=self._source.line_of(path) if self._source is not None else None,
                )
                raise AssertionError("unreachable")
            options = validate_options(
                registration.options,
                step_config.options,
                context=context_data,
                source=self._source,
                prefix=("chain", index, "options"),
            )
            context = ScorerContext(
                name=step_config.name,
                scorer=step_config.scorer,
                options=options,
                feature_names=self._schema.names,
                base_dir=self.base_dir,
                output_range=output_range,
                logger=logging.getLogger(f"scoring_core.step.{step_config.name}"),
            )
            steps.append(
                Step(
                    step_config,
                    registration,
                    context,
                    required=step_config.name in required,
                    clock=self._clock,
                    chain_deadline=self._deadline_s is not None,
                )
            )
        return steps

    def _refuse_without_required(self) -> None:
        missing = [s for s in self._steps if s.required and s.scorer is None]
        if not missing:
            return
        reasons = "; ".join(f"step {s.name!r}: {s.reason}" for s in missing)
        for step in self._steps:
            step.close()
        self._closed = True
        index = self._config.require.index(missing[0].name)
        raise self._config_error(
            f"the engine refuses to start: required step(s) could not load ({reasons}); fix "
            "them, or remove them from `require:` to start on the fallback",
            ("require", index),
        )

    # -- public attributes ------------------------------------------------------------------

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features, in model input order."""
        return self._schema.names

    @property
    def step_names(self) -> tuple[str, ...]:
        return self._step_names

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def output_range(self) -> tuple[float, float] | None:
        return (self._low, self._high) if self._config.output_range is not None else None

    # -- scoring ----------------------------------------------------------------------------

    def score(self, row: Any) -> ScoreResult:
        """Score one row (a mapping by name, or a sequence / 1-D array in feature order)."""
        if self._closed:
            raise EngineClosedError()
        try:
            X, defaults_used = self._schema.row(row)
        except InputError:
            self._count("rows_rejected", 1)
            raise
        fallbacks: list[Fallback] = []
        low, high = self._low, self._high
        deadline_at = None if self._deadline_s is None else self._clock() + self._deadline_s
        for step in self._steps:
            scorer = step.scorer
            if scorer is None:
                fallbacks.append(self._unavailable(step, 1))
                continue
            started = time.perf_counter_ns()
            try:
                out = (
                    self._guarded(step, scorer, X, deadline_at)
                    if step.guarded
                    else (scorer.score(X))
                )
            except _SkippedError as skip:
                fallbacks.append(self._failed(step, skip.kind, skip.reason, 1))
                continue
            except Exception as exc:
                step.stats.record(1, 0, time.perf_counter_ns() - started)
                kind = "timeout" if isinstance(exc, StepTimeoutError) else "error"
                fallbacks.append(self._failed(step, kind, _raised(exc), 1))
                if step.breaker is not None:
                    step.breaker.record(True)
                continue
            elapsed = time.perf_counter_ns() - started
            if type(out) is np.ndarray and (out.shape == (1,) or out.shape == (1, 1)):
                value = float(out.item())
            else:
                value, problem = _single_value(out)
                if problem is not None:
                    step.stats.record(1, 0, elapsed)
                    fallbacks.append(self._failed(step, "bad_shape", problem, 1))
                    if step.breaker is not None:
                        step.breaker.record(True)
                    continue
            ok = low <= value <= high
            if step.breaker is not None:
                step.breaker.record(not ok)
            if ok:
                step.stats.record(1, 1, elapsed)
                return ScoreResult(value, step.name, tuple(fallbacks), defaults_used)
            step.stats.record(1, 0, elapsed)
            kind, reason = self._bad_value(value)
            fallbacks.append(self._failed(step, kind, reason, 1))
        self._count("rows_exhausted", 1)
        if self._default is None:
            raise ChainExhaustedError(fallbacks, row=0)
        return ScoreResult(self._default, "on_exhausted", tuple(fallbacks), defaults_used)

    def _guarded(self, step: Step, scorer: Any, X: Any, deadline_at: float | None) -> Any:
        """Call a step that has a breaker, a timeout or a chain deadline to respect.

        Raises :class:`_SkippedError` when the step must not run, StepTimeoutError on overrun.
        """
        breaker = step.breaker
        if breaker is not None and not breaker.allow():
            raise _SkippedError(
                "circuit_open", "circuit open: skipped until the breaker half-opens"
            )
        budget = step.timeout_s
        if deadline_at is not None:
            remaining = deadline_at - self._clock()
            if remaining <= 0:
                if breaker is not None:
                    breaker.record(False)  # a probe that never ran must not stay counted
                raise _SkippedError(
                    "deadline", f"skipped: the chain's deadline_ms ({self._deadline_ms:g}) passed"
                )
            budget = remaining if budget is None else min(budget, remaining)
        if budget is None:
            return scorer.score(X)
        if step.cancellable:
            token = scorer.cancel_token()
            watch = self._watchdog.watch(budget, token, scorer.cancel)
            try:
                return scorer.score(X, token)
            except Exception:
                if watch.cancelled:
                    raise StepTimeoutError(budget, cancelled=True) from None
                raise
            finally:
                watch.done = True
        if step.timeout_s is None:
            return scorer.score(X)  # a deadline alone never moves a step onto a thread
        return step.runner().call(scorer.score, X, budget)

    def score_batch(self, rows: Any) -> BatchResult:
        """Score many rows (2-D array, sequence of rows, or pandas DataFrame).

        Raises :class:`InputError` naming the first bad row; then no scorer is called.
        """
        if self._closed:
            raise EngineClosedError()
        prepared = self._schema.batch(rows)
        if prepared.errors:
            self._count("rows_rejected", len(prepared.errors))
            first = prepared.errors[0]
            if len(prepared.errors) > 1:
                raise InputError(
                    f"{first} ({len(prepared.errors) - 1} more bad row(s); nothing was scored)",
                    feature=first.feature,
                    row=first.row,
                )
            raise first
        return self.score_prepared(prepared)

    def prepare_batch(self, rows: Any) -> PreparedBatch:
        """Check rows without scoring: good rows in ``.X``, one InputError per bad row."""
        return self._schema.batch(rows)

    def score_prepared(self, prepared: PreparedBatch) -> BatchResult:
        """Score the good rows of a :meth:`prepare_batch` result, in their order."""
        if self._closed:
            raise EngineClosedError()
        X = prepared.X
        n = X.shape[0]
        scores = np.empty(n, dtype=np.float64)
        scorer_index = np.full(n, -1, dtype=np.int16)
        failures: list[StepFailure] = []
        remaining: npt.NDArray[np.intp] = np.arange(n)
        deadline_at = None if self._deadline_s is None else self._clock() + self._deadline_s
        for step_index, step in enumerate(self._steps):
            if remaining.size == 0:
                break
            scorer = step.scorer
            if scorer is None:
                fallback = self._unavailable(step, int(remaining.size))
                failures.append(StepFailure(step.name, remaining, fallback.reason, fallback.kind))
                continue
            n_in = int(remaining.size)
            subset = X if n_in == n else X[remaining]
            started = time.perf_counter_ns()
            try:
                out = (
                    self._guarded(step, scorer, subset, deadline_at)
                    if step.guarded
                    else scorer.score(subset)
                )
            except _SkippedError as skip:
                self._failed(step, skip.kind, skip.reason, n_in)
                failures.append(StepFailure(step.name, remaining, skip.reason, skip.kind))
                continue
            except Exception as exc:
                step.stats.record(n_in, 0, time.perf_counter_ns() - started)
                reason = _raised(exc)
                kind = "timeout" if isinstance(exc, StepTimeoutError) else "error"
                self._failed(step, kind, reason, n_in)
                failures.append(StepFailure(step.name, remaining, reason, kind))
                if step.breaker is not None:
                    step.breaker.record(True)
                continue
            elapsed = time.perf_counter_ns() - started
            values, problem = _batch_values(out, n_in)
            if problem is not None or values is None:
                step.stats.record(n_in, 0, elapsed)
                reason = problem or "bad output"
                self._failed(step, "bad_shape", reason, n_in)
                failures.append(StepFailure(step.name, remaining, reason, "bad_shape"))
                if step.breaker is not None:
                    step.breaker.record(True)
                continue
            all_ok = bool(_MIN(values) >= self._low and _MAX(values) <= self._high)
            if step.breaker is not None:
                step.breaker.record(not all_ok)
            if all_ok:  # NaN fails both comparisons
                if remaining.size == n:
                    scores[:] = values
                    scorer_index[:] = step_index
                else:
                    scores[remaining] = values
                    scorer_index[remaining] = step_index
                step.stats.record(n_in, n_in, elapsed)
                remaining = remaining[:0]
                break
            ok = (values >= self._low) & (values <= self._high)
            served = remaining[ok]
            scores[served] = values[ok]
            scorer_index[served] = step_index
            step.stats.record(n_in, int(served.size), elapsed)
            bad = ~ok
            finite = np.isfinite(values)
            for kind, mask in (("non_finite", bad & ~finite), ("out_of_range", bad & finite)):
                if mask.any():
                    rows = remaining[mask]
                    reason = self._bad_value(float(values[mask][0]))[1]
                    self._failed(step, kind, reason, int(rows.size))
                    failures.append(StepFailure(step.name, rows, reason, kind))
            remaining = remaining[bad]
        if remaining.size:
            self._count("rows_exhausted", int(remaining.size))
            if self._default is None:
                first = int(remaining[0])
                records = [
                    Fallback(f.step, f.reason, f.kind) for f in failures if first in set(f.rows)
                ]
                raise ChainExhaustedError(records, row=int(prepared.rows[first]))
            scores[remaining] = self._default
        return BatchResult(scores, scorer_index, self._step_names, failures, prepared.defaults_used)

    def score_step(self, name: str, X: npt.NDArray[np.float32]) -> StepRun:
        """Score checked rows with one step alone, no fallback (for comparing steps).

        Rows the step fails get NaN in ``scores`` and ``True`` in ``failed``; nothing
        raises for a failing step. ``X`` is ``prepare_batch(...).X``.
        """
        if self._closed:
            raise EngineClosedError()
        try:
            step = self._steps[self._step_names.index(name)]
        except ValueError:
            raise KeyError(f"no step {name!r}; steps: {', '.join(self._step_names)}") from None
        n = X.shape[0]
        scores = np.full(n, np.nan)
        scorer = step.scorer
        if scorer is None:
            return StepRun(name, scores, np.ones(n, dtype=bool), f"unavailable: {step.reason}", 0.0)
        started = time.perf_counter()
        try:
            out = scorer.score(X)
        except Exception as exc:
            return StepRun(
                name, scores, np.ones(n, dtype=bool), _raised(exc), time.perf_counter() - started
            )
        seconds = time.perf_counter() - started
        values, problem = _batch_values(out, n)
        if values is None:
            return StepRun(name, scores, np.ones(n, dtype=bool), problem, seconds)
        ok = (values >= self._low) & (values <= self._high)
        scores[ok] = values[ok]
        reason = None if ok.all() else self._bad_value(float(values[~ok][0]))[1]
        return StepRun(name, scores, ~ok, reason, seconds)

    # -- helpers of the hot path ------------------------------------------------------------

    def _count(self, key: str, value: int) -> None:
        with self._stats_lock:
            self._counters[key] += value

    def _unavailable(self, step: Step, rows: int) -> Fallback:
        reason = f"unavailable: {step.reason}"
        step.stats.record_failed("unavailable", rows)
        return Fallback(step.name, reason, "unavailable")

    def _failed(self, step: Step, kind: str, reason: str, rows: int) -> Fallback:
        step.stats.record_failed(kind, rows)
        self._fallback_log(step.name, kind, reason, rows)
        return Fallback(step.name, reason, kind)

    def _bad_value(self, value: float) -> tuple[str, str]:
        if not np.isfinite(value):
            return "non_finite", f"returned a non-finite score ({value})"
        return "out_of_range", (
            f"returned {value:g}, outside output_range [{self._low:g}, {self._high:g}]"
        )

    # -- reload, diagnostics, close ---------------------------------------------------------

    def reload(self, step: str | None = None) -> dict[str, str]:
        """Reload every step (or the one named); a step whose new load fails keeps its old scorer.

        The new scorer is built and checked (and self-tested) beside the old one, then
        swapped in; calls already running finish on the scorer they started with.
        Returns, per step, ``"reloaded"`` or ``"kept old: <reason>"`` (or
        ``"unavailable: <reason>"`` when there was no old scorer).
        """
        if self._closed:
            raise EngineClosedError()
        if step is not None and step not in self._step_names:
            raise KeyError(f"no step {step!r}; steps: {', '.join(self._step_names)}")
        outcome: dict[str, str] = {}
        errors: list[Exception] = []
        with self._reload_lock:
            for candidate in self._steps:
                if step is not None and candidate.name != step:
                    continue
                had_scorer = candidate.scorer is not None
                old = candidate.reload()
                if candidate.reload_error is None:
                    outcome[candidate.name] = "reloaded"
                    error = close_scorer(old, candidate.name)
                    if error is not None:
                        errors.append(error)
                elif had_scorer:
                    outcome[candidate.name] = f"kept old: {candidate.reload_error}"
                else:
                    outcome[candidate.name] = f"unavailable: {candidate.reload_error}"
        if errors:
            raise ExceptionGroup("closing the replaced scorers failed", errors)
        return outcome

    def diagnostics(self) -> dict[str, Any]:
        """A JSON-serialisable picture of the engine, its steps and plugins."""
        with self._stats_lock:
            counters = dict(self._counters)
        steps = [step.describe() for step in self._steps]
        counters["rows_scored"] = sum(step["rows_served"] for step in steps)
        return {
            "engine": {
                "config_file": self.config_file,
                "closed": self._closed,
                "features": len(self._schema.names),
                "output_range": list(self.output_range) if self.output_range else None,
                "on_exhausted": "raise" if self._default is None else {"score": self._default},
                "require": list(self._config.require),
                "deadline_ms": self._deadline_ms,
                "watch": None
                if self._watcher is None
                else {"interval_s": self._watcher.interval_s, "reloads": self._watcher.reloads},
                **counters,
            },
            "steps": steps,
            "plugins": [plugin.as_dict() for plugin in self._host.plugins],
        }

    def close(self) -> None:
        """Close every scorer (reverse chain order), then run ``scoring_engine_closed`` once.

        Idempotent. Errors from scorers and hooks are raised together afterwards, as an
        ExceptionGroup.
        """
        with self._close_lock:
            if self._closed and all(step.closed for step in self._steps):
                return
            self._closed = True
            self._watchdog.stop()
            if self._watcher is not None:
                self._watcher.stop()
            errors: list[Exception] = []
            for step in reversed(self._steps):
                error = step.close()
                if error is not None:
                    errors.append(error)
            errors.extend(self._host.call_each("scoring_engine_closed", engine=self))
        if errors:
            raise ExceptionGroup(f"{len(errors)} error(s) while closing the engine", errors)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ", ".join(f"{s.name}={s.status}" for s in self._steps)
        return f"<Engine {state}>"


def _raised(exc: BaseException) -> str:
    text = str(exc)
    return f"raised {type(exc).__name__}: {text}" if text else f"raised {type(exc).__name__}"


def _single_value(out: Any) -> tuple[float, str | None]:
    try:
        array = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        return 0.0, f"returned {type(out).__name__}, not an array of numbers"
    if array.shape not in ((1,), (1, 1)):
        return 0.0, f"returned shape {array.shape}, expected (1,) or (1, 1) for one row"
    return float(array.item()), None


def _batch_values(out: Any, n: int) -> tuple[npt.NDArray[np.float64] | None, str | None]:
    try:
        array = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        return None, f"returned {type(out).__name__}, not an array of numbers"
    if array.shape == (n, 1):
        array = array.reshape(n)
    if array.shape != (n,):
        return None, f"returned shape {array.shape}, expected ({n},) or ({n}, 1)"
    return array, None
