"""``engine.reload()`` with a corrupt, missing or changing model file.

The old model keeps serving and diagnostics say why (``last_reload_error``); a repaired
file is picked up by the next reload; calls running during a reload are never lost nor
sent to the formula. ``test_reload_and_self_test.py`` covers the file watch and models
of other features.
"""

from __future__ import annotations

import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from fault_kit import (
    FEATURES,
    SHIPPED_MODEL,
    assert_rows_served,
    calling_engine,
    calling_rows,
    formula,
    step_of,
)
from onnx_models import write_linear_model
from scorers import MeanScorer

from scoring_core import ScorerContext
from scoring_core.testing import engine_for, scorer_plugin

N = 48
X = calling_rows(N, seed=12)
MEANS = X.astype(np.float64).mean(axis=1)


def _deploy(source: Path, target: Path) -> None:
    """Replace ``target`` atomically, as a deployment would."""
    staged = target.with_suffix(".staged")
    shutil.copyfile(source, staged)
    os.replace(staged, target)


def _garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(1).bytes(4096))


def _half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_garbage, "not a valid ONNX model"),
        (_half, "not a valid ONNX model"),
        (Path.unlink, "model file not found"),
    ],
    ids=["garbage", "truncated", "deleted"],
)
def test_reload_with_a_broken_model_on_disk_keeps_the_old_model_serving(
    tmp_path: Path, damage: object, reason: str
) -> None:
    model = Path(shutil.copy(SHIPPED_MODEL, tmp_path / "model.onnx"))
    with calling_engine(model) as engine:
        before = engine.score_batch(X)
        single_before = engine.score(X[0])
        damage(model)  # type: ignore[operator]
        outcome = engine.reload()
        after = engine.score_batch(X)
        single_after = engine.score(X[0])
        neural = step_of(engine, "neural")

    # what the caller sees: the same scores, from the same step, with no fallback
    assert outcome["formula"] == "reloaded"
    assert outcome["neural"].startswith("kept old: ")
    assert reason in outcome["neural"]
    assert str(model) in outcome["neural"]
    assert (single_after.scorer, single_after.score) == ("neural", single_before.score)
    assert single_after.fallbacks == ()

    # what diagnostics say
    assert neural["status"] == "ready"
    assert neural["reason"] is None
    assert reason in neural["last_reload_error"]
    assert neural["rows_failed"] == {}
    assert neural["rows_served"] == 2 * N + 2

    # no row lost, none served by the wrong step
    assert_rows_served(after, N, ["neural"] * N, before.scores, atol=0)


def test_a_repaired_model_is_picked_up_by_the_next_reload(tmp_path: Path) -> None:
    model = write_linear_model(tmp_path / "model.onnx", 39, feature_names=FEATURES)
    fixed = write_linear_model(tmp_path / "fixed.onnx", 39, feature_names=FEATURES, bias=0.125)
    with calling_engine(model) as engine:
        _garbage(model)
        failed = engine.reload("neural")
        broken_error = step_of(engine, "neural")["last_reload_error"]
        _deploy(fixed, model)
        repaired = engine.reload("neural")
        batch = engine.score_batch(X)
        neural = step_of(engine, "neural")
    assert failed["neural"].startswith("kept old: ")
    assert "not a valid ONNX model" in broken_error
    assert repaired == {"neural": "reloaded"}
    assert "last_reload_error" not in neural
    assert neural["status"] == "ready"
    assert_rows_served(batch, N, ["neural"] * N, MEANS + 0.125, atol=1e-6)


def test_a_step_unavailable_at_start_stays_unavailable_until_its_model_is_fixed(
    tmp_path: Path,
) -> None:
    model = tmp_path / "model.onnx"
    _garbage(model)
    with calling_engine(model) as engine:
        still_broken = engine.reload()
        fallback_batch = engine.score_batch(X)
        broken = step_of(engine, "neural")
        write_linear_model(tmp_path / "good.onnx", 39, feature_names=FEATURES)
        _deploy(tmp_path / "good.onnx", model)
        fixed = engine.reload()
        batch = engine.score_batch(X)
        neural = step_of(engine, "neural")
    assert still_broken["neural"].startswith("unavailable: ")
    assert "not a valid ONNX model" in still_broken["neural"]
    assert broken["status"] == "unavailable"
    assert "not a valid ONNX model" in broken["reason"]
    assert_rows_served(fallback_batch, N, ["formula"] * N, formula(X))
    assert fallback_batch.fallback_counts() == {"neural": {"unavailable": N}}
    assert fixed == {"neural": "reloaded", "formula": "reloaded"}
    assert neural["status"] == "ready"
    assert neural["reason"] is None
    assert_rows_served(batch, N, ["neural"] * N, MEANS, atol=1e-6)


