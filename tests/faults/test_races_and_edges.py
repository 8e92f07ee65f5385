"""Races and edges found in review: reload and close under load, hostile inputs and outputs."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from scorers import ConstantScorer, MeanScorer

from scoring_core import ConfigError, EngineClosedError, InputError
from scoring_core.config.yaml import load_yaml_text
from scoring_core.testing import engine_for, scorer_plugin

ROW = [0.2, 0.4, 0.6, 0.8, 1.0]


class SlowMean(MeanScorer):
    """The row mean after a short pause, so calls overlap reloads and closes."""

    def score(self, X: np.ndarray) -> np.ndarray:
        time.sleep(0.002)
        if self.closed:
            raise RuntimeError("scored after close")
        return X.mean(axis=1)


PLUGIN = scorer_plugin("slow", SlowMean, constant=ConstantScorer, mean=MeanScorer)
CHAIN = [{"name": "model", "scorer": "slow"}, {"name": "formula", "scorer": "constant"}]


def test_reload_under_32_threads_never_sends_a_row_to_the_fallback() -> None:
    stop = threading.Event()
    with engine_for(CHAIN, plugins=[PLUGIN]) as engine:

        def reload_often() -> int:
            count = 0
            while not stop.is_set():
                engine.reload("model")
                count += 1
                time.sleep(0.005)
            return count

        with ThreadPoolExecutor(max_workers=33) as pool:
            reloads = pool.submit(reload_often)
            results = list(pool.map(lambda _: engine.score(ROW), range(2000)))
            stop.set()
            assert reloads.result() > 5
        model = engine.diagnostics()["steps"][0]
    assert {r.scorer for r in results} == {"model"}
    assert model["rows_failed"] == {}


def test_a_timeout_step_under_32_threads_is_not_starved_by_its_own_worker_pool() -> None:
    chain = [dict(CHAIN[0], timeout_ms=500), CHAIN[1]]
    with engine_for(chain, plugins=[PLUGIN]) as engine, ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda _: engine.score(ROW), range(320)))
    assert {r.scorer for r in results} == {"model"}


def test_close_during_calls_gives_results_or_engine_closed_never_a_default() -> None:
    engine = engine_for(CHAIN, plugins=[PLUGIN], on_exhausted={"score": 0.5})
    outcomes: list[str] = []
    lock = threading.Lock()

    def call(_: int) -> None:
        try:
            result = engine.score(ROW)
            outcome = result.scorer
        except EngineClosedError:
            outcome = "closed"
        with lock:
            outcomes.append(outcome)

    with ThreadPoolExecutor(max_workers=32) as pool:
        futures = [pool.submit(call, i) for i in range(2000)]  # about 125 ms of calls
        deadline = time.monotonic() + 10
        while len(outcomes) < 64 and time.monotonic() < deadline:
            time.sleep(0.001)  # close once calls are flowing, whatever the machine's speed
        engine.close()
        for future in futures:
            future.result()
    assert set(outcomes) <= {"model", "closed"}
    assert "model" in outcomes
    assert "closed" in outcomes


def test_a_defaultdict_row_with_a_misspelt_feature_is_refused() -> None:
    row: defaultdict[str, float] = defaultdict(float, {f"f{i}": 0.5 for i in range(4)})
    row["f4_typo"] = 0.5
    with (
        engine_for([{"name": "m", "scorer": "mean"}], plugins=[PLUGIN]) as engine,
        pytest.raises(InputError, match="unknown feature 'f4_typo'"),
    ):
        engine.score(row)
    assert "f4" not in row  # the caller's row was not changed


class Mutating:
    def __init__(self, ctx: Any) -> None:
        pass

    def score(self, X: np.ndarray) -> np.ndarray:
        X[:] = 0.0
        return X.mean(axis=1)


def test_a_scorer_cannot_change_the_rows_the_next_step_and_the_caller_see() -> None:
    plugin = scorer_plugin("mutating", Mutating, mean=MeanScorer)
    chain = [{"name": "bad", "scorer": "mutating"}, {"name": "m", "scorer": "mean"}]
    X = np.full((3, 5), 0.6, dtype=np.float32)
    with engine_for(chain, plugins=[plugin]) as engine:
        batch = engine.score_batch(X)
        single = engine.score(ROW)
    np.testing.assert_allclose(batch.scores, 0.6, rtol=1e-6)
    assert set(batch.scorers) == {"m"}
    assert "read-only" in batch.fallback_reasons()[0]
    assert single.score == pytest.approx(0.6)
    assert (np.float32(0.6) == X).all()


def test_a_clipped_row_is_read_only_too() -> None:
    # A clipped row is a new array made by the check; it must be as read-only as the rest.
    plugin = scorer_plugin("mutating", Mutating, mean=MeanScorer)
    chain = [{"name": "bad", "scorer": "mutating"}, {"name": "m", "scorer": "mean"}]
    features = [{"name": "a", "min": 0, "max": 1, "clip": True}, {"name": "b", "min": 0, "max": 1}]
    with engine_for(chain, plugins=[plugin], features=features) as engine:
        result = engine.score(np.array([1.8, 0.2]))
    assert result.scorer == "m"
    assert result.score == pytest.approx(0.6)
    assert "read-only" in result.fallbacks[0].reason


@pytest.mark.parametrize(
    "output",
    [np.array([None], dtype=object), np.array(["abc"]), np.array(["0.7"]), np.array([1 + 2j])],
)
def test_a_non_numeric_output_falls_back_as_a_bad_output(output: np.ndarray) -> None:
    class Returns:
        def __init__(self, ctx: Any) -> None:
            pass

        def score(self, X: np.ndarray) -> np.ndarray:
            return np.repeat(output, X.shape[0])

    plugin = scorer_plugin("returns", Returns, constant=ConstantScorer)
    chain = [{"name": "odd", "scorer": "returns"}, {"name": "formula", "scorer": "constant"}]
    with engine_for(chain, plugins=[plugin]) as engine:
        single = engine.score(ROW)
        batch = engine.score_batch(np.full((2, 5), 0.5, dtype=np.float32))
    assert single.scorer == "formula"
    assert single.fallbacks[0].kind == "bad_shape"
    assert "not numbers" in single.fallbacks[0].reason
    assert set(batch.scorers) == {"formula"}


@pytest.mark.parametrize(
    "row",
    [[0.1, [0.2], 0.3, 0.4, 0.5], {"f0": [1, 2], "f1": 0, "f2": 0, "f3": 0, "f4": 0}, [10**30] * 5],
)
def test_nested_or_huge_values_are_input_errors_naming_the_feature(row: Any) -> None:
    with engine_for([{"name": "m", "scorer": "mean"}], plugins=[PLUGIN]) as engine:
        with pytest.raises(InputError) as info:
            engine.score(row)
        with pytest.raises(InputError):
            engine.score_batch([row, ROW])
    assert info.value.feature in {"f0", "f1"}


def test_a_step_cannot_be_named_on_exhausted() -> None:
    with pytest.raises(ConfigError, match="on_exhausted"):
        engine_for([{"name": "on_exhausted", "scorer": "mean"}], plugins=[PLUGIN])


@pytest.mark.parametrize("text", ["a: &x [*x]\n", "[" * 600 + "]" * 600])
def test_recursive_or_deep_yaml_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="nests"):
        load_yaml_text(text)


def test_yaml_merge_keys_may_be_overridden() -> None:
    data = load_yaml_text("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\n").data
    assert data["other"] == {"x": 3, "y": 2}


@pytest.mark.parametrize("mapping", [[1, 2], None, "abc"])
def test_from_config_with_a_non_mapping_is_a_config_error(mapping: Any) -> None:
    from scoring_core import Engine

    with pytest.raises(ConfigError, match="mapping"):
        Engine.from_config(mapping)
