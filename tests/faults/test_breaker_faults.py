"""Circuit-breaker faults that ``test_breaker.py`` leaves out.

Timeouts and bad outputs opening the breaker, an open breaker in a batch, 32 threads
hitting a failing step while the breaker opens, and calls the chain deadline skipped.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from fault_kit import assert_rows_served, step_of
from scorers import MeanScorer, built

from scoring_core import Engine, ScorerContext
from scoring_core.resilience.breaker import CLOSED, HALF_OPEN, OPEN
from scoring_core.testing import feature_list, scorer_plugin

N = 10
X = np.random.default_rng(31).random((N, 5)).astype(np.float32)
MEANS = X.astype(np.float64).mean(axis=1)
BREAKER = {
    "failure_rate": 0.5,
    "minimum_calls": 4,
    "window": 10,
    "open_seconds": 30,
    "half_open_calls": 2,
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Flaky:
    """Fails the way option ``how`` says while ``failing`` is set; scores 0.75 otherwise."""

    failing = True

    def __init__(self, ctx: ScorerContext) -> None:
        self.how = ctx.option("how", "raise")
        self.calls = 0
        self.lock = threading.Lock()

    def score(self, X: np.ndarray) -> np.ndarray:
        with self.lock:
            self.calls += 1
        if not Flaky.failing:
            return np.full(X.shape[0], 0.75)
        if self.how == "hang":
            time.sleep(0.2)
        if self.how == "nan":
            return np.full(X.shape[0], np.nan)
        if self.how == "raise":
            raise RuntimeError("backend down")
        return np.full(X.shape[0], 0.75)


class MovesTheClock:
    """Scores nothing: moves the test clock by ``seconds`` (option) when ``moving``, then fails."""

    moving = False
    clock: Clock | None = None

    def __init__(self, ctx: ScorerContext) -> None:
        self.seconds = float(ctx.option("seconds", 1.0))

    def score(self, X: np.ndarray) -> np.ndarray:
        if MovesTheClock.moving and MovesTheClock.clock is not None:
            MovesTheClock.clock.now += self.seconds
        raise RuntimeError("first step always fails")


PLUGIN = scorer_plugin("mean", MeanScorer, flaky=Flaky, mover=MovesTheClock)


def _engine(chain: list[dict[str, Any]], clock: Clock, **top: Any) -> Engine:
    config = {"features": feature_list(5), "output_range": [0, 1], "chain": chain, **top}
    return Engine.from_config(config, plugins=[PLUGIN], clock=clock)


def _model(how: str, **step: Any) -> dict[str, Any]:
    return {
        "name": "model",
        "scorer": "flaky",
        "options": {"how": how},
        "circuit_breaker": BREAKER,
        **step,
    }


FORMULA = {"name": "formula", "scorer": "mean"}


def setup_function() -> None:
    Flaky.failing = True
    MovesTheClock.moving = False
    MovesTheClock.clock = None


def test_timeouts_open_the_breaker_and_then_calls_skip_without_waiting() -> None:
    clock = Clock()
    with _engine([_model("hang", timeout_ms=30), FORMULA], clock) as engine:
        timed_out = [engine.score(row) for row in X[:4]]
        started = time.perf_counter()
        skipped = [engine.score(row) for row in X[4:]]
        took = time.perf_counter() - started
        calls = built(engine, "model").calls
        model = step_of(engine, "model")
    assert [r.fallbacks[0].kind for r in timed_out] == ["timeout"] * 4
    assert [r.fallbacks[0].kind for r in skipped] == ["circuit_open"] * (N - 4)
    assert {r.fallbacks[0].reason for r in skipped} == {
        "circuit open: skipped until the breaker half-opens"
    }
    assert took < 0.1  # six calls skipped at no cost, not six 30 ms timeouts
    assert calls == 4
    np.testing.assert_allclose([r.score for r in timed_out + skipped], MEANS, atol=1e-6)
    assert {r.scorer for r in timed_out + skipped} == {"formula"}
    assert model["circuit_breaker"]["state"] == OPEN
    assert model["circuit_breaker"]["skipped"] == N - 4
    assert model["rows_failed"] == {"timeout": 4, "circuit_open": N - 4}
    assert model["calls"] == 4


def test_batches_of_nan_scores_open_the_breaker_and_then_skip_the_step() -> None:
    clock = Clock()
    with _engine([_model("nan"), FORMULA], clock) as engine:
        batches = [engine.score_batch(X) for _ in range(4)]
        open_batch = engine.score_batch(X)
        model = step_of(engine, "model")
        calls = built(engine, "model").calls
    for batch in batches:  # every row came back NaN and went on to the formula
        assert_rows_served(batch, N, ["formula"] * N, MEANS)
        assert batch.fallback_counts() == {"model": {"non_finite": N}}
    assert calls == 4
    assert model["circuit_breaker"]["state"] == OPEN
    # while open, the whole batch goes to the formula and the model is not called
    assert_rows_served(open_batch, N, ["formula"] * N, MEANS)
    assert open_batch.fallback_counts() == {"model": {"circuit_open": N}}
    assert model["rows_failed"] == {"non_finite": 4 * N, "circuit_open": N}
    assert model["rows_served"] == 0


def test_breaker_opening_under_32_threads_loses_no_row_and_stops_calling_the_step() -> None:
    clock = Clock()
    rows = np.random.default_rng(32).random((32 * 8, 5)).astype(np.float32)
    with _engine([_model("raise"), FORMULA], clock) as engine:
        with ThreadPoolExecutor(max_workers=32) as pool:
            results = list(pool.map(engine.score, rows))
        calls = built(engine, "model").calls
        model = step_of(engine, "model")
    assert [r.scorer for r in results] == ["formula"] * len(rows)
    np.testing.assert_allclose(
        [r.score for r in results], rows.astype(np.float64).mean(axis=1), atol=1e-6
    )
    kinds = [r.fallbacks[0].kind for r in results]
    assert kinds.count("error") == calls
    assert kinds.count("circuit_open") == len(rows) - calls
    assert 4 <= calls <= 4 + 31  # at most the calls already past the breaker when it opened
    assert model["circuit_breaker"]["state"] == OPEN
    assert model["circuit_breaker"]["skipped"] == len(rows) - calls
    assert model["rows_failed"] == {"error": calls, "circuit_open": len(rows) - calls}


def _open_then_half_open(engine: Engine, clock: Clock) -> None:
    for row in X[:4]:
        engine.score(row)
    assert step_of(engine, "model")["circuit_breaker"]["state"] == OPEN
    clock.now += 30
    assert step_of(engine, "model")["circuit_breaker"]["state"] == HALF_OPEN


def test_a_probe_the_chain_deadline_skipped_does_not_close_the_breaker() -> None:
    clock = Clock()
    MovesTheClock.clock = clock
    chain = [{"name": "first", "scorer": "mover"}, _model("raise"), FORMULA]
    with _engine(chain, clock, deadline_ms=500, on_exhausted={"score": 0.5}) as engine:
        _open_then_half_open(engine, clock)
        calls_before = built(engine, "model").calls
        MovesTheClock.moving = True  # from now on the deadline passes before the model's turn
        skipped = [engine.score(row) for row in X[4:8]]
        state = step_of(engine, "model")["circuit_breaker"]["state"]
        calls_after = built(engine, "model").calls
    assert [r.fallbacks[1].kind for r in skipped] == ["deadline"] * 4
    assert calls_after == calls_before  # no probe reached the model...
    assert state != CLOSED  # ...so nothing showed it is back


def test_calls_the_chain_deadline_skipped_do_not_count_as_successes() -> None:
    clock = Clock()
    MovesTheClock.clock = clock
    chain = [{"name": "first", "scorer": "mover"}, _model("raise"), FORMULA]
    with _engine(chain, clock, deadline_ms=500, on_exhausted={"score": 0.5}) as engine:
        MovesTheClock.moving = True
        for row in X:
            engine.score(row)  # the model is never reached
        breaker = step_of(engine, "model")["circuit_breaker"]
    assert breaker["calls_in_window"] == 0
    assert breaker["state"] == CLOSED


def test_score_step_runs_the_step_whatever_its_breaker_says_and_never_moves_it() -> None:
    # `scoring compare` scores every row with each step alone: a breaker must neither skip
    # those calls nor be opened, or held half-open, by them.
    clock = Clock()
    with _engine([_model("raise"), FORMULA], clock) as engine:
        failed = [engine.score_step("model", X) for _ in range(6)]
        assert step_of(engine, "model")["circuit_breaker"]["state"] == CLOSED
        _open_then_half_open(engine, clock)
        Flaky.failing = False
        served = engine.score_step("model", X)
        state = step_of(engine, "model")["circuit_breaker"]["state"]
        probes = [engine.score(row) for row in X[:2]]  # both half-open probes are still free
        after = step_of(engine, "model")["circuit_breaker"]["state"]
    assert {run.reason for run in failed} == {"raised RuntimeError: backend down"}
    assert all(run.failed.all() for run in failed)
    assert not served.failed.any()
    np.testing.assert_allclose(served.scores, 0.75)
    assert state == HALF_OPEN
    assert [r.scorer for r in probes] == ["model", "model"]
    assert after == CLOSED
