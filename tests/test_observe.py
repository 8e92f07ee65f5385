"""The observation point: every step call is counted once, in one place, exactly."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from scorers import MeanScorer

from scoring_core import Engine
from scoring_core.observe import LATENCY_BUCKETS_S, StepCounters
from scoring_core.testing import engine_for, scorer_plugin

X = np.random.default_rng(3).random((40, 5)).astype(np.float32)


def step_of(engine: Engine, name: str) -> dict[str, Any]:
    return next(s for s in engine.diagnostics()["steps"] if s["name"] == name)


def test_latency_buckets_run_from_25_us_to_1_s() -> None:
    assert LATENCY_BUCKETS_S[0] == 25e-6
    assert LATENCY_BUCKETS_S[-1] == 1.0
    assert list(LATENCY_BUCKETS_S) == sorted(LATENCY_BUCKETS_S)


def test_each_call_lands_in_the_bucket_of_its_duration_and_inf_takes_the_slow_ones() -> None:
    counters = StepCounters()
    for elapsed_ns in (10_000, 25_000, 26_000, 3_000_000, 2_000_000_000):
        counters.record_call(1, 1, elapsed_ns)
    cumulative = dict(counters.snapshot().latency.cumulative())
    assert cumulative[25e-6] == 2  # 10 us and exactly 25 us (le is inclusive)
    assert cumulative[50e-6] == 3
    assert cumulative[5e-3] == 4
    assert cumulative[1.0] == 4
    assert cumulative[float("inf")] == 5
    assert counters.snapshot().latency.sum_s == pytest.approx(2.003061)


def test_quantiles_stay_within_the_fastest_and_slowest_call() -> None:
    counters = StepCounters()
    for _ in range(10):
        counters.record_call(1, 1, 20_100_000)  # 20.1 ms, inside the 10..25 ms bucket
    latency = counters.snapshot().latency
    assert latency.quantile(0.5) == pytest.approx(0.0201)
    assert latency.quantile(0.99) == pytest.approx(0.0201)


def test_quantiles_interpolate_inside_a_bucket() -> None:
    counters = StepCounters()
    for elapsed_ns in (60_000, 70_000, 80_000, 90_000):  # all in the 50..100 us bucket
        counters.record_call(1, 1, elapsed_ns)
    p50 = counters.snapshot().latency.quantile(0.5)
    assert p50 is not None
    assert 60e-6 <= p50 <= 90e-6
    assert p50 == pytest.approx(75e-6)  # half way through the bucket


def test_counts_from_many_threads_at_once_are_exact() -> None:
    counters = StepCounters()
    threads, calls = 8, 5_000

    def hammer() -> None:
        for i in range(calls):
            counters.record_call(3, 2, 1_000 * (i % 50))
            counters.record_failed("error", 1)
            counters.count("reloads")

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    snap = counters.snapshot()
    assert snap.calls == threads * calls
    assert snap.rows_in == 3 * threads * calls
    assert snap.rows_served == 2 * threads * calls
    assert snap.rows_failed == {"error": threads * calls}
    assert snap.latency.count == threads * calls
    assert snap.event("reloads") == threads * calls


def test_an_engine_scored_from_many_threads_counts_every_row_once() -> None:
    plugin = scorer_plugin("mean", MeanScorer)
    chain = [{"name": "model", "scorer": "mean"}]
    threads, rounds = 6, 50
    with engine_for(chain, plugins=[plugin], output_range=[0, 1]) as engine:

        def work() -> None:
            for _ in range(rounds):
                engine.score(X[0])
                engine.score_batch(X)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        model = step_of(engine, "model")
        diagnostics = engine.diagnostics()
    assert model["calls"] == 2 * threads * rounds
    assert model["rows_in"] == model["rows_served"] == threads * rounds * (1 + len(X))
    assert model["latency_ms"]["samples"] == model["calls"]
    assert diagnostics["engine"]["rows_scored"] == model["rows_served"]


def test_score_step_goes_through_the_same_counters_and_leaves_the_breaker_alone() -> None:
    class AlwaysFails(MeanScorer):
        def score(self, X: np.ndarray) -> np.ndarray:
            raise ValueError("down")

    plugin = scorer_plugin("mean", MeanScorer, failing=AlwaysFails)
    chain = [
        {
            "name": "model",
            "scorer": "failing",
            "circuit_breaker": {"minimum_calls": 1, "failure_rate": 0.5},
        },
        {"name": "formula", "scorer": "mean"},
    ]
    with engine_for(chain, plugins=[plugin], output_range=[0, 1]) as engine:
        X_checked = engine.prepare_batch(X).X
        for _ in range(5):
            run = engine.score_step("model", X_checked)
        assert engine.score(X[0]).fallbacks[0].kind == "error"  # the breaker was closed
        model = step_of(engine, "model")
    assert run.failed.all()
    assert run.reason == "raised ValueError: down"
    assert model["calls"] == 5 + 1
    assert model["rows_failed"] == {"error": 5 * len(X) + 1}
    assert model["circuit_breaker"]["state"] == "open"  # opened by the chain call alone
    assert model["circuit_breaker"]["transitions"] == 1
