"""Circuit breaker: opens on a failure rate, skips at no cost, half-opens for k probes."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from scorers import ConstantScorer, built

from scoring_core import ConfigError, Engine
from scoring_core.resilience.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from scoring_core.testing import engine_for, feature_list, scorer_plugin


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Switch:
    """Fails (raises) while ``failing`` is set; counts the calls that reached it."""

    failing = True

    def __init__(self, ctx: Any) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def score(self, X: np.ndarray) -> np.ndarray:
        with self.lock:
            self.calls += 1
        if Switch.failing:
            raise RuntimeError("backend down")
        return np.full(X.shape[0], 0.75)


PLUGIN = scorer_plugin("switch", Switch, constant=ConstantScorer)
BREAKER = {
    "failure_rate": 0.5,
    "minimum_calls": 4,
    "window": 10,
    "open_seconds": 30,
    "half_open_calls": 2,
}
CHAIN = [
    {"name": "model", "scorer": "switch", "circuit_breaker": BREAKER},
    {"name": "formula", "scorer": "constant"},
]
ROW = [0.5] * 5


def engine_with_clock(chain: list[dict[str, Any]], plugin: Any, clock: Clock) -> Engine:
    config = {"features": feature_list(5), "chain": chain}
    return Engine.from_config(config, plugins=[plugin], clock=clock)


@pytest.fixture(autouse=True)
def _reset_switch() -> None:
    Switch.failing = True


def test_breaker_opens_after_minimum_calls_at_the_failure_rate_and_skips_at_no_cost() -> None:
    clock = Clock()
    with engine_with_clock(CHAIN, PLUGIN, clock) as engine:
        model = built(engine, "model")
        for _ in range(4):
            assert engine.score(ROW).fallbacks[0].kind == "error"
        assert model.calls == 4
        skipped = engine.score(ROW)
        state = engine.diagnostics()["steps"][0]["circuit_breaker"]
    assert model.calls == 4  # the open breaker did not call the model
    assert skipped.scorer == "formula"
    assert skipped.fallbacks[0].kind == "circuit_open"
    assert state["state"] == OPEN
    assert state["skipped"] == 1


def test_breaker_stays_closed_below_minimum_calls() -> None:
    with engine_with_clock(CHAIN, PLUGIN, Clock()) as engine:
        for _ in range(3):
            engine.score(ROW)
        assert engine.diagnostics()["steps"][0]["circuit_breaker"]["state"] == CLOSED


def test_half_open_probes_close_the_breaker_when_the_backend_is_back() -> None:
    clock = Clock()
    with engine_with_clock(CHAIN, PLUGIN, clock) as engine:
        for _ in range(4):
            engine.score(ROW)
        clock.now += 30
        Switch.failing = False
        first, second = engine.score(ROW), engine.score(ROW)
        third = engine.score(ROW)
        state = engine.diagnostics()["steps"][0]["circuit_breaker"]["state"]
    assert [first.scorer, second.scorer, third.scorer] == ["model"] * 3
    assert state == CLOSED


def test_failing_probes_open_the_breaker_again_for_another_period() -> None:
    clock = Clock()
    with engine_with_clock(CHAIN, PLUGIN, clock) as engine:
        for _ in range(4):
            engine.score(ROW)
        clock.now += 30
        engine.score(ROW)
        engine.score(ROW)  # two failing probes
        assert engine.diagnostics()["steps"][0]["circuit_breaker"]["state"] == OPEN
        clock.now += 29
        assert engine.score(ROW).fallbacks[0].kind == "circuit_open"
        clock.now += 1
        Switch.failing = False
        assert engine.score(ROW).scorer == "model"


def test_half_open_lets_exactly_k_probes_through_under_32_threads() -> None:
    clock = Clock()
    release = threading.Event()

    class Blocking(Switch):
        def score(self, X: np.ndarray) -> np.ndarray:
            with self.lock:
                self.calls += 1
            if Switch.failing:
                raise RuntimeError("backend down")
            release.wait(5)
            return np.full(X.shape[0], 0.75)

    plugin = scorer_plugin("blocking", Blocking, constant=ConstantScorer)
    chain = [dict(CHAIN[0], scorer="blocking"), CHAIN[1]]
    with engine_with_clock(chain, plugin, clock) as engine:
        for _ in range(4):
            engine.score(ROW)
        model = built(engine, "model")
        calls_when_opened = model.calls
        clock.now += 30
        Switch.failing = False
        with ThreadPoolExecutor(max_workers=32) as pool:
            futures = [pool.submit(engine.score, ROW) for _ in range(32)]
            while sum(f.done() for f in futures) < 30:
                pass  # 30 calls are skipped at once; 2 probes wait on the backend
            release.set()
            results = [f.result() for f in futures]
    assert model.calls - calls_when_opened == 2
    assert sum(r.scorer == "model" for r in results) == 2
    assert sum(r.fallbacks[0].kind == "circuit_open" for r in results if r.fallbacks) == 30


def test_input_errors_never_count_against_the_breaker() -> None:
    with engine_with_clock(CHAIN, PLUGIN, Clock()) as engine:
        Switch.failing = False
        for _ in range(20):
            with pytest.raises(ValueError, match="outside"):
                engine.score([2.0] * 5)
        assert engine.diagnostics()["steps"][0]["circuit_breaker"]["calls_in_window"] == 0


def test_a_breaker_on_the_last_step_is_a_config_error() -> None:
    chain = [CHAIN[1], CHAIN[0]]
    with pytest.raises(ConfigError, match="last step"):
        engine_for(chain, plugins=[PLUGIN])


def test_breaker_unit_transitions() -> None:
    clock = Clock()
    breaker = CircuitBreaker(
        failure_rate=0.5, minimum_calls=2, window=4, open_seconds=10, half_open_calls=1, clock=clock
    )
    for outcome in (False, False, True):
        assert breaker.allow()
        breaker.record(outcome)
    assert breaker.state == CLOSED  # 1 failure in 3 calls: below the rate
    assert breaker.allow()
    breaker.record(True)  # 2 in 4: at the rate
    assert breaker.state == OPEN
    assert not breaker.allow()
    clock.now += 10
    assert breaker.state == HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record(False)
    assert breaker.state == CLOSED
    assert list(breaker.transitions) == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
