"""Every step of the chain failing, each its own way: a loud error, or a visible default."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from fault_kit import assert_rows_served
from scorers import NaNForHighFirstFeature, OutOfRangeScorer, RefusesToLoad, WrongShapeScorer

from scoring_core import ChainExhaustedError, Engine, ScorerContext
from scoring_core.testing import engine_for, scorer_plugin

N = 24
X = np.random.default_rng(51).random((N, 5)).astype(np.float32)
X[:, 0] = np.where(np.arange(N) % 2 == 0, 0.75, 0.25)  # NaN from `nan` on even rows
X[:, 1] = np.where(np.arange(N) % 3 == 0, 0.75, 0.25)  # 1.5 from `too_high` on every third
RELEASE = threading.Event()


class Raising:
    def __init__(self, ctx: ScorerContext) -> None:
        pass

    def score(self, X: np.ndarray) -> np.ndarray:
        raise ConnectionError("model server refused the connection")


class Hangs(Raising):
    def score(self, X: np.ndarray) -> np.ndarray:
        RELEASE.wait(5)
        return np.full(X.shape[0], 0.5)


class AlwaysNaN(Raising):
    def score(self, X: np.ndarray) -> np.ndarray:
        return np.full(X.shape[0], np.nan)


class AlwaysTooHigh(Raising):
    def score(self, X: np.ndarray) -> np.ndarray:
        return np.full(X.shape[0], 1.5)


PLUGIN = scorer_plugin(
    "missing",
    RefusesToLoad,
    raising=Raising,
    hangs=Hangs,
    nan=AlwaysNaN,
    too_high=AlwaysTooHigh,
    wrong_shape=WrongShapeScorer,
    nan_high=NaNForHighFirstFeature,
    out_of_range=OutOfRangeScorer,
)

# step name, scorer, extra step keys, fallback kind, words of the reason
STEPS: list[tuple[str, str, dict[str, Any], str, str]] = [
    (
        "missing",
        "missing",
        {},
        "unavailable",
        "FileNotFoundError: model.onnx not found",
    ),
    (
        "remote",
        "raising",
        {},
        "error",
        "raised ConnectionError: model server refused the connection",
    ),
    (
        "stuck",
        "hangs",
        {"timeout_ms": 30},
        "timeout",
        "timed out after 30 ms (abandoned",
    ),
    ("nan", "nan", {}, "non_finite", "returned a non-finite score"),
    ("too_high", "too_high", {}, "out_of_range", "outside output_range [0, 1]"),
    ("two_columns", "wrong_shape", {}, "bad_shape", "returned shape ("),
]
CHAIN = [{"name": name, "scorer": scorer, **extra} for name, scorer, extra, _, _ in STEPS]


@pytest.fixture(autouse=True)
def _release_hung_calls() -> Any:
    RELEASE.clear()
    yield
    RELEASE.set()


def _check_records(fallbacks: Any) -> None:
    assert [(f.step, f.kind) for f in fallbacks] == [(s[0], s[3]) for s in STEPS]
    for record, (_, _, _, _, reason) in zip(fallbacks, STEPS, strict=True):
        assert reason in record.reason


def _check_step_diagnostics(engine: Engine, rows: int) -> None:
    steps = engine.diagnostics()["steps"]
    assert [s["name"] for s in steps] == [s[0] for s in STEPS]
    for step, (_, _, _, kind, _) in zip(steps, STEPS, strict=True):
        assert step["rows_failed"] == {kind: rows}
        assert step["rows_served"] == 0
    assert steps[0]["status"] == "unavailable"
    assert steps[0]["reason"] == "FileNotFoundError: model.onnx not found"


def test_every_step_failing_raises_chain_exhausted_with_each_steps_reason() -> None:
    with engine_for(CHAIN, plugins=[PLUGIN], output_range=[0, 1]) as engine:
        with pytest.raises(ChainExhaustedError) as single:
            engine.score(X[0])
        with pytest.raises(ChainExhaustedError) as batch:
            engine.score_batch(X)
        _check_step_diagnostics(engine, N + 1)
        counters = engine.diagnostics()["engine"]

    # what the caller sees: one record per step, in chain order, and a message saying what to do
    for error in (single.value, batch.value):
        assert error.row == 0
        _check_records(error.fallbacks)
        message = str(error)
        assert message.startswith("every step of the chain failed for row 0 (")
        for _, _, _, _, reason in STEPS:
            assert reason in message
        assert "scoring check" in message
        assert "on_exhausted" in message

    # what diagnostics say: nothing scored, every row counted as exhausted
    assert counters["rows_exhausted"] == N + 1
    assert counters["rows_scored"] == 0


def test_every_step_failing_serves_the_on_exhausted_default_marked_as_such() -> None:
    config = {"output_range": [0, 1], "on_exhausted": {"score": 0.5}}
    with engine_for(CHAIN, plugins=[PLUGIN], **config) as engine:
        single = engine.score(X[0])
        batch = engine.score_batch(X)
        _check_step_diagnostics(engine, N + 1)
        counters = engine.diagnostics()["engine"]
    assert (single.score, single.scorer, single.is_default) == (0.5, "on_exhausted", True)
    _check_records(single.fallbacks)
    assert_rows_served(batch, N, ["on_exhausted"] * N, np.full(N, 0.5), atol=0)
    assert batch.counts_by_scorer() == {"on_exhausted": N}
    for row in batch.fallbacks:
        _check_records(row)
    assert batch.fallback_counts() == {s[0]: {s[3]: N} for s in STEPS}
    assert counters["on_exhausted"] == {"score": 0.5}
    assert counters["rows_exhausted"] == N + 1


def _per_row_chain() -> list[dict[str, Any]]:
    return [
        {"name": "model", "scorer": "nan_high"},
        {"name": "backup", "scorer": "out_of_range"},
    ]


def test_rows_every_step_failed_get_the_default_and_only_those_rows() -> None:
    nan_rows = X[:, 0] > 0.5
    high_rows = X[:, 1] > 0.5
    exhausted = nan_rows & high_rows
    assert 0 < int(exhausted.sum()) < int(nan_rows.sum())
    config = {"output_range": [0, 1], "on_exhausted": {"score": 0.0}}
    with engine_for(_per_row_chain(), plugins=[PLUGIN], **config) as engine:
        batch = engine.score_batch(X)
        model, backup = engine.diagnostics()["steps"]
        counters = engine.diagnostics()["engine"]
    expected_scorers = np.where(~nan_rows, "model", np.where(exhausted, "on_exhausted", "backup"))
    expected = np.where(~nan_rows, X.astype(np.float64).mean(axis=1), np.where(exhausted, 0, 0.5))
    assert_rows_served(batch, N, expected_scorers, expected)
    assert batch.fallback_counts() == {
        "model": {"non_finite": int(nan_rows.sum())},
        "backup": {"out_of_range": int(exhausted.sum())},
    }
    assert model["rows_failed"] == {"non_finite": int(nan_rows.sum())}
    assert backup["rows_in"] == int(nan_rows.sum())
    assert backup["rows_failed"] == {"out_of_range": int(exhausted.sum())}
    assert counters["rows_exhausted"] == int(exhausted.sum())


def test_a_batch_with_one_row_every_step_failed_raises_naming_that_row() -> None:
    nan_rows = X[:, 0] > 0.5
    exhausted = nan_rows & (X[:, 1] > 0.5)
    first = int(np.flatnonzero(exhausted)[0])
    with engine_for(_per_row_chain(), plugins=[PLUGIN], output_range=[0, 1]) as engine:
        with pytest.raises(ChainExhaustedError) as info:
            engine.score_batch(X)
        counters = engine.diagnostics()["engine"]
    assert info.value.row == first
    assert [(f.step, f.kind) for f in info.value.fallbacks] == [
        ("model", "non_finite"),
        ("backup", "out_of_range"),
    ]
    assert f"failed for row {first} " in str(info.value)
    assert counters["rows_exhausted"] == int(exhausted.sum())
