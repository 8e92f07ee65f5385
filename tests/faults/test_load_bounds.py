"""Every load runs under a bound (issue 20, point 7).

A model whose embedded self-test never ends (or any load that hangs) used to hang
``scoring check``, ``reload()`` and then ``close()``, whatever ``timeout_ms`` said. Now the
onnx scorer's self-test stops at the step's ``timeout_ms`` (or its ``load_timeout_s``)
through ``RunOptions.terminate``, and the engine waits for any load at most the step's
``load_timeout_s``: past it the step is unavailable, saying why, and the load's thread is
abandoned.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import yaml
from fault_kit import FEATURES, calling_config, calling_engine, calling_rows, formula, step_of
from onnx_models import write_slow_self_test_model

from scoring_core import ConfigError, Engine, ScorerContext
from scoring_core.testing import engine_for, scorer_plugin

RELEASE = threading.Event()  # set at the end of each test: hung loads return then


@pytest.fixture(autouse=True)
def _release_hung_loads() -> Iterator[None]:
    RELEASE.clear()
    yield
    RELEASE.set()


@pytest.fixture(scope="module")
def endless_self_test(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ONNX model whose embedded self-test runs for about half a minute."""
    return write_slow_self_test_model(tmp_path_factory.mktemp("slow") / "model.onnx", FEATURES)


def _load_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("load-step-")]


def _wait_for_no_load_threads(limit_s: float) -> bool:
    ends = time.monotonic() + limit_s
    while time.monotonic() < ends:
        if not _load_threads():
            return True
        time.sleep(0.05)
    return False


def test_scoring_check_reports_a_self_test_that_never_ends_at_the_steps_timeout(
    endless_self_test: Path, tmp_path: Path
) -> None:
    config = tmp_path / "scoring.yaml"
    config.write_text(
        yaml.safe_dump(calling_config(endless_self_test, neural={"timeout_ms": 200})),
        encoding="utf-8",
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "scoring_core", "check", str(config)],
        env={**os.environ, "SCORING_LOAD_PLUGINS": "onnx,rules"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    took = time.monotonic() - started
    out = done.stdout + done.stderr
    assert took < 25, f"scoring check took {took:.1f} s"
    assert done.returncode == 1, out
    assert re.search(r"neural +unavailable", out), out
    assert "self-test (2000 golden rows) did not finish within 200 ms" in out
    assert "(the step's timeout_ms); onnxruntime was told to stop it" in out
    assert re.search(r"formula +ready", out), out


def test_a_load_past_load_timeout_s_leaves_the_step_unavailable_and_reload_and_close_return(
    endless_self_test: Path,
) -> None:
    started = time.monotonic()
    engine = calling_engine(endless_self_test, neural={"load_timeout_s": 1})
    built_in = time.monotonic() - started
    try:
        neural = step_of(engine, "neural")
        assert neural["status"] == "unavailable"
        assert "loading took longer than load_timeout_s (1 s)" in neural["reason"]
        assert "abandoned" in neural["reason"]
        assert neural["load_timeout_s"] == 1
        assert neural["abandoned_loads"] == 1
        X = calling_rows(5)
        batch = engine.score_batch(X)  # the fallback serves meanwhile
        assert list(batch.scorers) == ["formula"] * 5
        np.testing.assert_allclose(batch.scores, formula(X), atol=1e-6)

        started = time.monotonic()
        outcome = engine.reload()
        reload_took = time.monotonic() - started
        assert outcome["neural"].startswith("unavailable: loading took longer than load_timeout_s")
    finally:
        started = time.monotonic()
        engine.close()
        close_took = time.monotonic() - started
    assert built_in < 4
    assert reload_took < 4
    assert close_took < 1
    # onnxruntime is told to stop the self-test, so the abandoned threads end too
    assert _wait_for_no_load_threads(30), [t.name for t in _load_threads()]


class HangsAtLoad:
    """A scorer whose constructor blocks until the test ends (nothing can interrupt it)."""

    built: ClassVar[list[HangsAtLoad]] = []

    def __init__(self, ctx: ScorerContext) -> None:
        RELEASE.wait(60)
        self.closed = False
        HangsAtLoad.built.append(self)

    def score(self, X: np.ndarray) -> np.ndarray:
        return np.full(X.shape[0], 0.25)

    def close(self) -> None:
        self.closed = True


class Mean:
    def __init__(self, ctx: ScorerContext) -> None:
        pass

    def score(self, X: np.ndarray) -> np.ndarray:
        return X.mean(axis=1)


def test_a_scorer_that_hangs_while_loading_is_abandoned_and_closed_when_it_returns() -> None:
    HangsAtLoad.built.clear()
    plugin = scorer_plugin("hangs", HangsAtLoad, mean=Mean)
    chain: list[dict[str, Any]] = [
        {"name": "model", "scorer": "hangs", "load_timeout_s": 0.3},
        {"name": "formula", "scorer": "mean"},
    ]
    started = time.monotonic()
    engine = engine_for(chain, plugins=[plugin], output_range=[0, 1])
    built_in = time.monotonic() - started
    model = step_of(engine, "model")
    assert model["status"] == "unavailable"
    assert (
        "loading took longer than load_timeout_s (0.3 s), so it was abandoned" in (model["reason"])
    )
    assert engine.score(np.full(5, 0.5)).scorer == "formula"
    started = time.monotonic()
    assert engine.reload("model")["model"].startswith("unavailable: loading took longer")
    reload_took = time.monotonic() - started
    started = time.monotonic()
    engine.close()
    close_took = time.monotonic() - started
    assert built_in < 2
    assert reload_took < 2
    assert close_took < 1

    RELEASE.set()  # the two abandoned loads return now: their scorers are closed, not served
    assert _wait_for_no_load_threads(5)
    assert len(HangsAtLoad.built) == 2
    assert all(scorer.closed for scorer in HangsAtLoad.built)


def test_load_timeout_s_must_be_a_positive_number_of_seconds() -> None:
    config = calling_config("model.onnx", neural={"load_timeout_s": 0})
    with pytest.raises(ConfigError, match="load_timeout_s"):
        Engine.from_config(config)