def _score_while(engine: object, stop: threading.Event) -> list[tuple[int, str, float]]:
    seen: list[tuple[int, str, float]] = []
    i = 0
    while not stop.is_set() or i < N:
        result = engine.score(X[i % N])  # type: ignore[attr-defined]
        seen.append((i % N, result.scorer, result.score))
        i += 1
    return seen


def test_calls_running_during_reloads_of_a_good_model_all_stay_on_the_model(
    tmp_path: Path,
) -> None:
    model = write_linear_model(tmp_path / "model.onnx", 39, feature_names=FEATURES)
    old = write_linear_model(tmp_path / "old.onnx", 39, feature_names=FEATURES)
    new = write_linear_model(tmp_path / "new.onnx", 39, feature_names=FEATURES, bias=0.125)
    stop = threading.Event()
    with calling_engine(model) as engine, ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(_score_while, engine, stop) for _ in range(8)]
        outcomes = []
        for round_ in range(16):
            _deploy(new if round_ % 2 == 0 else old, model)
            outcomes.append(engine.reload("neural"))
        stop.set()
        seen = [entry for future in futures for entry in future.result()]
        neural = step_of(engine, "neural")
    assert outcomes == [{"neural": "reloaded"}] * 16
    assert {scorer for _, scorer, _ in seen} == {"neural"}
    for row, _, score in seen:
        assert score == pytest.approx(MEANS[row], abs=1e-6) or score == pytest.approx(
            MEANS[row] + 0.125, abs=1e-6
        )
    assert neural["rows_failed"] == {}


def test_calls_running_during_a_failed_reload_keep_the_old_scores(tmp_path: Path) -> None:
    model = write_linear_model(tmp_path / "model.onnx", 39, feature_names=FEATURES)
    stop = threading.Event()
    with calling_engine(model) as engine, ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(_score_while, engine, stop) for _ in range(8)]
        _garbage(model)
        outcomes = [engine.reload() for _ in range(20)]
        stop.set()
        seen = [entry for future in futures for entry in future.result()]
        neural = step_of(engine, "neural")
    assert all(o["neural"].startswith("kept old: ") for o in outcomes)
    assert {scorer for _, scorer, _ in seen} == {"neural"}
    rows = np.array([row for row, _, _ in seen])
    np.testing.assert_allclose([score for _, _, score in seen], MEANS[rows], atol=1e-6)
    assert neural["rows_failed"] == {}
    assert neural["rows_served"] == len(seen)
    assert "not a valid ONNX model" in neural["last_reload_error"]


class Gated:
    """The first instance holds its first call until ``proceed`` is set; later ones answer."""

    instances: ClassVar[list[Gated]] = []
    in_flight = threading.Event()
    proceed = threading.Event()

    def __init__(self, ctx: ScorerContext) -> None:
        self.closed_while_running = False
        self.running = 0
        self.closes = 0
        self.first = not Gated.instances
        Gated.instances.append(self)

    def score(self, X: np.ndarray) -> np.ndarray:
        if not self.first:
            return np.full(X.shape[0], 0.75)
        self.running += 1
        try:
            Gated.in_flight.set()
            Gated.proceed.wait(5)
            if self.closes:
                raise RuntimeError("closed while a call was still running on it")
            return np.full(X.shape[0], 0.25)
        finally:
            self.running -= 1

    def close(self) -> None:
        self.closes += 1


def test_a_call_running_during_a_reload_finishes_on_the_scorer_it_started_with() -> None:
    Gated.instances.clear()
    Gated.in_flight.clear()
    Gated.proceed.clear()
    plugin = scorer_plugin("mean", MeanScorer, gated=Gated)
    chain = [{"name": "model", "scorer": "gated"}, {"name": "formula", "scorer": "mean"}]
    row = X[0, :5]
    with engine_for(chain, plugins=[plugin], output_range=[0, 1]) as engine:
        with ThreadPoolExecutor(max_workers=2) as pool:
            running = pool.submit(engine.score, row)
            assert Gated.in_flight.wait(5)
            reloading = pool.submit(engine.reload, "model")
            threading.Event().wait(0.1)  # the reload swaps while the call is running
            Gated.proceed.set()
            result = running.result(timeout=5)
            outcome = reloading.result(timeout=5)
        after = engine.score(row)
        model = step_of(engine, "model")
    old, new = Gated.instances
    assert outcome == {"model": "reloaded"}
    assert (result.scorer, result.score, result.fallbacks) == ("model", 0.25, ())
    assert (after.scorer, after.score) == ("model", 0.75)
    assert old.closes == 1  # closed once, after its call had finished
    assert new.closes == 1  # by the engine's close
    assert model["rows_failed"] == {}
