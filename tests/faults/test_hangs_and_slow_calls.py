"""Hanging and slow steps: the caller waits at most ``timeout_ms``, and the rows move on.

``test_timeouts.py`` covers one cancelled call, one abandoned call, a batch and the chain
deadline; here the step hangs for good, hangs on some rows only, is slow but in time,
and is called from many threads at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fault_kit import assert_rows_served, calling_engine, calling_rows, formula, step_of
from onnx_models import write_slow_model
from scorers import MeanScorer

from scoring_core import ScorerContext
from scoring_core.testing import engine_for, scorer_plugin

N = 12
X = np.random.default_rng(21).random((N, 5)).astype(np.float32)
MEANS = X.astype(np.float64).mean(axis=1)
RELEASE = threading.Event()  # set at the end of each test: hung calls return then


@pytest.fixture(autouse=True)
def _release_hung_calls() -> Iterator[None]:
    RELEASE.clear()
    yield
    RELEASE.set()


class Hangs:
    """Blocks until the test ends (not cancellable), then returns 0.9."""

    def __init__(self, ctx: ScorerContext) -> None:
        self.started = 0
        self.lock = threading.Lock()

    def score(self, X: np.ndarray) -> np.ndarray:
        with self.lock:
            self.started += 1
        RELEASE.wait(30)
        return np.full(X.shape[0], 0.9)


class SlowWhenFirstFeatureIsHigh:
    """Sleeps ``sleep_s`` for a batch holding a row with f0 > 0.5; scores 0.125 otherwise."""

    def __init__(self, ctx: ScorerContext) -> None:
        self.sleep_s = float(ctx.option("sleep_s", 0.2))

    def score(self, X: np.ndarray) -> np.ndarray:
        if (X[:, 0] > 0.5).any():
            time.sleep(self.sleep_s)
            return np.full(X.shape[0], 0.875)
        return np.full(X.shape[0], 0.125)


class Slow:
    """Always takes ``sleep_s`` seconds, then scores 0.375."""

    def __init__(self, ctx: ScorerContext) -> None:
        self.sleep_s = float(ctx.option("sleep_s", 0.02))

    def score(self, X: np.ndarray) -> np.ndarray:
        time.sleep(self.sleep_s)
        return np.full(X.shape[0], 0.375)


PLUGIN = scorer_plugin(
    "mean", MeanScorer, hangs=Hangs, slow_on_high=SlowWhenFirstFeatureIsHigh, slow=Slow
)


def _chain(first: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "model", **first}, {"name": "formula", "scorer": "mean"}]


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - started


def test_a_hanging_step_costs_each_call_its_timeout_and_no_more() -> None:
    chain = _chain({"scorer": "hangs", "timeout_ms": 40})
    with engine_for(chain, plugins=[PLUGIN], output_range=[0, 1]) as engine:
        timed = [_timed(engine.score, row) for row in X]  # more calls than worker threads
        batch, batch_took = _timed(engine.score_batch, X)
        model, formula_step = step_of(engine, "model"), step_of(engine, "formula")
        _, close_took = _timed(engine.close)

    # what the caller sees: every call answered in about the timeout, by the formula
    results = [r for r, _ in timed]
    assert max(took for _, took in timed) < 0.5
    assert batch_took < 0.5
    assert [r.scorer for r in results] == ["formula"] * N
    np.testing.assert_allclose([r.score for r in results], MEANS, atol=1e-6)
    for result in results:
        ((step, kind),) = [(f.step, f.kind) for f in result.fallbacks]
        assert (step, kind) == ("model", "timeout")
        assert "timed out after 40 ms (abandoned; its late result will be dropped)" in (
            result.fallbacks[0].reason
        )
    assert batch.fallback_counts() == {"model": {"timeout": N}}

    # what diagnostics say
    assert model["status"] == "ready"
    assert model["timeout_ms"] == 40
    assert model["cancellable"] is False
    assert model["calls"] == N + 1
    assert model["rows_served"] == 0
    assert model["rows_failed"] == {"timeout": 2 * N}
    assert formula_step["rows_served"] == 2 * N

    # no row lost; close() did not wait for the hung calls
    assert_rows_served(batch, N, ["formula"] * N, MEANS)
    assert close_took < 1.0


def test_slow_calls_that_answer_in_time_are_served_by_the_slow_step() -> None:
    chain = _chain({"scorer": "slow", "timeout_ms": 1000, "options": {"sleep_s": 0.02}})
    with engine_for(chain, plugins=[PLUGIN], output_range=[0, 1]) as engine:
        singles = [engine.score(row) for row in X[:4]]
        batch = engine.score_batch(X)
        model = step_of(engine, "model")
    assert [(r.scorer, r.score, r.fallbacks) for r in singles] == [("model", 0.375, ())] * 4
    assert_rows_served(batch, N, ["model"] * N, np.full(N, 0.375))
    assert model["rows_failed"] == {}
    assert model["rows_served"] == N + 4
    assert model["latency_ms"]["p50"] >= 20


def test_only_the_calls_that_overrun_fall_back_and_late_answers_never_replace_them() -> None:
    chain = _chain({"scorer": "slow_on_high", "timeout_ms": 50, "options": {"sleep_s": 0.25}})
    high = X[:, 0] > 0.5
    assert 0 < int(high.sum()) < N
    order = np.argsort(high, kind="stable")  # fast rows first: no worker is busy for them
    with engine_for(chain, plugins=[PLUGIN], output_range=[0, 1]) as engine:
        results: dict[int, Any] = {int(i): engine.score(X[i]) for i in order}
        time.sleep(0.4)  # every abandoned call has returned its late 0.875 by now
        fast_again = [engine.score(X[i]) for i in np.flatnonzero(~high)]
        model = step_of(engine, "model")
    expected_scorers = np.where(high, "formula", "model")
    expected_scores = np.where(high, MEANS, 0.125)
    assert [results[i].scorer for i in range(N)] == list(expected_scorers)
    np.testing.assert_allclose([results[i].score for i in range(N)], expected_scores, atol=1e-6)
    assert {f.kind for i in np.flatnonzero(high) for f in results[int(i)].fallbacks} == {"timeout"}
    assert 0.875 not in {r.score for r in results.values()}
    assert [r.scorer for r in fast_again] == ["model"] * int((~high).sum())
    assert model["rows_failed"] == {"timeout": int(high.sum())}
    assert model["rows_served"] == 2 * int((~high).sum())


def test_a_step_whose_workers_are_all_hung_serves_again_once_they_return() -> None:
    class HangsUntilReleased(Hangs):
        def score(self, X: np.ndarray) -> np.ndarray:
            if not RELEASE.is_set():
                RELEASE.wait(30)
                return np.full(X.shape[0], 0.9)
            return np.full(X.shape[0], 0.625)

    plugin = scorer_plugin("mean", MeanScorer, hangs=HangsUntilReleased)
    chain = _chain({"scorer": "hangs", "timeout_ms": 30})
    with engine_for(chain, plugins=[plugin], output_range=[0, 1]) as engine:
        stuck = [engine.score(row) for row in X[:6]]
        RELEASE.set()
        time.sleep(0.1)
        recovered = [engine.score(row) for row in X[6:]]
        model = step_of(engine, "model")
    assert [r.scorer for r in stuck] == ["formula"] * 6
    assert [(r.scorer, r.score) for r in recovered] == [("model", 0.625)] * (N - 6)
    assert 0.9 not in {r.score for r in stuck + recovered}
    assert model["rows_failed"] == {"timeout": 6}


def test_a_reload_gives_a_step_stuck_in_hung_calls_fresh_workers() -> None:
    class HangsUntilReloaded(Hangs):
        generation = 0

        def __init__(self, ctx: ScorerContext) -> None:
            super().__init__(ctx)
            HangsUntilReloaded.generation += 1
            self.hangs = HangsUntilReloaded.generation == 1

        def score(self, X: np.ndarray) -> np.ndarray:
            if self.hangs:
                RELEASE.wait(30)
            return np.full(X.shape[0], 0.625)

    plugin = scorer_plugin("mean", MeanScorer, hangs=HangsUntilReloaded)
    chain = _chain({"scorer": "hangs", "timeout_ms": 50})
    with engine_for(chain, plugins=[plugin], output_range=[0, 1]) as engine:
        stuck = [engine.score(row) for row in X[:6]]  # every worker thread is now hung
        assert engine.reload("model") == {"model": "reloaded"}
        after = engine.score(X[6])
        batch = engine.score_batch(X)
    assert [r.scorer for r in stuck] == ["formula"] * 6
    assert (after.scorer, after.score, after.fallbacks) == ("model", 0.625, ())
    assert_rows_served(batch, N, ["model"] * N, np.full(N, 0.625))


def test_a_hanging_step_under_a_deadline_and_16_threads_keeps_every_call_bounded() -> None:
    chain = _chain({"scorer": "hangs", "timeout_ms": 200})
    config = {"output_range": [0, 1], "deadline_ms": 60, "on_exhausted": {"score": 0.5}}
    with engine_for(chain, plugins=[PLUGIN], **config) as engine:
        with ThreadPoolExecutor(max_workers=16) as pool:
            timed = list(pool.map(lambda row: _timed(engine.score, row), list(X) * 3))
        model = step_of(engine, "model")
        counters = engine.diagnostics()["engine"]
    results = [r for r, _ in timed]
    assert max(took for _, took in timed) < 0.6  # the 60 ms deadline cut the 200 ms timeout
    assert len(results) == 3 * N
    for result, mean in zip(results, np.tile(MEANS, 3), strict=True):
        timeout, *rest = result.fallbacks
        assert (timeout.step, timeout.kind) == ("model", "timeout")
        assert "timed out after" in timeout.reason
        assert "abandoned" in timeout.reason
        if result.scorer == "formula":  # the formula's turn came in time
            assert result.score == pytest.approx(mean, abs=1e-6)
            assert rest == []
        else:  # or after the deadline: skipped, and the default served, marked as such
            assert (result.scorer, result.score, result.is_default) == ("on_exhausted", 0.5, True)
            assert [(f.step, f.kind) for f in rest] == [("formula", "deadline")]
            assert rest[0].reason == "skipped: the chain's deadline_ms (60) passed"
    defaults = sum(r.is_default for r in results)
    assert model["rows_failed"] == {"timeout": 3 * N}
    assert counters["rows_exhausted"] == defaults


def test_slow_onnx_model_is_cancelled_for_every_thread_and_the_formula_serves(
    tmp_path: Path,
) -> None:
    model_file = write_slow_model(tmp_path / "slow.onnx", 39)
    X39 = calling_rows(8 * 96, seed=4)
    chunks = [X39[i : i + 96] for i in range(0, len(X39), 96)]  # 96 rows: about 200 ms
    with calling_engine(model_file, neural={"timeout_ms": 40}) as engine:
        with ThreadPoolExecutor(max_workers=8) as pool:
            timed = list(pool.map(lambda rows: _timed(engine.score_batch, rows), chunks))
        neural = step_of(engine, "neural")
    assert max(took for _, took in timed) < 1.0  # each uncancelled run takes seconds
    for rows, (batch, _) in zip(chunks, timed, strict=True):
        assert_rows_served(batch, 96, ["formula"] * 96, formula(rows))
        assert batch.fallback_counts() == {"neural": {"timeout": 96}}
        for row in batch.fallbacks:
            ((step, kind, reason),) = [(f.step, f.kind, f.reason) for f in row]
            assert (step, kind) == ("neural", "timeout")
            assert "timed out after 40 ms (cancelled)" in reason
    assert neural["cancellable"] is True
    assert neural["rows_failed"] == {"timeout": len(X39)}
    assert neural["rows_served"] == 0
