"""The conformance check: drive a scorer the way the engine will, report every violation.

See :mod:`scoring_core.testing` for the list of checks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring_core.config import validate_options
from scoring_core.context import ScorerContext
from scoring_core.engine import Engine
from scoring_core.errors import ConfigError
from scoring_core.testing.helpers import scorer_plugin

__all__ = ["CHECKS", "ConformanceReport", "Violation", "assert_conforms", "check_scorer"]


FloatRows = npt.NDArray[np.float32]
Scores = npt.NDArray[np.float64]

CHECKS = (
    "options",
    "construct",
    "score",
    "shape",
    "finite",
    "output_range",
    "input",
    "deterministic",
    "batch_independence",
    "threads",
    "close",
    "engine",
)
_UNDER_TEST = "scoring-conformance-under-test"


@dataclass(frozen=True)
class Violation:
    """One way the scorer breaks the contract; ``check`` is one of the names listed above."""

    check: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.message}"


@dataclass(frozen=True)
class ConformanceReport:
    """What :func:`check_scorer` found.

    :ivar scorer: what was checked (the factory's name, or the registered scorer name).
    :ivar violations: every problem found, in the order the checks ran.
    :ivar passed: the checks that ran and found nothing.
    :ivar skipped: checks that did not run, each with the reason.
    """

    scorer: str
    violations: tuple[Violation, ...]
    passed: tuple[str, ...]
    skipped: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when no check found a violation."""
        return not self.violations

    def checks_failed(self) -> tuple[str, ...]:
        """The names of the checks with at least one violation, without repeats."""
        return tuple(dict.fromkeys(v.check for v in self.violations))

    def format(self) -> str:
        """A plain-text report: one line per violation, then what passed and what did not run."""
        if self.ok:
            lines = [f"scorer {self.scorer} conforms ({len(self.passed)} checks passed)"]
        else:
            lines = [f"scorer {self.scorer} has {len(self.violations)} violation(s):"]
            lines += [f"  - {violation}" for violation in self.violations]
            if self.passed:
                lines.append(f"passed: {', '.join(self.passed)}")
        if self.skipped:
            lines.append("not run: " + "; ".join(self.skipped))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def assert_conforms(factory: Callable[..., Any] | str, **kwargs: Any) -> ConformanceReport:
    """Run :func:`check_scorer`; raise ``AssertionError`` listing every violation.

    Takes the same arguments as :func:`check_scorer` and returns its report when it is clean.
    """
    report = check_scorer(factory, **kwargs)
    if not report.ok:
        raise AssertionError(report.format())
    return report


def check_scorer(
    factory: Callable[..., Any] | str,
    *,
    options: Mapping[str, Any] | None = None,
    options_type: type[Any] | None = None,
    feature_names: int | Sequence[str] = 5,
    base_dir: str | Path = ".",
    rows: Any = None,
    output_range: tuple[float, float] | None = None,
    plugins: Sequence[Any] = (),
    step_name: str = "conformance",
    threads: int = 8,
    calls_per_thread: int = 4,
    timeout_s: float = 30.0,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    seed: int = 0,
) -> ConformanceReport:
    """Drive a scorer the way the engine does and report every way it breaks the contract.

    :param factory: what a plugin passes to ``register``: a callable taking a
        :class:`~scoring_core.ScorerContext`. Or a registered scorer name (``"onnx"``):
        then the factory and its options type are looked up among the installed plugins
        and ``plugins``, exactly as the engine finds them.
    :param options: the step's ``options`` mapping, as written in the YAML.
    :param options_type: the options class the scorer registers (pydantic model or
        dataclass); ``options`` are validated against it as the engine does, and the
        scorer receives the validated object. ``None``: a read-only mapping.
    :param feature_names: the engine's features in input order, or a count (``f0``, ...).
    :param base_dir: the folder relative paths resolve against (the YAML file's folder).
    :param rows: sample input, 2-D with one column per feature and at least 2 rows;
        default: 64 rows drawn uniformly from [0, 1) with ``seed``.
    :param output_range: when given, scores must lie in it (and the scorer sees it).
    :param plugins: plugin objects to look ``factory`` up in when it is a name.
    :param threads: threads scoring at once in the ``threads`` check.
    :param timeout_s: how long one call may take before it counts as hung.
    :param rtol: relative tolerance when comparing scores of the same rows.
    :param atol: absolute tolerance when comparing scores of the same rows.
    :return: a :class:`ConformanceReport`; ``report.ok`` is True when nothing was found.
    """
    resolved, label, declared = _resolve_factory(factory, plugins)
    if options_type is None:
        options_type = declared
    names = (
        tuple(f"f{i}" for i in range(feature_names))
        if isinstance(feature_names, int)
        else tuple(feature_names)
    )
    sample = _sample_rows(rows, len(names), seed)
    checker = _Checker(
        factory=resolved,
        label=label,
        options=dict(options or {}),
        options_type=options_type,
        feature_names=names,
        base_dir=Path(base_dir).resolve(),
        rows=sample,
        output_range=output_range,
        step_name=step_name,
        threads=max(2, threads),
        calls_per_thread=max(1, calls_per_thread),
        timeout_s=timeout_s,
        rtol=rtol,
        atol=atol,
    )
    return checker.run()


def _resolve_factory(
    factory: Callable[..., Any] | str, plugins: Sequence[Any]
) -> tuple[Callable[..., Any], str, type[Any] | None]:
    if not isinstance(factory, str):
        label = getattr(factory, "__qualname__", None) or type(factory).__name__
        return factory, str(label), None
    from scoring_core.plugins import PluginHost

    host = PluginHost(code_plugins=plugins)
    registration = host.scorers.get(factory)
    if registration is None:
        known = ", ".join(sorted(host.scorers)) or "none"
        errors = "; ".join(f"{p.name}: {p.error}" for p in host.load_errors())
        more = f"; plugins that failed to load: {errors}" if errors else ""
        raise LookupError(f"no scorer {factory!r} is registered (known: {known}){more}")
    return registration.factory, repr(factory), registration.options


def _sample_rows(rows: Any, width: int, seed: int) -> FloatRows:
    if rows is None:
        generator = np.random.default_rng(seed)
        return np.ascontiguousarray(generator.random((64, width), dtype=np.float32))
    array = np.ascontiguousarray(np.asarray(rows, dtype=np.float32))
    if array.ndim != 2 or array.shape[1] != width or array.shape[0] < 2:
        raise ValueError(
            f"rows must be 2-D with at least 2 rows and {width} columns (one per feature); "
            f"got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError("rows must be finite: the engine never passes NaN or infinity")
    return array


class _HungError(Exception):
    """A call did not return in time."""


class _StopChecksError(Exception):
    """The remaining checks cannot run."""


class _WroteInputError(Exception):
    """score(X) tried to write to its read-only input (already reported)."""


def _read_only(X: FloatRows) -> FloatRows:
    """A C-contiguous read-only copy of ``X``, as the engine passes rows to a scorer."""
    copy = np.array(X, dtype=np.float32, order="C", copy=True)
    copy.flags.writeable = False
    return copy


def _call(timeout_s: float, function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function(*args)`` on a worker thread; raise its error, or _HungError on timeout."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = function(*args)
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=run, name="scoring-conformance", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise _HungError
    if "error" in box:
        raise box["error"]
    return box["value"]


def _describe_error(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _rows_label(n: int) -> str:
    return "1 row" if n == 1 else f"{n} rows"


class _CountingScorer:
    """Wraps a scorer for the engine check, counting ``close()`` calls."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.close_calls = 0

    def score(self, X: FloatRows, /, *args: Any, **kwargs: Any) -> Any:
        return self._inner.score(X, *args, **kwargs)  # a cancel token, for cancellable scorers

    def close(self) -> None:
        self.close_calls += 1
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclass
class _Checker:
    factory: Callable[..., Any]
    label: str
    options: dict[str, Any]
    options_type: type[Any] | None
    feature_names: tuple[str, ...]
    base_dir: Path
    rows: FloatRows
    output_range: tuple[float, float] | None
    step_name: str
    threads: int
    calls_per_thread: int
    timeout_s: float
    rtol: float
    atol: float
    violations: list[Violation] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    reference: Scores | None = None  # the scores of all the rows in one call
    alone: dict[int, Scores] = field(default_factory=dict)  # row -> its score on its own
    built: list[Any] = field(default_factory=list)  # instances not closed yet
    close_errors: dict[str, list[str]] = field(default_factory=dict)

    # -- bookkeeping ---------------------------------------------------------------------------

    def fail(self, check: str, message: str) -> None:
        self.violations.append(Violation(check, message))

    def checks_failed(self) -> list[str]:
        return [v.check for v in self.violations]

    def skip(self, check: str, reason: str) -> None:
        self.skipped.setdefault(check, reason)

    @contextmanager
    def check(self, name: str) -> Iterator[None]:
        if name not in self.ran:
            self.ran.append(name)
        try:
            yield
        except _HungError:
            self.fail("timeout", f"{name}: a call did not return within {self.timeout_s:g} s")
            raise _StopChecksError from None

    def run(self) -> ConformanceReport:
        try:
            context = self.context()
            first = self.build(context)
            self.single_calls(first)
            self.repeat_calls(first)
            self.concurrent_calls(first)
            self.lifecycle(context, first)
            self.through_engine()
        except _StopChecksError:
            pass
        finally:
            self.close_leftovers()
            self.report_close_errors()
        failed = set(self.checks_failed())
        if "shape" in failed:
            for name in ("finite", "output_range"):
                if name not in failed:
                    self.skip(name, "the output had the wrong shape")
        for name in CHECKS:
            if name not in self.ran:
                self.skip(name, "an earlier check could not complete")
        passed = tuple(name for name in self.ran if name not in failed and name not in self.skipped)
        reasons: dict[str, list[str]] = {}
        for name, reason in self.skipped.items():
            if name not in failed:
                reasons.setdefault(reason, []).append(name)
        skipped = tuple(f"{', '.join(names)} ({reason})" for reason, names in reasons.items())
        return ConformanceReport(self.label, tuple(self.violations), passed, skipped)

    # -- building ------------------------------------------------------------------------------

    def context(self) -> ScorerContext:
        with self.check("options"):
            try:
                validated = validate_options(
                    self.options_type,
                    self.options,
                    context={"feature_names": self.feature_names, "base_dir": self.base_dir},
                    source=None,
                    prefix=("options",),
                )
            except ConfigError as exc:
                self.fail("options", f"the engine would refuse these options: {exc}")
                raise _StopChecksError from None
        return ScorerContext(
            name=self.step_name,
            scorer=self.label,
            options=validated,
            feature_names=self.feature_names,
            base_dir=self.base_dir,
            output_range=self.output_range,
            logger=logging.getLogger(f"scoring_core.step.{self.step_name}"),
        )

    def build(self, context: ScorerContext, *, second: bool = False) -> Any:
        with self.check("construct"):
            try:
                scorer = _call(self.timeout_s, self.factory, context)
            except _HungError:
                raise
            except Exception as exc:
                if second:
                    self.fail(
                        "construct",
                        "a second instance could not be built while the first is alive "
                        f"({_describe_error(exc)}); engine.reload() builds the new scorer "
                        "before it closes the old one",
                    )
                    return None
                self.fail(
                    "construct",
                    f"the factory raised {_describe_error(exc)}; the engine would mark the "
                    "step unavailable",
                )
                raise _StopChecksError from None
        self.built.append(scorer)
        if not callable(getattr(scorer, "score", None)):
            self.fail(
                "construct",
                f"the factory returned {type(scorer).__name__}, which has no score(X) method",
            )
            raise _StopChecksError
        return scorer

    # -- scoring -------------------------------------------------------------------------------

    def score(self, scorer: Any, X: FloatRows) -> Any:
        """Call ``score`` as the engine does, with a read-only copy of ``X``; check X is intact.

        Raises :class:`_WroteInputError` (after reporting it) when the scorer tried to write
        to the read-only input.
        """
        given = _read_only(X)
        try:
            out = _call(self.timeout_s, scorer.score, given)
        except ValueError as exc:
            if "read-only" not in str(exc):
                raise
            self.input_violation(
                f"score(X) with {_rows_label(X.shape[0])} tried to write to its input "
                f"({_describe_error(exc)}); the engine passes X read-only, so the step would "
                "fail for every row: copy X before changing it"
            )
            raise _WroteInputError from exc
        if not np.array_equal(given, X):
            row, column = (int(i) for i in np.argwhere(given != X)[0])
            self.input_violation(
                f"score(X) with {_rows_label(X.shape[0])} changed its input (row {row}, "
                f"column {column}: {X[row, column]:g} -> {given[row, column]:g}); the engine "
                "hands the same array to the next step, so copy X before changing it",
            )
        return out

    def input_violation(self, message: str) -> None:
        if "input" not in self.checks_failed():  # once is enough: it happens at every call
            self.fail("input", message)

    def values(self, out: Any, n: int, what: str) -> Scores | None:
        """Check the output's shape, finiteness and range; return it as float64 (n,)."""
        try:
            array = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError):
            self.fail("shape", f"{what} returned {type(out).__name__}, not an array of numbers")
            return None
        if array.shape == (n, 1):
            array = array.reshape(n)
        if array.shape != (n,):
            self.fail(
                "shape",
                f"{what} returned shape {array.shape}; the engine accepts ({n},) or ({n}, 1) "
                "and treats anything else as a failure of the step",
            )
            return None
        bad = ~np.isfinite(array)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            self.fail(
                "finite",
                f"{what} returned {int(bad.sum())} non-finite score(s) (first: row {first} = "
                f"{array[first]}); the engine treats them as failures and falls back",
            )
        if self.output_range is not None:
            low, high = self.output_range
            outside = np.isfinite(array) & ((array < low) | (array > high))
            if outside.any():
                first = int(np.flatnonzero(outside)[0])
                self.fail(
                    "output_range",
                    f"{what} returned {int(outside.sum())} score(s) outside output_range "
                    f"[{low:g}, {high:g}] (first: row {first} = {array[first]:g})",
                )
        return array

    def single_calls(self, scorer: Any) -> None:
        for check in ("score", "shape", "finite", "input"):
            self.ran.append(check)
        if self.output_range is not None:
            self.ran.append("output_range")
        else:
            self.skip("output_range", "no output_range given")
        n = self.rows.shape[0]
        returned = 0
        for X in (self.rows[:1], self.rows, self.rows[:0]):
            what = f"score(X) with {_rows_label(X.shape[0])}"
            with self.check("score"):
                try:
                    out = self.score(scorer, X)
                except _HungError:
                    raise
                except _WroteInputError:
                    continue  # reported under "input"
                except Exception as exc:
                    self.fail("score", f"{what} raised {_describe_error(exc)}")
                    continue
            returned += 1
            values = self.values(out, X.shape[0], what)
            if X.shape[0] == n:
                self.reference = values
        if not returned:
            for name in ("score", "shape", "finite", "output_range"):
                self.skip(name, "no call returned scores")

    def same(self, a: Scores, b: Scores) -> npt.NDArray[np.bool_]:
        return np.isclose(a, b, rtol=self.rtol, atol=self.atol, equal_nan=True)

    def repeat_calls(self, scorer: Any) -> None:
        reference = self.reference
        if reference is None:
            for check in ("deterministic", "batch_independence"):
                self.ran.append(check)
                self.skip(check, f"no usable scores for {_rows_label(self.rows.shape[0])}")
            return
        n = self.rows.shape[0]
        with self.check("deterministic"):
            for attempt in (2, 3):
                again = self.quiet_values(scorer, self.rows)
                if again is None:
                    self.fail("deterministic", f"call {attempt} with the same rows failed")
                    break
                differ = ~self.same(again, reference)
                if differ.any():
                    row = int(np.flatnonzero(differ)[0])
                    self.fail(
                        "deterministic",
                        f"scoring the same {n} rows again gave different scores for "
                        f"{int(differ.sum())} row(s) (first: row {row}, {reference[row]:g} then "
                        f"{again[row]:g})",
                    )
                    break
        with self.check("batch_independence"):
            problems: list[str] = []
            for row in range(min(n, 8)):
                alone = self.quiet_values(scorer, self.rows[row : row + 1])
                if alone is not None:
                    self.alone[row] = alone
                if alone is not None and not self.same(alone, reference[row : row + 1]).all():
                    problems.append(
                        f"row {row} scored alone gave {alone[0]:g} but {reference[row]:g} in the "
                        f"batch of {n}"
                    )
            subset = np.arange(1, n, 2)
            part = self.quiet_values(scorer, self.rows[subset])
            if part is not None:
                differ = ~self.same(part, reference[subset])
                if differ.any():
                    row = int(subset[np.flatnonzero(differ)[0]])
                    problems.insert(
                        0,
                        f"row {row} scored among the odd rows gave "
                        f"{part[int(np.flatnonzero(differ)[0])]:g} but {reference[row]:g} in "
                        "the whole batch",
                    )
            if problems:
                self.fail(
                    "batch_independence",
                    "a row's score depends on the other rows of its batch: "
                    + "; ".join(problems[:3])
                    + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
                    + "; the engine scores single rows, whole batches, and only the rows "
                    "earlier steps failed",
                )

    def quiet_values(self, scorer: Any, X: FloatRows) -> Scores | None:
        """Score ``X``; None (reported elsewhere already) when it raises or has a bad shape."""
        try:
            out = self.score(scorer, X)
        except _HungError:
            raise
        except Exception:
            return None
        try:
            array = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError):
            return None
        n = X.shape[0]
        return array.reshape(n) if array.shape in ((n,), (n, 1)) else None

    def concurrent_calls(self, scorer: Any) -> None:
        self.ran.append("threads")
        reference = self.reference
        if reference is None:
            self.skip("threads", f"no usable scores for {_rows_label(self.rows.shape[0])}")
            return
        single = sorted(self.alone)
        barrier = threading.Barrier(self.threads)
        errors: list[str] = []
        disagreements: list[str] = []
        lock = threading.Lock()

        def work(thread: int) -> None:
            try:
                barrier.wait(self.timeout_s)
            except threading.BrokenBarrierError:
                return
            for call in range(self.calls_per_thread):
                whole = call % 2 == 0 or not single
                row = 0 if whole else single[(thread * self.calls_per_thread + call) % len(single)]
                rows = self.rows if whole else self.rows[row : row + 1]
                expected = reference if whole else self.alone[row]
                try:
                    out = scorer.score(_read_only(rows))
                    values = np.asarray(out, dtype=np.float64).reshape(rows.shape[0])
                except Exception as exc:
                    with lock:
                        errors.append(_describe_error(exc))
                    continue
                differ = ~self.same(values, expected)
                if differ.any():
                    at = int(np.flatnonzero(differ)[0])
                    with lock:
                        disagreements.append(
                            f"thread {thread}, {_rows_label(rows.shape[0])}, row "
                            f"{at if whole else row}: {values[at]:g} instead of "
                            f"{expected[at]:g}"
                        )

        workers = [
            threading.Thread(target=work, args=(i,), name=f"scoring-conformance-{i}", daemon=True)
            for i in range(self.threads)
        ]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + self.timeout_s
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        total = self.threads * self.calls_per_thread
        intro = f"{self.threads} threads calling score(X) at once"
        if any(worker.is_alive() for worker in workers):
            self.fail("threads", f"{intro} did not finish within {self.timeout_s:g} s (deadlock?)")
            raise _StopChecksError
        advice = (
            "; the engine calls score from many threads at once: keep per-call state in local "
            "variables, or guard shared state with a lock"
        )
        if errors:
            self.fail(
                "threads",
                f"{intro}: {len(errors)} of {total} calls raised (first: {errors[0]}){advice}",
            )
        if disagreements:
            self.fail(
                "threads",
                f"{intro}: {len(disagreements)} of {total} calls disagreed with sequential "
                f"calls (first: {disagreements[0]}){advice}",
            )

    # -- closing -------------------------------------------------------------------------------

    def close(self, scorer: Any, what: str) -> None:
        close = getattr(scorer, "close", None)
        if not callable(close):
            return
        self.built = [other for other in self.built if other is not scorer]
        try:
            _call(self.timeout_s, close)
        except _HungError:
            self.fail("close", f"close() of {what} did not return within {self.timeout_s:g} s")
            raise _StopChecksError from None
        except Exception as exc:
            self.close_errors.setdefault(_describe_error(exc), []).append(what)

    def report_close_errors(self) -> None:
        for error, whats in self.close_errors.items():
            self.fail(
                "close",
                f"close() raised {error} (closing {', '.join(whats)}); engine.close() would "
                "raise it, in an ExceptionGroup, after closing everything else",
            )
        self.close_errors.clear()

    def lifecycle(self, context: ScorerContext, first: Any) -> None:
        self.ran.append("close")
        if not callable(getattr(first, "close", None)):
            self.skip("close", "the scorer has no close(); the engine does not require one")
            return
        with self.check("close"):
            second = self.build(context, second=True)
            self.close(first, "an instance that scored")
            if second is not None:
                after = self.quiet_values(second, self.rows)
                if after is not None and self.reference is not None:
                    differ = ~self.same(after, self.reference)
                    if differ.any():
                        self.fail(
                            "close",
                            "closing one instance changed the scores of another one "
                            f"({int(differ.sum())} of {len(differ)} rows); engine.reload() "
                            "closes the old scorer while the new one serves",
                        )
                elif after is None and self.reference is not None:
                    self.fail(
                        "close",
                        "after one instance was closed, another one could no longer score; "
                        "engine.reload() closes the old scorer while the new one serves",
                    )
                self.close(second, "a second instance")
            unused = self.build(context, second=True)
            if unused is not None:
                self.close(unused, "an instance that never scored")
        self.report_close_errors()

    def close_leftovers(self) -> None:
        for scorer in list(self.built):
            try:
                self.close(scorer, "an instance left over by a failed check")
            except _StopChecksError:
                break

    # -- through a real engine -----------------------------------------------------------------

    def through_engine(self) -> None:
        self.ran.append("engine")
        wrapped: list[_CountingScorer] = []

        def factory(context: ScorerContext) -> _CountingScorer:
            scorer = _CountingScorer(self.factory(context))
            wrapped.append(scorer)
            return scorer

        default = 0.0 if self.output_range is None else self.output_range[0]
        config: dict[str, Any] = {
            "features": [{"name": name} for name in self.feature_names],
            "chain": [{"name": self.step_name, "scorer": _UNDER_TEST, "options": self.options}],
            "on_exhausted": {"score": default},
        }
        if self.output_range is not None:
            config["output_range"] = list(self.output_range)
        plugin = scorer_plugin(_UNDER_TEST, factory, options=self.options_type)
        try:
            engine = _call(
                self.timeout_s,
                lambda: Engine.from_config(config, base_dir=self.base_dir, plugins=[plugin]),
            )
        except _HungError:
            self.fail("engine", f"building the engine did not finish within {self.timeout_s:g} s")
            raise _StopChecksError from None
        except Exception as exc:
            self.fail("engine", f"the engine could not be built: {_describe_error(exc)}")
            return
        try:
            self.engine_scores(engine)
        finally:
            self.engine_close(engine, wrapped)

    def engine_scores(self, engine: Engine) -> None:
        step = engine.diagnostics()["steps"][0]
        if step["status"] != "ready":
            self.fail("engine", f"the engine marked the step unavailable: {step['reason']}")
            return
        try:
            result = _call(self.timeout_s, engine.score_batch, self.rows)
        except _HungError:
            self.fail("engine", f"engine.score_batch did not return within {self.timeout_s:g} s")
            raise _StopChecksError from None
        fell_back = [
            (row, reason) for row, reason in enumerate(result.fallback_reasons()) if reason
        ]
        explained = {"score", "shape", "finite", "output_range", "input"}
        explained &= set(self.checks_failed())
        if fell_back and explained:
            self.skip("engine", "rows fell back for the reasons above")
        elif fell_back:
            row, reason = fell_back[0]
            self.fail(
                "engine",
                f"engine.score_batch fell back for {len(fell_back)} of {len(result)} rows "
                f"(first: row {row}, {reason})",
            )
        elif not fell_back and self.reference is not None:
            differ = ~self.same(result.scores, self.reference)
            if differ.any():
                row = int(np.flatnonzero(differ)[0])
                self.fail(
                    "engine",
                    f"engine.score_batch gave {result.scores[row]:g} for row {row}, a direct "
                    f"call {self.reference[row]:g}",
                )

    def engine_close(self, engine: Engine, wrapped: list[_CountingScorer]) -> None:
        for attempt in ("engine.close()", "a second engine.close()"):
            try:
                _call(self.timeout_s, engine.close)
            except _HungError:
                self.fail("engine", f"{attempt} did not return within {self.timeout_s:g} s")
                raise _StopChecksError from None
            except Exception as exc:
                if attempt == "engine.close()" and "close" not in self.checks_failed():
                    self.fail("close", f"{attempt} raised {_describe_error(exc)}")
        calls = [scorer.close_calls for scorer in wrapped]
        if calls != [1] * len(calls):
            self.fail("engine", f"the engine called close() {calls} times; expected once each")
