"""Lifecycle: close order, exactly once, errors raised together, hooks, require, reload."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scorers import CountingClose, FailsOnClose, MeanScorer, RefusesToLoad, built

import scoring_core
from scoring_core import ConfigError
from scoring_core.testing import engine_for, scorer_plugin


class LifecyclePlugin:
    def __init__(self) -> None:
        self.started: list[Any] = []
        self.closed: list[Any] = []

    @scoring_core.hookimpl
    def scoring_engine_started(self, engine: Any) -> None:
        self.started.append(engine)

    @scoring_core.hookimpl
    def scoring_engine_closed(self, engine: Any) -> None:
        self.closed.append(engine)


class FailingCleanup:
    @scoring_core.hookimpl
    def scoring_engine_closed(self, engine: Any) -> None:
        raise RuntimeError("cleanup failed")


def test_scorers_close_in_reverse_chain_order_exactly_once() -> None:
    CountingClose.log.clear()
    plugin = scorer_plugin("counting", CountingClose)
    chain = [{"name": n, "scorer": "counting"} for n in ("first", "second", "third")]
    engine = engine_for(chain, plugins=[plugin])
    engine.close()
    engine.close()
    assert CountingClose.log == ["third", "second", "first"]


def test_context_manager_closes_and_hooks_run_once() -> None:
    hooks = LifecyclePlugin()
    plugin = scorer_plugin("mean", MeanScorer)
    with engine_for([{"name": "m", "scorer": "mean"}], plugins=[plugin, hooks]) as engine:
        scorer = built(engine, "m")
        assert hooks.started == [engine]
        assert hooks.closed == []
    engine.close()
    assert hooks.closed == [engine]
    assert scorer.closed == 1


def test_one_failing_close_does_not_stop_the_others_and_errors_are_raised_together() -> None:
    FailsOnClose.closed_order.clear()
    hooks = LifecyclePlugin()
    plugin = scorer_plugin("fails", FailsOnClose)
    chain = [{"name": "a", "scorer": "fails"}, {"name": "b", "scorer": "fails"}]
    engine = engine_for(chain, plugins=[plugin, hooks, FailingCleanup()])
    with pytest.raises(ExceptionGroup) as info:
        engine.close()
    assert FailsOnClose.closed_order == ["b", "a"]
    assert hooks.closed == [engine]  # the cleanup hook ran despite the failures
    messages = sorted(str(e) for e in info.value.exceptions)
    assert messages == ["cannot release a", "cannot release b", "cleanup failed"]
    engine.close()  # idempotent, does not raise again


def test_required_step_that_cannot_load_stops_the_engine() -> None:
    plugin = scorer_plugin("broken", RefusesToLoad, mean=MeanScorer)
    chain = [{"name": "model", "scorer": "broken"}, {"name": "formula", "scorer": "mean"}]
    with pytest.raises(ConfigError) as info:
        engine_for(chain, plugins=[plugin], require=["model"])
    assert "required step" in str(info.value)
    assert "model.onnx not found" in str(info.value)
    assert info.value.key_path == "require[0]"


def test_unrequired_step_that_cannot_load_leaves_the_engine_up() -> None:
    plugin = scorer_plugin("broken", RefusesToLoad, mean=MeanScorer)
    chain = [{"name": "model", "scorer": "broken"}, {"name": "formula", "scorer": "mean"}]
    with engine_for(chain, plugins=[plugin]) as engine:
        steps = engine.diagnostics()["steps"]
        assert engine.score([0.5] * 5).scorer == "formula"
    assert steps[0]["status"] == "unavailable"
    assert "model.onnx not found" in steps[0]["reason"]
    assert steps[1]["status"] == "ready"
    assert steps[1]["reason"] is None


def test_unavailable_step_logs_a_warning_at_load(caplog: pytest.LogCaptureFixture) -> None:
    plugin = scorer_plugin("broken", RefusesToLoad, mean=MeanScorer)
    chain = [{"name": "model", "scorer": "broken"}, {"name": "formula", "scorer": "mean"}]
    with engine_for(chain, plugins=[plugin]):
        pass
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert any("'model'" in r.getMessage() and "unavailable" in r.getMessage() for r in warnings)


class Switchable:
    """Loads or fails depending on a class flag, so a test can break a reload."""

    fail = False
    version = 0

    def __init__(self, ctx: Any) -> None:
        if Switchable.fail:
            raise ValueError("new model is corrupt")
        Switchable.version += 1
        self.version = Switchable.version
        self.closed = False

    def score(self, X: np.ndarray) -> np.ndarray:
        return np.full(X.shape[0], self.version / 10)

    def close(self) -> None:
        self.closed = True


def test_reload_swaps_in_a_new_scorer_and_closes_the_old_one() -> None:
    Switchable.fail, Switchable.version = False, 0
    plugin = scorer_plugin("switch", Switchable)
    with engine_for([{"name": "s", "scorer": "switch"}], plugins=[plugin]) as engine:
        old = built(engine, "s")
        assert engine.score([0.5] * 5).score == pytest.approx(0.1)
        assert engine.reload() == {"s": "reloaded"}
        assert old.closed
        assert engine.score([0.5] * 5).score == pytest.approx(0.2)


def test_failed_reload_keeps_the_old_scorer_serving() -> None:
    Switchable.fail, Switchable.version = False, 0
    plugin = scorer_plugin("switch", Switchable)
    with engine_for([{"name": "s", "scorer": "switch"}], plugins=[plugin]) as engine:
        Switchable.fail = True
        outcome = engine.reload()
        assert outcome["s"].startswith("kept old: ValueError: new model is corrupt")
        assert engine.score([0.5] * 5).score == pytest.approx(0.1)
        step = engine.diagnostics()["steps"][0]
    assert step["status"] == "ready"
    assert "corrupt" in step["last_reload_error"]
    Switchable.fail = False
