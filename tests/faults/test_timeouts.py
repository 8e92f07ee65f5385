"""Timeouts and deadlines: an overrunning step is cancelled or abandoned; rows move on."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx_models import write_slow_model
from scorers import ConstantScorer

from scoring_core.testing import engine_for, scorer_plugin


class Sleeper:
    """Not cancellable: sleeps ``sleep_s`` seconds (option), then returns 0.9."""

    def __init__(self, ctx: Any) -> None:
        self.sleep_s = float(ctx.option("sleep_s", 0.0))
        self.late_results = 0

    def score(self, X: np.ndarray) -> np.ndarray:
        time.sleep(self.sleep_s)
        self.late_results += 1
        return np.full(X.shape[0], 0.9)


class CancellableWaiter:
    """Cancellable: waits on its token (a threading.Event) for up to 5 s."""

    def __init__(self, ctx: Any) -> None:
        self.tokens: list[threading.Event] = []

    def cancel_token(self) -> threading.Event:
        token = threading.Event()
        self.tokens.append(token)
        return token

    def cancel(self, token: threading.Event) -> None:
        token.set()

    def score(self, X: np.ndarray, token: threading.Event | None = None) -> np.ndarray:
        if token is not None and token.wait(5.0):
            raise RuntimeError("cancelled by the caller")
        return np.full(X.shape[0], 0.9)


PLUGIN = scorer_plugin("sleeper", Sleeper, waiter=CancellableWaiter, constant=ConstantScorer)


def test_a_cancellable_step_is_cancelled_and_the_row_falls_back() -> None:
    chain = [
        {"name": "model", "scorer": "waiter", "timeout_ms": 50},
        {"name": "formula", "scorer": "constant"},
    ]
    with engine_for(chain, plugins=[PLUGIN]) as engine:
        started = time.perf_counter()
        result = engine.score([0.5] * 5)
        took = time.perf_counter() - started
        steps = engine.diagnostics()["steps"]
    assert result.scorer == "formula"
    assert result.fallbacks[0].kind == "timeout"
    assert "timed out after 50 ms (cancelled)" in result.fallbacks[0].reason
    assert took < 1.0  # cancelled, not waited out (the scorer would wait 5 s)
    assert steps[0]["rows_failed"] == {"timeout": 1}
    assert steps[0]["cancellable"] is True


def test_a_fast_cancellable_call_is_not_cancelled() -> None:
    class Quick(CancellableWaiter):
        def score(self, X: np.ndarray, token: threading.Event | None = None) -> np.ndarray:
            return np.full(X.shape[0], 0.9)

    plugin = scorer_plugin("quick", Quick, constant=ConstantScorer)
    chain = [
        {"name": "model", "scorer": "quick", "timeout_ms": 200},
        {"name": "formula", "scorer": "constant"},
    ]
    with engine_for(chain, plugins=[plugin]) as engine:
        results = [engine.score([0.5] * 5) for _ in range(50)]
        time.sleep(0.3)  # let the watchdog pass every deadline
        results += [engine.score([0.5] * 5)]
    assert {r.scorer for r in results} == {"model"}


def test_a_non_cancellable_step_is_abandoned_and_its_late_result_dropped() -> None:
    chain = [
        {"name": "model", "scorer": "sleeper", "options": {"sleep_s": 0.5}, "timeout_ms": 50},
        {"name": "formula", "scorer": "constant"},
    ]
    with engine_for(chain, plugins=[PLUGIN]) as engine:
        started = time.perf_counter()
        result = engine.score([0.5] * 5)
        took = time.perf_counter() - started
        time.sleep(0.6)  # the abandoned call finishes in its worker...
        again = engine.score([0.5] * 5)  # ...and its late 0.9 never replaces an answer
    assert took < 0.4
    assert result.scorer == "formula"
    assert result.score == 0.25
    assert "abandoned" in result.fallbacks[0].reason
    assert again.scorer == "formula"


def test_a_batch_that_times_out_moves_every_row_to_the_next_step() -> None:
    chain = [
        {"name": "model", "scorer": "waiter", "timeout_ms": 30},
        {"name": "formula", "scorer": "constant"},
    ]
    with engine_for(chain, plugins=[PLUGIN]) as engine:
        batch = engine.score_batch(np.full((20, 5), 0.5, dtype=np.float32))
    assert set(batch.scorers) == {"formula"}
    assert batch.fallback_counts() == {"model": {"timeout": 20}}


def test_steps_without_timeout_never_use_a_thread() -> None:
    seen: list[str] = []

    class Recorder(Sleeper):
        def score(self, X: np.ndarray) -> np.ndarray:
            seen.append(threading.current_thread().name)
            return np.full(X.shape[0], 0.5)

    plugin = scorer_plugin("recorder", Recorder)
    with engine_for([{"name": "r", "scorer": "recorder"}], plugins=[plugin]) as engine:
        engine.score([0.5] * 5)
    assert seen == [threading.current_thread().name]


def test_chain_deadline_skips_steps_once_it_has_passed() -> None:
    chain = [
        {"name": "slow", "scorer": "sleeper", "options": {"sleep_s": 0.05}},
        {"name": "model", "scorer": "waiter"},
        {"name": "formula", "scorer": "constant"},
    ]
    config = {"deadline_ms": 20, "on_exhausted": {"score": 0.5}}
    with engine_for(chain, plugins=[PLUGIN], **config) as engine:
        result = engine.score([0.5] * 5)
    # the slow step has no timeout: it runs to the end (0.9 is served)...
    assert result.scorer == "slow"
    chain[0]["options"] = {"sleep_s": 0.0}
    chain[0]["scorer"] = "waiter"
    with engine_for(chain, plugins=[PLUGIN], **config) as engine:
        result = engine.score([0.5] * 5)
    # ...a cancellable step is cut at the deadline, the next is skipped, and the last
    # step (the final fallback) still runs
    assert [f.kind for f in result.fallbacks] == ["timeout", "deadline"]
    assert result.scorer == "formula"


def test_onnx_run_is_cancelled_through_run_options(tmp_path: Path) -> None:
    model = write_slow_model(tmp_path / "slow.onnx", 5)
    chain = [
        {"name": "neural", "scorer": "onnx", "timeout_ms": 50, "options": {"model": str(model)}},
        {"name": "formula", "scorer": "constant"},
    ]
    X = np.full((256, 5), 0.5, dtype=np.float32)
    with engine_for(chain, plugins=[PLUGIN]) as engine:
        started = time.perf_counter()
        batch = engine.score_batch(X)
        took = time.perf_counter() - started
    assert set(batch.scorers) == {"formula"}
    assert batch.fallback_counts() == {"neural": {"timeout": 256}}
    assert took < 0.5  # the uncancelled run takes well over half a second


@pytest.mark.parametrize("timeout_ms", [0, -5])
def test_timeout_must_be_positive(timeout_ms: int) -> None:
    from scoring_core import ConfigError

    with pytest.raises(ConfigError, match=r"chain\[0\].timeout_ms"):
        engine_for(
            [{"name": "m", "scorer": "constant", "timeout_ms": timeout_ms}], plugins=[PLUGIN]
        )
