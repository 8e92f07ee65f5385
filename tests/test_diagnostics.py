"""Diagnostics and logs: per-step counters, latency, load state; rate-limited fallback logs."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scorers import ConstantScorer, MeanScorer, NaNForHighFirstFeature, RaisingScorer

from scoring_core import InputError
from scoring_core.testing import engine_for, scorer_plugin

PLUGIN = scorer_plugin(
    "mean",
    MeanScorer,
    nan_high=NaNForHighFirstFeature,
    constant=ConstantScorer,
    raising=RaisingScorer,
)
CHAIN = [{"name": "model", "scorer": "nan_high"}, {"name": "formula", "scorer": "constant"}]


def test_diagnostics_count_calls_rows_and_failures_per_step() -> None:
    X = np.random.default_rng(0).random((100, 5)).astype(np.float32)
    high = int((X[:, 0] > 0.5).sum())
    with engine_for(CHAIN, plugins=[PLUGIN]) as engine:
        engine.score_batch(X)
        engine.score([0.1] * 5)
        engine.score([0.9] * 5)
        diagnostics = engine.diagnostics()
    json.dumps(diagnostics)  # JSON-serialisable
    model, formula = diagnostics["steps"]
    assert [model["name"], formula["name"]] == ["model", "formula"]
    assert model["scorer"] == "nan_high"
    assert model["status"] == "ready"
    assert model["reason"] is None
    assert model["calls"] == 3
    assert model["rows_in"] == 102
    assert model["rows_served"] == 100 - high + 1
    assert model["rows_failed"] == {"non_finite": high + 1}
    assert formula["calls"] == 2
    assert formula["rows_served"] == high + 1
    assert model["latency_ms"]["p50"] > 0
    assert model["latency_ms"]["p99"] >= model["latency_ms"]["p50"]
    assert model["plugin"].startswith("test-plugin")
    assert model["load_ms"] >= 0
    assert diagnostics["engine"]["rows_scored"] == 102


def test_fallback_warnings_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    chain = [{"name": "model", "scorer": "raising"}, {"name": "formula", "scorer": "constant"}]
    with (
        caplog.at_level(logging.WARNING, logger="scoring_core"),
        engine_for(chain, plugins=[PLUGIN]) as engine,
    ):
        for _ in range(500):
            engine.score([0.5] * 5)
    fallback_logs = [r for r in caplog.records if "falling back" in r.getMessage()]
    assert len(fallback_logs) == 1
    assert "backend exploded" in fallback_logs[0].getMessage()


def test_the_last_step_failing_does_not_claim_to_fall_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    chain = [{"name": "model", "scorer": "raising"}, {"name": "formula", "scorer": "raising"}]
    with (
        caplog.at_level(logging.WARNING, logger="scoring_core"),
        engine_for(chain, plugins=[PLUGIN], on_exhausted={"score": 0.5}) as engine,
    ):
        assert engine.score([0.5] * 5).scorer == "on_exhausted"
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("step 'model' failed for 1 row(s), falling back:") for m in messages)
    assert any(
        m.startswith("step 'formula' failed for 1 row(s), no step is left to try:")
        for m in messages
    )


def test_rejected_rows_are_counted() -> None:
    with engine_for(CHAIN, plugins=[PLUGIN]) as engine:
        with pytest.raises(InputError, match="outside"):
            engine.score([2.0] * 5)
        assert engine.diagnostics()["engine"]["rows_rejected"] == 1


def test_32_threads_get_the_same_results_as_sequential_and_counters_add_up() -> None:
    rng = np.random.default_rng(1)
    X = rng.random((64, 5)).astype(np.float32)
    with engine_for(CHAIN, plugins=[PLUGIN]) as engine:
        expected = [(r.score, r.scorer) for r in (engine.score(row) for row in X)]
        expected_batch = engine.score_batch(X)
        before = engine.diagnostics()["steps"]

        def work(i: int) -> tuple[list[tuple[float, str]], np.ndarray]:
            singles = [(r.score, r.scorer) for r in (engine.score(row) for row in X)]
            return singles, engine.score_batch(X).scores

        with ThreadPoolExecutor(max_workers=32) as pool:
            outcomes = list(pool.map(work, range(32)))
        after = engine.diagnostics()["steps"]
    for singles, batch_scores in outcomes:
        assert singles == expected
        np.testing.assert_array_equal(batch_scores, expected_batch.scores)
    model_calls = after[0]["calls"] - before[0]["calls"]
    assert model_calls == 32 * (64 + 1)
    served = sum(s["rows_served"] - b["rows_served"] for s, b in zip(after, before, strict=True))
    assert served == 32 * 128
