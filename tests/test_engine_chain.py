"""The chain: steps tried in YAML order, per-row fallback, provenance, on_exhausted."""

from __future__ import annotations

import numpy as np
import pytest
from scorers import (
    ConstantScorer,
    MeanScorer,
    NaNForHighFirstFeature,
    OutOfRangeScorer,
    RaisingScorer,
    RefusesToLoad,
    WrongShapeScorer,
    built,
)

from scoring_core import ChainExhaustedError, ConfigError, EngineClosedError, InputError
from scoring_core.testing import engine_for, scorer_plugin

PLUGIN = scorer_plugin(
    "mean",
    MeanScorer,
    constant=ConstantScorer,
    nan_high=NaNForHighFirstFeature,
    raising=RaisingScorer,
    broken=RefusesToLoad,
    wrong_shape=WrongShapeScorer,
    out_of_range=OutOfRangeScorer,
)


def chain(*scorers: str) -> list[dict[str, str]]:
    return [{"name": f"{s}_step", "scorer": s} for s in scorers]


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 5)).astype(np.float32)


def test_first_step_serves_when_it_works() -> None:
    with engine_for(chain("mean", "constant"), plugins=[PLUGIN], output_range=[0, 1]) as engine:
        result = engine.score([0.1, 0.2, 0.3, 0.4, 0.5])
    assert result.score == pytest.approx(0.3)
    assert result.scorer == "mean_step"
    assert result.fallbacks == ()


def test_order_comes_from_the_config_not_from_plugin_registration() -> None:
    with engine_for(chain("constant", "mean"), plugins=[PLUGIN]) as engine:
        assert engine.score([0.1] * 5).scorer == "constant_step"
    with engine_for(chain("mean", "constant"), plugins=[PLUGIN]) as engine:
        assert engine.score([0.1] * 5).scorer == "mean_step"


@pytest.mark.parametrize(
    ("first", "kind", "reason_part"),
    [
        ("raising", "error", "RuntimeError: backend exploded"),
        ("broken", "unavailable", "model.onnx not found"),
        ("wrong_shape", "bad_shape", "shape (1, 2)"),
    ],
)
def test_a_failing_step_falls_back_and_says_why(first: str, kind: str, reason_part: str) -> None:
    with engine_for(chain(first, "constant"), plugins=[PLUGIN], output_range=[0, 1]) as engine:
        result = engine.score([0.5] * 5)
    assert result.scorer == "constant_step"
    assert result.score == 0.25
    (fallback,) = result.fallbacks
    assert fallback.step == f"{first}_step"
    assert fallback.kind == kind
    assert reason_part in fallback.reason


def test_non_finite_output_falls_back_only_for_those_rows() -> None:
    X = rows(200)
    with engine_for(chain("nan_high", "constant"), plugins=[PLUGIN]) as engine:
        batch = engine.score_batch(X)
        fallback_scorer = built(engine, "constant_step")
    high = X[:, 0] > 0.5
    assert list(batch.scorers[high]) == ["constant_step"] * int(high.sum())
    assert list(batch.scorers[~high]) == ["nan_high_step"] * int((~high).sum())
    np.testing.assert_allclose(batch.scores[~high], X[~high].mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(batch.scores[high], 0.25)
    # only the failed rows reached the next step
    assert fallback_scorer.rows_seen == int(high.sum())
    reasons = batch.fallback_reasons()
    assert all("non-finite" in reasons[i] for i in np.flatnonzero(high))
    assert all(reasons[i] == "" for i in np.flatnonzero(~high))


def test_out_of_range_output_falls_back_per_row() -> None:
    X = rows(100, seed=1)
    with engine_for(chain("out_of_range", "mean"), plugins=[PLUGIN], output_range=[0, 1]) as e:
        batch = e.score_batch(X)
        single = e.score(X[np.argmax(X[:, 1])])
    bad = X[:, 1] > 0.5
    assert set(batch.scorers[bad]) == {"mean_step"}
    assert set(batch.scorers[~bad]) == {"out_of_range_step"}
    assert single.scorer == "mean_step"
    assert single.fallbacks[0].kind == "out_of_range"
    assert "outside output_range" in single.fallbacks[0].reason


def test_without_output_range_any_finite_value_is_accepted() -> None:
    with engine_for(chain("out_of_range", "mean"), plugins=[PLUGIN]) as engine:
        assert engine.score([0.0, 0.9, 0.0, 0.0, 0.0]).score == 1.5


def test_exhausted_chain_raises_with_every_step_reason() -> None:
    with (
        engine_for(chain("broken", "raising"), plugins=[PLUGIN]) as engine,
        pytest.raises(ChainExhaustedError) as info,
    ):
        engine.score([0.5] * 5)
    steps = [f.step for f in info.value.fallbacks]
    assert steps == ["broken_step", "raising_step"]
    assert "model.onnx not found" in str(info.value)
    assert "backend exploded" in str(info.value)


def test_exhausted_batch_raises_naming_the_first_unscored_row() -> None:
    X = rows(50)
    X[:, 0] = 0.1
    X[7, 0] = 0.9  # only this row is NaN for nan_high, and there is no next step
    with (
        engine_for(chain("nan_high"), plugins=[PLUGIN]) as engine,
        pytest.raises(ChainExhaustedError) as info,
    ):
        engine.score_batch(X)
    assert info.value.row == 7


def test_on_exhausted_default_is_served_and_marked() -> None:
    config = {"on_exhausted": {"score": 0.5}, "output_range": [0, 1]}
    with engine_for(chain("broken", "raising"), plugins=[PLUGIN], **config) as engine:
        result = engine.score([0.5] * 5)
        batch = engine.score_batch(rows(3))
    assert result.score == 0.5
    assert result.is_default
    assert result.scorer == "on_exhausted"
    assert len(result.fallbacks) == 2
    assert list(batch.scorers) == ["on_exhausted"] * 3
    np.testing.assert_array_equal(batch.scores, 0.5)


def test_on_exhausted_default_outside_output_range_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="outside output_range"):
        engine_for(chain("mean"), plugins=[PLUGIN], output_range=[0, 1], on_exhausted={"score": 2})


