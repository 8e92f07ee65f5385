"""A scorer that raises, or returns the wrong type or shape: its rows fall back, and only those.

The step under test is a fake plugin scorer; the next step (``formula``) scores the row
mean, so every row's expected value is known.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fault_kit import assert_rows_served, step_of
from scorers import MeanScorer

from scoring_core import Engine, ScorerContext
from scoring_core.testing import engine_for, scorer_plugin

N = 16
rng = np.random.default_rng(11)
X = rng.random((N, 5)).astype(np.float32)
ROW = X[0]


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ of this error raises too")


class RefusesFloat:
    """A number-like object whose conversion to float raises."""

    def __float__(self) -> float:
        raise ArithmeticError("no float for you")


class RefusesArray:
    """An array-like object whose conversion to an array raises."""

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise RuntimeError("cannot be an array")


def _generator(n: int) -> Iterator[float]:
    return (0.5 for _ in range(n))


# name -> (output for n rows, accepted kinds, words the reason must contain)
GARBAGE: dict[str, tuple[Callable[[int], Any], set[str], tuple[str, ...]]] = {
    "a string": (lambda n: "abc", {"bad_shape"}, ("returned",)),
    "None": (lambda n: None, {"bad_shape"}, ("returned",)),
    "a list one too long": (
        lambda n: [0.5] * (n + 1),
        {"bad_shape"},
        ("returned shape", "expected"),
    ),
    "an empty list": (lambda n: [], {"bad_shape"}, ("returned shape (0,)", "expected")),
    "two columns": (lambda n: np.full((n, 2), 0.5), {"bad_shape"}, ("returned shape", ", 2)")),
    "a 3-D array": (lambda n: np.full((n, 1, 1), 0.5), {"bad_shape"}, ("returned shape",)),
    "a dict": (lambda n: {"score": 0.5}, {"bad_shape"}, ("returned",)),
    "a generator": (_generator, {"bad_shape"}, ("returned",)),
    "a ragged list": (lambda n: [[0.5]] * (n - 1) + [[0.5, 0.5]], {"bad_shape"}, ("returned",)),
    "an object array of None": (
        lambda n: np.array([None] * n, dtype=object),
        {"bad_shape", "non_finite"},
        ("returned",),
    ),
    "a text array": (lambda n: np.array(["abc"] * n), {"bad_shape"}, ("returned",)),
    "complex scores": (lambda n: np.full(n, 0.5 + 0.5j), {"bad_shape"}, ("returned",)),
    "a number too big for a float": (
        lambda n: [10**400] * n,
        {"bad_shape", "non_finite", "out_of_range"},
        ("returned",),
    ),
    "numbers that refuse float()": (
        lambda n: [RefusesFloat()] * n,
        {"bad_shape", "error"},
        ("returned",),
    ),
    "an object that refuses to be an array": (
        lambda n: RefusesArray(),
        {"bad_shape", "error"},
        ("returned",),
    ),
}


class Garbage:
    """Returns the output named by option ``what`` for every call."""

    def __init__(self, ctx: ScorerContext) -> None:
        self.make = GARBAGE[ctx.option("what")][0]
        self.calls = 0

    def score(self, X: np.ndarray) -> Any:
        self.calls += 1
        return self.make(X.shape[0])


def _engine(first: dict[str, Any], **scorers: Any) -> Engine:
    plugin = scorer_plugin("mean", MeanScorer, **scorers)
    chain = [{"name": "model", **first}, {"name": "formula", "scorer": "mean"}]
    return engine_for(chain, plugins=[plugin], output_range=[0, 1])


def _check_model_failed_every_row(engine: Engine, kinds: set[str], words: tuple[str, ...]) -> None:
    single = engine.score(ROW)
    batch = engine.score_batch(X)
    model, formula = step_of(engine, "model"), step_of(engine, "formula")

    # what the caller sees
    assert single.scorer == "formula"
    assert single.score == pytest.approx(float(ROW.mean()), abs=1e-6)
    (fallback,) = single.fallbacks
    assert fallback.step == "model"
    assert fallback.kind in kinds
    for word in words:
        assert word in fallback.reason
    ((step, by_kind),) = batch.fallback_counts().items()
    assert step == "model"
    assert sum(by_kind.values()) == N
    assert set(by_kind) <= kinds

    # what diagnostics say
    assert model["status"] == "ready"
    assert model["calls"] == 2
    assert model["rows_in"] == N + 1
    assert model["rows_served"] == 0
    assert sum(model["rows_failed"].values()) == N + 1
    assert set(model["rows_failed"]) <= kinds
    assert formula["rows_in"] == N + 1
    assert formula["rows_served"] == N + 1

    # no row lost, none served by the wrong step
    assert_rows_served(batch, N, ["formula"] * N, X.astype(np.float64).mean(axis=1))


@pytest.mark.parametrize("what", list(GARBAGE))
def test_a_scorer_returning_the_wrong_type_or_shape_falls_back_with_a_reason(what: str) -> None:
    _, kinds, words = GARBAGE[what]
    first = {"scorer": "garbage", "options": {"what": what}}
    with _engine(first, garbage=Garbage) as engine:
        _check_model_failed_every_row(engine, kinds, words)


class Raising:
    def __init__(self, ctx: ScorerContext) -> None:
        pass

    def score(self, X: np.ndarray) -> np.ndarray:
        raise RuntimeError("backend exploded: connection reset by peer")


def test_a_scorer_raising_falls_back_and_names_the_error() -> None:
    with _engine({"scorer": "raising"}, raising=Raising) as engine:
        _check_model_failed_every_row(
            engine, {"error"}, ("raised RuntimeError: backend exploded: connection reset by peer",)
        )


def test_a_scorer_raising_an_error_that_cannot_be_printed_still_falls_back() -> None:
    class RaisesUnprintable(Raising):
        def score(self, X: np.ndarray) -> np.ndarray:
            raise UnprintableError()

    with _engine({"scorer": "raising"}, raising=RaisesUnprintable) as engine:
        _check_model_failed_every_row(engine, {"error"}, ("UnprintableError",))


def test_a_scorer_raising_for_some_rows_fails_its_whole_call_and_only_that_call() -> None:
    class RaisesOnHighFirstFeature(Raising):
        def score(self, X: np.ndarray) -> np.ndarray:
            if (X[:, 0] > 0.5).any():
                raise ValueError("first feature above 0.5")
            return np.full(X.shape[0], 0.125)

    high = X[:, 0] > 0.5
    assert high.any()
    assert not high.all()
    with _engine({"scorer": "raising"}, raising=RaisesOnHighFirstFeature) as engine:
        singles = [engine.score(row) for row in X]
        batch = engine.score_batch(X)
        model = step_of(engine, "model")

    # singles: only the rows that make it raise fall back
    assert [r.scorer for r in singles] == list(np.where(high, "formula", "model"))
    for r in np.array(singles, dtype=object)[high]:
        assert [(f.step, f.kind) for f in r.fallbacks] == [("model", "error")]
        assert r.fallbacks[0].reason == "raised ValueError: first feature above 0.5"
    expected_single = np.where(high, X.astype(np.float64).mean(axis=1), 0.125)
    np.testing.assert_allclose([r.score for r in singles], expected_single, atol=1e-6)
    # the batch raised as a whole: every row of it went on to the formula
    assert_rows_served(batch, N, ["formula"] * N, X.astype(np.float64).mean(axis=1))
    assert batch.fallback_counts() == {"model": {"error": N}}
    assert model["calls"] == N + 1
    assert model["rows_served"] == int((~high).sum())
    assert model["rows_failed"] == {"error": int(high.sum()) + N}


def test_a_scorer_that_writes_to_its_input_before_failing_does_not_change_the_next_steps_rows() -> (
    None
):
    class Scribbler(Raising):
        def score(self, X: np.ndarray) -> np.ndarray:
            X[:] = 1.0  # breaks the contract: the engine hands the same rows on
            raise RuntimeError("scribbled, then failed")

    with _engine({"scorer": "scribbler"}, scribbler=Scribbler) as engine:
        single = engine.score(ROW)
        batch = engine.score_batch(X)
    assert single.scorer == "formula"
    assert single.score == pytest.approx(float(ROW.mean()), abs=1e-6)
    assert_rows_served(batch, N, ["formula"] * N, X.astype(np.float64).mean(axis=1))


def test_keyboard_interrupt_in_a_scorer_is_not_swallowed_as_a_fallback() -> None:
    class Interrupted(Raising):
        def score(self, X: np.ndarray) -> np.ndarray:
            raise KeyboardInterrupt

    with _engine({"scorer": "interrupted"}, interrupted=Interrupted) as engine:
        with pytest.raises(KeyboardInterrupt):
            engine.score(ROW)
        with pytest.raises(KeyboardInterrupt):
            engine.score_batch(X)
        assert engine.score_step("formula", X).failed.sum() == 0


# -- a plugin whose factory does not build a scorer -------------------------------------------


class WithoutScore:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


BUILT: list[WithoutScore] = []


def _builds_object_without_score(ctx: ScorerContext) -> WithoutScore:
    BUILT.append(WithoutScore())
    return BUILT[-1]


class ScoreIsNotCallable:
    score = 0.5

    def __init__(self, ctx: ScorerContext) -> None:
        pass


FACTORIES: dict[str, Callable[[ScorerContext], Any]] = {
    "a string": lambda ctx: "a scorer",
    "None": lambda ctx: None,
    "a list": lambda ctx: [MeanScorer(ctx)],
    "a class instead of an instance": lambda ctx: MeanScorer,
    "an object whose score is a number": ScoreIsNotCallable,
    "an object without score but with close": _builds_object_without_score,
}


@pytest.mark.parametrize("built", list(FACTORIES))
def test_a_factory_returning_something_without_score_leaves_the_step_unavailable(
    built: str,
) -> None:
    BUILT.clear()
    with _engine({"scorer": "odd"}, odd=FACTORIES[built]) as engine:
        single = engine.score(ROW)
        batch = engine.score_batch(X)
        model = step_of(engine, "model")
    expected_reason = "not an object with a score(X) method; register a factory that builds"
    assert single.scorer == "formula"
    assert [(f.step, f.kind) for f in single.fallbacks] == [("model", "unavailable")]
    assert single.fallbacks[0].reason.startswith("unavailable: scorer 'odd': its factory returned")
    assert expected_reason in single.fallbacks[0].reason
    assert model["status"] == "unavailable"
    assert expected_reason in model["reason"]
    assert model["calls"] == 0
    assert model["rows_failed"] == {"unavailable": N + 1}
    assert_rows_served(batch, N, ["formula"] * N, X.astype(np.float64).mean(axis=1))
    assert [b.closed for b in BUILT] == [1] * len(BUILT)  # what was built was closed


def _factory_raising_unprintable(ctx: ScorerContext) -> Any:
    raise UnprintableError()


def _describe_raising_unprintable(ctx: ScorerContext) -> Any:
    class DescribeRaises(MeanScorer):
        def describe(self) -> dict[str, Any]:
            raise UnprintableError()

    return DescribeRaises(ctx)


def test_a_factory_raising_an_error_that_cannot_be_printed_leaves_the_step_unavailable() -> None:
    with _engine({"scorer": "broken"}, broken=_factory_raising_unprintable) as engine:
        single = engine.score(ROW)
        model = step_of(engine, "model")
    assert single.scorer == "formula"
    assert model["status"] == "unavailable"
    assert model["reason"] == "UnprintableError: (its message could not be read)"
    assert single.fallbacks[0].reason == f"unavailable: {model['reason']}"


def test_describe_raising_an_error_that_cannot_be_printed_still_gives_diagnostics() -> None:
    with _engine({"scorer": "odd"}, odd=_describe_raising_unprintable) as engine:
        model = step_of(engine, "model")
        assert engine.score(ROW).scorer == "model"
    assert model["status"] == "ready"
    assert model["details"] == {
        "error": "describe() raised UnprintableError: (its message could not be read)"
    }
