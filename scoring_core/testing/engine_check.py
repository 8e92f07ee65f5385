"""The ``engine`` check: the scorer registered in a real :class:`~scoring_core.Engine`.

The step must be ready, score the rows without falling back and as direct calls did, and
the engine must close each scorer it built exactly once (also when closed twice).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scoring_core.engine import Engine
from scoring_core.scorer import ScorerContext, SupportsClose
from scoring_core.testing.checker import Checker
from scoring_core.testing.helpers import scorer_plugin
from scoring_core.testing.scorer_calls import (
    FloatRows,
    HungError,
    StopChecksError,
    call_with_timeout,
    describe_error,
)

__all__ = ["check_through_engine"]


UNDER_TEST = "scoring-conformance-under-test"


class _CountingScorer:
    """Wraps a scorer for the engine check, counting ``close()`` calls."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.close_calls = 0

    def score(self, X: FloatRows, /, *args: Any, **kwargs: Any) -> Any:
        return self._inner.score(X, *args, **kwargs)  # a cancel token, for cancellable scorers

    def close(self) -> None:
        self.close_calls += 1
        if isinstance(self._inner, SupportsClose):
            self._inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def check_through_engine(checker: Checker) -> None:
    """Build an engine with the scorer as its only step, score the rows, close it twice."""
    checker.ran.append("engine")
    wrapped: list[_CountingScorer] = []

    def factory(context: ScorerContext) -> _CountingScorer:
        scorer = _CountingScorer(checker.factory(context))
        wrapped.append(scorer)
        return scorer

    default = 0.0 if checker.output_range is None else checker.output_range[0]
    config: dict[str, Any] = {
        "features": [{"name": name} for name in checker.feature_names],
        "chain": [{"name": checker.step_name, "scorer": UNDER_TEST, "options": checker.options}],
        "on_exhausted": {"score": default},
    }
    if checker.output_range is not None:
        config["output_range"] = list(checker.output_range)
    plugin = scorer_plugin(UNDER_TEST, factory, options=checker.options_type)
    try:
        engine = call_with_timeout(
            checker.timeout_s,
            lambda: Engine.from_config(config, base_dir=checker.base_dir, plugins=[plugin]),
        )
    except HungError:
        checker.fail("engine", f"building the engine did not finish within {checker.timeout_s:g} s")
        raise StopChecksError from None
    except Exception as exc:
        checker.fail("engine", f"the engine could not be built: {describe_error(exc)}")
        return
    try:
        _engine_scores(checker, engine)
    finally:
        _engine_close(checker, engine, wrapped)


def _engine_scores(checker: Checker, engine: Engine) -> None:
    """Score the rows through the engine; compare with the direct calls."""
    step = engine.diagnostics()["steps"][0]
    if step["status"] != "ready":
        checker.fail("engine", f"the engine marked the step unavailable: {step['reason']}")
        return
    try:
        result = call_with_timeout(checker.timeout_s, engine.score_batch, checker.rows)
    except HungError:
        checker.fail("engine", f"engine.score_batch did not return within {checker.timeout_s:g} s")
        raise StopChecksError from None
    fell_back = [(row, reason) for row, reason in enumerate(result.fallback_reasons()) if reason]
    explained = {"score", "shape", "finite", "output_range", "input"}
    explained &= set(checker.checks_failed())
    if fell_back and explained:
        checker.skip("engine", "rows fell back for the reasons above")
    elif fell_back:
        row, reason = fell_back[0]
        checker.fail(
            "engine",
            f"engine.score_batch fell back for {len(fell_back)} of {len(result)} rows "
            f"(first: row {row}, {reason})",
        )
    elif not fell_back and checker.reference is not None:
        differ = ~checker.same(result.scores, checker.reference)
        if differ.any():
            row = int(np.flatnonzero(differ)[0])
            checker.fail(
                "engine",
                f"engine.score_batch gave {result.scores[row]:g} for row {row}, a direct "
                f"call {checker.reference[row]:g}",
            )


def _engine_close(checker: Checker, engine: Engine, wrapped: list[_CountingScorer]) -> None:
    """Close the engine twice; each scorer it built must see ``close()`` exactly once."""
    for attempt in ("engine.close()", "a second engine.close()"):
        try:
            call_with_timeout(checker.timeout_s, engine.close)
        except HungError:
            checker.fail("engine", f"{attempt} did not return within {checker.timeout_s:g} s")
            raise StopChecksError from None
        except Exception as exc:
            if attempt == "engine.close()" and "close" not in checker.checks_failed():
                checker.fail("close", f"{attempt} raised {describe_error(exc)}")
    calls = [scorer.close_calls for scorer in wrapped]
    if calls != [1] * len(calls):
        checker.fail("engine", f"the engine called close() {calls} times; expected once each")