def test_batch_results_keep_input_order_and_length() -> None:
    X = rows(1000, seed=3)
    with engine_for(chain("nan_high", "mean"), plugins=[PLUGIN]) as engine:
        batch = engine.score_batch(X)
    assert len(batch) == 1000
    assert batch.scores.shape == (1000,)
    np.testing.assert_allclose(batch.scores, X.mean(axis=1), rtol=1e-6)


def test_empty_batch_calls_no_scorer() -> None:
    with engine_for(chain("mean"), plugins=[PLUGIN]) as engine:
        batch = engine.score_batch(np.empty((0, 5), dtype=np.float32))
        assert built(engine, "mean_step").calls == 0
    assert len(batch) == 0


def test_batch_and_single_scores_agree() -> None:
    X = rows(20, seed=4)
    with engine_for(chain("nan_high", "constant"), plugins=[PLUGIN]) as engine:
        batch = engine.score_batch(X)
        singles = [engine.score(row) for row in X]
    assert [r.scorer for r in singles] == list(batch.scorers)
    np.testing.assert_allclose([r.score for r in singles], batch.scores)


def test_unavailable_step_is_reported_on_every_fallback() -> None:
    with engine_for(chain("broken", "mean"), plugins=[PLUGIN]) as engine:
        batch = engine.score_batch(rows(4))
    for per_row in batch.fallbacks:
        assert [f.kind for f in per_row] == ["unavailable"]


def test_scoring_after_close_raises() -> None:
    engine = engine_for(chain("mean"), plugins=[PLUGIN])
    engine.close()
    with pytest.raises(EngineClosedError):
        engine.score([0.5] * 5)
    with pytest.raises(EngineClosedError):
        engine.score_batch(rows(2))


def test_score_step_scores_one_step_alone() -> None:
    X = rows(100, seed=5)
    with engine_for(chain("nan_high", "broken", "mean"), plugins=[PLUGIN]) as engine:
        run = engine.score_step("nan_high_step", X)
        unavailable = engine.score_step("broken_step", X)
    np.testing.assert_array_equal(run.failed, X[:, 0] > 0.5)
    assert np.isnan(run.scores[run.failed]).all()
    assert unavailable.failed.all()
    assert unavailable.reason is not None
    assert "model.onnx not found" in unavailable.reason


@pytest.mark.parametrize("first", ["mean", "raising", "broken", "wrong_shape", "out_of_range"])
def test_a_one_row_batch_agrees_with_the_same_row_in_a_bigger_batch(first: str) -> None:
    """score_batch walks a single row the one-row way (faster); what it answers is what the
    same row gets inside a larger batch: score, scorer, fallback steps and provenance."""
    X = rows(3)
    with engine_for(chain(first, "constant"), plugins=[PLUGIN], output_range=[0, 1]) as engine:
        big = engine.score_batch(X)
        for i in range(3):
            one = engine.score_batch(X[i : i + 1])
            assert one.scores.tolist() == [big.scores[i]]
            assert one.scorers.tolist() == [big.scorers[i]]
            assert one.provenance_of(0) == big.provenance_of(i)
            assert one.rows.tolist() == [0]
            steps = [r.split(":")[0] for r in one.fallback_reasons()[0].split("; ") if r]
            expected = [r.split(":")[0] for r in big.fallback_reasons()[i].split("; ") if r]
            assert steps == expected


def test_a_bad_single_row_in_score_batch_is_the_same_error_as_in_a_batch() -> None:
    with engine_for(chain("mean"), plugins=[PLUGIN]) as engine:
        bad = rows(2)
        bad[0, 3] = 7.0
        with pytest.raises(InputError) as alone:
            engine.score_batch(bad[:1])
        prepared = engine.prepare_batch(bad)
    assert str(alone.value) == str(prepared.errors[0])


def test_an_exhausted_single_row_names_the_callers_row_number() -> None:
    with engine_for(chain("raising"), plugins=[PLUGIN]) as engine:
        X = rows(3)
        X[0, 0] = 5.0  # row 0 is bad input, so the good rows are 1 and 2
        prepared = engine.prepare_batch(X[:2])
        with pytest.raises(ChainExhaustedError) as info:
            engine.score_prepared(prepared)
    assert prepared.rows.tolist() == [1]
    assert "row 1" in str(info.value)
