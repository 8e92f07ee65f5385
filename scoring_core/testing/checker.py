"""One run of the conformance check: its settings, what it found, and the calls every check makes.

The checks themselves live in :mod:`~scoring_core.testing.call_checks`,
:mod:`~scoring_core.testing.lifecycle_checks` and :mod:`~scoring_core.testing.engine_check`;
each takes the :class:`Checker` and records what it finds on it.
:mod:`~scoring_core.testing.conformance` runs them in order and turns the findings into a
:class:`~scoring_core.testing.ConformanceReport`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring_core.config.validate import validate_options
from scoring_core.errors import ConfigError
from scoring_core.scorer import Scorer, ScorerContext
from scoring_core.testing.report import Violation
from scoring_core.testing.scorer_calls import (
    FloatRows,
    HungError,
    Scores,
    StopChecksError,
    WroteInputError,
    call_with_timeout,
    describe_error,
    read_only,
    rows_label,
)

__all__ = ["Checker"]


@dataclass
class Checker:
    """The settings of one :func:`~scoring_core.testing.check_scorer` call and its findings.

    The first fields are the settings, already resolved; the rest fill up as the checks run.
    """

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
        """Record a violation of ``check``."""
        self.violations.append(Violation(check, message))

    def checks_failed(self) -> list[str]:
        """The check of each violation so far, in order (with repeats)."""
        return [v.check for v in self.violations]

    def skip(self, check: str, reason: str) -> None:
        """Record why ``check`` did not run; the first reason given wins."""
        self.skipped.setdefault(check, reason)

    @contextmanager
    def check(self, name: str) -> Iterator[None]:
        """Mark ``name`` as run; a call that hangs inside stops every check after it."""
        if name not in self.ran:
            self.ran.append(name)
        try:
            yield
        except HungError:
            self.fail("timeout", f"{name}: a call did not return within {self.timeout_s:g} s")
            raise StopChecksError from None

    def same(self, a: Scores, b: Scores) -> npt.NDArray[np.bool_]:
        """Which scores of ``a`` and ``b`` agree within the tolerances."""
        return np.isclose(a, b, rtol=self.rtol, atol=self.atol, equal_nan=True)

    # -- building ------------------------------------------------------------------------------

    def context(self) -> ScorerContext:
        """Validate the options as the engine does (the ``options`` check); the scorer's context."""
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
                raise StopChecksError from None
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
        """Call the factory (the ``construct`` check) and remember the instance to close.

        :param second: another instance is alive; a failure to build is then reported and
            gives None instead of stopping the checks.
        """
        with self.check("construct"):
            try:
                scorer = call_with_timeout(self.timeout_s, self.factory, context)
            except HungError:
                raise
            except Exception as exc:
                if second:
                    self.fail(
                        "construct",
                        "a second instance could not be built while the first is alive "
                        f"({describe_error(exc)}); engine.reload() builds the new scorer "
                        "before it closes the old one",
                    )
                    return None
                self.fail(
                    "construct",
                    f"the factory raised {describe_error(exc)}; the engine would mark the "
                    "step unavailable",
                )
                raise StopChecksError from None
        self.built.append(scorer)
        if not isinstance(scorer, Scorer):
            self.fail(
                "construct",
                f"the factory returned {type(scorer).__name__}, which has no score(X) method",
            )
            raise StopChecksError
        return scorer

    # -- scoring -------------------------------------------------------------------------------

    def score(self, scorer: Any, X: FloatRows) -> Any:
        """Call ``score`` as the engine does, with a read-only copy of ``X``; check X is intact.

        Raises :class:`~scoring_core.testing.scorer_calls.WroteInputError` (after reporting
        it) when the scorer tried to write to the read-only input.
        """
        given = read_only(X)
        try:
            out = call_with_timeout(self.timeout_s, scorer.score, given)
        except ValueError as exc:
            if "read-only" not in str(exc):
                raise
            self.input_violation(
                f"score(X) with {rows_label(X.shape[0])} tried to write to its input "
                f"({describe_error(exc)}); the engine passes X read-only, so the step would "
                "fail for every row: copy X before changing it"
            )
            raise WroteInputError from exc
        if not np.array_equal(given, X):
            row, column = (int(i) for i in np.argwhere(given != X)[0])
            self.input_violation(
                f"score(X) with {rows_label(X.shape[0])} changed its input (row {row}, "
                f"column {column}: {X[row, column]:g} -> {given[row, column]:g}); the engine "
                "hands the same array to the next step, so copy X before changing it",
            )
        return out

    def input_violation(self, message: str) -> None:
        """Report an ``input`` violation, only the first time."""
        if "input" not in self.checks_failed():  # once is enough: it happens at every call
            self.fail("input", message)

    def quiet_values(self, scorer: Any, X: FloatRows) -> Scores | None:
        """Score ``X``; None (reported elsewhere already) when it raises or has a bad shape."""
        try:
            out = self.score(scorer, X)
        except HungError:
            raise
        except Exception:
            return None
        try:
            array = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError):
            return None
        n = X.shape[0]
        return array.reshape(n) if array.shape in ((n,), (n, 1)) else None
