"""Hostile or absurd configuration: refused as a ConfigError, fast; never a crash or a hang.

The property tests of ``tests/test_properties.py`` throw random documents at the
loader; these are the cases worth keeping by name.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fault_kit import step_of
from scorers import MeanScorer

from scoring_core import ConfigError, Engine
from scoring_core.testing import feature_list, scorer_plugin


class Slow:
    def __init__(self, ctx: Any) -> None:
        pass

    def score(self, X: np.ndarray) -> np.ndarray:
        time.sleep(0.02)
        return np.full(X.shape[0], 0.375)


PLUGIN = scorer_plugin("mean", MeanScorer, slow=Slow)
CHAIN = [{"name": "model", "scorer": "slow"}, {"name": "formula", "scorer": "mean"}]


@pytest.mark.parametrize(
    "document",
    [[1, 2, 3], [["features", 1]], None, "features: []", 5],
    ids=["a list", "a list of pairs", "None", "text", "a number"],
)
def test_from_config_with_a_document_that_is_not_a_mapping_is_a_config_error(
    document: Any,
) -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        Engine.from_config(document)


@pytest.mark.parametrize(
    "text",
    ["[" * 2000 + "]" * 2000, "a: " + "{a: " * 1000 + "1" + "}" * 1000, "- " * 1000 + "1"],
    ids=["nested lists", "nested mappings", "nested block lists"],
)
def test_deeply_nested_yaml_is_a_config_error_not_a_crash(tmp_path: Path, text: str) -> None:
    path = tmp_path / "scoring.yaml"
    path.write_text(text)
    started = time.perf_counter()
    with pytest.raises(ConfigError):
        Engine.from_yaml(path)
    assert time.perf_counter() - started < 3.0


def test_a_feature_file_name_with_a_nul_byte_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "scoring.yaml"
    path.write_text('features: "features\\0.yaml"\nchain: [{name: m, scorer: mean}]\n')
    with pytest.raises(ConfigError, match="features"):
        Engine.from_yaml(path, plugins=[PLUGIN])


def test_a_feature_file_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "features.yaml"
    os.mkfifo(fifo)
    config = {"features": "features.yaml", "chain": CHAIN}
    outcome: dict[str, BaseException | None] = {}

    def build() -> None:
        try:
            Engine.from_config(config, base_dir=tmp_path, plugins=[PLUGIN]).close()
            outcome["error"] = None
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=build, daemon=True)
    thread.start()
    thread.join(2.0)
    blocked = thread.is_alive()
    if blocked:  # let the reader go: a writer that closes at once gives it end-of-file
        with open(fifo, "w"):
            pass
        thread.join(5.0)
    assert not blocked, "reading the feature file blocked on a FIFO (no writer)"
    assert isinstance(outcome["error"], ConfigError)


def test_an_enormous_timeout_ms_is_refused_or_never_fails_the_step() -> None:
    config = {"features": feature_list(5), "output_range": [0, 1]}
    chain = [dict(CHAIN[0], timeout_ms=1e300), CHAIN[1]]
    try:
        engine = Engine.from_config({**config, "chain": chain}, plugins=[PLUGIN])
    except ConfigError as exc:
        assert "timeout_ms" in str(exc)  # noqa: PT017 - refusing it is one good answer
        return
    with engine:  # accepting it is the other, if the step then serves
        results = [engine.score([0.5] * 5) for _ in range(3)]
        model = step_of(engine, "model")
    assert [(r.scorer, r.score, r.fallbacks) for r in results] == [("model", 0.375, ())] * 3
    assert model["rows_failed"] == {}


def test_an_enormous_watch_interval_is_refused_or_leaves_the_watcher_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crashed: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashed.append(args.exc_value))
    config = {
        "features": feature_list(5),
        "chain": [CHAIN[1]],
        "watch": {"interval_s": 1e300},
    }
    try:
        engine = Engine.from_config(config, plugins=[PLUGIN])
    except ConfigError as exc:
        assert "interval_s" in str(exc)  # noqa: PT017 - refusing it is one good answer
        return
    with engine:
        time.sleep(0.1)
        assert engine.score([0.5] * 5).scorer == "formula"
    assert crashed == []


BEYOND_FLOAT32 = {
    "a feature's max": {"features": [{"name": "a", "min": 0, "max": 1e39}]},
    "a feature's min": {"features": [{"name": "a", "min": -1e39, "max": 1}]},
    "a self_test row": {"self_test": {"rows": [[1e39]], "expected": [0.375]}},
}


@pytest.mark.parametrize("where", list(BEYOND_FLOAT32))
def test_a_number_beyond_float32_in_the_config_is_refused_or_used_without_overflow(
    where: str,
) -> None:
    """Rows are float32: a bound or golden row beyond its range must not overflow silently."""
    change = BEYOND_FLOAT32[where]
    step: dict[str, Any] = {"name": "model", "scorer": "slow"}
    if "self_test" in change:
        step["self_test"] = change["self_test"]
    config = {
        "features": change.get("features", [{"name": "a", "min": 0, "max": 1}]),
        "chain": [step, {"name": "formula", "scorer": "mean"}],
    }
    try:
        engine = Engine.from_config(config, plugins=[PLUGIN])  # no RuntimeWarning either
    except ConfigError:
        return  # refusing it is one good answer
    with engine:
        result = engine.score({"a": 0.5})
    assert result.scorer in ("model", "formula")
