"""A broken model file: the engine starts, says why, and every row goes to the formula.

Each fault is put on disk for the real ``onnx`` scorer on the 39 calling-score features,
with the real ``rules`` formula of ``scoring.yaml`` as the next step.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

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
from onnx_models import write_linear_model, write_nan_above_model

from scoring_core import Engine

N = 64


def _check_everything_falls_back(engine: Engine, reason_parts: tuple[str, ...]) -> None:
    """Caller, diagnostics and rows all say: the model step is unavailable, the formula serves."""
    X = calling_rows(N, seed=3)
    single = engine.score(X[0])
    batch = engine.score_batch(X)
    neural, formula_step = step_of(engine, "neural"), step_of(engine, "formula")

    # what the caller sees
    assert single.scorer == "formula"
    assert single.score == pytest.approx(formula(X[0])[0], abs=1e-6)
    (fallback,) = single.fallbacks
    assert fallback.step == "neural"
    assert fallback.kind == "unavailable"
    assert fallback.reason.startswith("unavailable: ")
    for part in reason_parts:
        assert part in fallback.reason
    assert batch.fallback_counts() == {"neural": {"unavailable": N}}
    assert set(batch.fallback_reasons()) == {f"neural: {fallback.reason}"}

    # what diagnostics say
    assert neural["status"] == "unavailable"
    assert fallback.reason == f"unavailable: {neural['reason']}"
    assert neural["calls"] == 0  # an unavailable step is never called
    assert neural["rows_failed"] == {"unavailable": N + 1}
    assert formula_step["status"] == "ready"
    assert formula_step["rows_served"] == N + 1
    assert engine.diagnostics()["engine"]["rows_scored"] == N + 1
    json.dumps(engine.diagnostics())

    # no row lost, none served by the wrong step
    assert_rows_served(batch, N, ["formula"] * N, formula(X))
    np.testing.assert_array_equal(batch.scores, engine.score_step("formula", X).scores)


def _truncate_to(fraction: float) -> Callable[[Path], None]:
    def fault(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: max(1, int(len(data) * fraction))])

    return fault


def _random_bytes(path: Path) -> None:
    size = path.stat().st_size
    path.write_bytes(np.random.default_rng(7).bytes(size))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _text(path: Path) -> None:
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _dangling_symlink(path: Path) -> None:
    path.unlink()
    os.symlink(path.parent / "gone.onnx", path)


BROKEN_FILES = {
    "truncated to 16 bytes": (_truncate_to(16 / SHIPPED_MODEL.stat().st_size), "not a valid ONNX"),
    "truncated to half": (_truncate_to(0.5), "not a valid ONNX model"),
    "truncated to 90%": (_truncate_to(0.9), "not a valid ONNX model"),
    "random bytes": (_random_bytes, "not a valid ONNX model"),
    "empty": (_empty, "is empty (0 bytes)"),
    "a git-lfs pointer": (_text, "not a valid ONNX model"),
    "a directory": (_directory, "is not a regular file"),
    "a dangling symlink": (_dangling_symlink, "model file not found"),
}


def test_missing_model_leaves_the_step_unavailable_and_the_formula_serves(tmp_path: Path) -> None:
    model = tmp_path / "calling_score_model.onnx"
    with calling_engine(model) as engine:
        _check_everything_falls_back(engine, ("model file not found", str(model)))


@pytest.mark.parametrize("fault", list(BROKEN_FILES))
def test_broken_model_file_leaves_the_step_unavailable_and_the_formula_serves(
    tmp_path: Path, fault: str
) -> None:
    model = Path(shutil.copy(SHIPPED_MODEL, tmp_path / "calling_score_model.onnx"))
    damage, reason = BROKEN_FILES[fault]
    damage(model)
    with calling_engine(model) as engine:
        _check_everything_falls_back(engine, (reason, str(model)))


def test_truncated_model_with_a_pinned_sha256_is_refused_before_parsing(tmp_path: Path) -> None:
    pinned = hashlib.sha256(SHIPPED_MODEL.read_bytes()).hexdigest()
    model = Path(shutil.copy(SHIPPED_MODEL, tmp_path / "calling_score_model.onnx"))
    _truncate_to(0.5)(model)
    actual = hashlib.sha256(model.read_bytes()).hexdigest()
    with calling_engine(model, neural={"options": {"model": str(model), "sha256": pinned}}) as e:
        _check_everything_falls_back(e, (f"has sha256 {actual}", f"pin sha256 {pinned}"))


def test_model_with_40_inputs_is_refused_naming_both_widths(tmp_path: Path) -> None:
    model = write_linear_model(tmp_path / "wide.onnx", 40, feature_names=[*FEATURES, "extra"])
    with calling_engine(model) as engine:
        _check_everything_falls_back(
            engine, ("the model takes 40 features, the engine has 39", "shape ['batch', 40]")
        )


def test_model_with_40_inputs_and_no_metadata_is_refused_by_shape(tmp_path: Path) -> None:
    model = write_linear_model(tmp_path / "wide.onnx", 40)
    with calling_engine(model) as engine:
        _check_everything_falls_back(engine, ("takes 40 features, the engine has 39",))


def test_model_trained_on_another_feature_order_is_refused_naming_the_position(
    tmp_path: Path,
) -> None:
    swapped = list(FEATURES)
    swapped[12], swapped[0] = swapped[0], swapped[12]  # user and spot exploration swapped
    model = write_linear_model(tmp_path / "swapped.onnx", 39, feature_names=swapped)
    with calling_engine(model) as engine:
        _check_everything_falls_back(
            engine,
            (
                "trained on other features: at position 0",
                repr(FEATURES[12]),
                f"where the engine has {FEATURES[0]!r}",
            ),
        )


def test_model_naming_one_feature_fewer_is_refused_even_with_the_right_width(
    tmp_path: Path,
) -> None:
    model = write_linear_model(tmp_path / "short.onnx", 39, feature_names=list(FEATURES[:-1]))
    with calling_engine(model) as engine:
        _check_everything_falls_back(engine, ("lists 38 feature names", repr(FEATURES[-1])))


def test_nan_rows_fall_back_alone_and_the_other_rows_stay_on_the_model(tmp_path: Path) -> None:
    model = write_nan_above_model(tmp_path / "nan.onnx", 39, threshold=0.9, feature_names=FEATURES)
    X = calling_rows(N, seed=5)
    X[::4, 0] = 0.95  # the model answers NaN for exactly these rows
    X[1::4, 0] = 0.9  # not above the threshold: still a number
    nan_rows = X[:, 0] > 0.9
    with calling_engine(model) as engine:
        batch = engine.score_batch(X)
        nan_single = engine.score(X[0])
        good_single = engine.score(X[1])
        neural, formula_step = step_of(engine, "neural"), step_of(engine, "formula")
    k = int(nan_rows.sum())
    assert k == N // 4

    # what the caller sees
    assert nan_single.scorer == "formula"
    assert nan_single.score == pytest.approx(formula(X[0])[0], abs=1e-6)
    assert [(f.step, f.kind) for f in nan_single.fallbacks] == [("neural", "non_finite")]
    assert nan_single.fallbacks[0].reason.startswith("returned a non-finite score")
    assert good_single.scorer == "neural"
    assert good_single.fallbacks == ()
    assert batch.fallback_counts() == {"neural": {"non_finite": k}}
    reasons = batch.fallback_reasons()
    assert all(
        reasons[i].startswith("neural: returned a non-finite score")
        for i in np.flatnonzero(nan_rows)
    )
    assert {reasons[i] for i in np.flatnonzero(~nan_rows)} == {""}

    # what diagnostics say
    assert neural["status"] == "ready"
    assert neural["calls"] == 3
    assert neural["rows_in"] == N + 2
    assert neural["rows_served"] == N - k + 1
    assert neural["rows_failed"] == {"non_finite": k + 1}
    assert formula_step["calls"] == 2
    assert formula_step["rows_in"] == k + 1  # only the failed rows reached the formula
    assert formula_step["rows_served"] == k + 1

    # no row lost, none served by the wrong step
    expected_scorers = np.where(nan_rows, "formula", "neural")
    expected = np.where(nan_rows, formula(X), X.astype(np.float64).mean(axis=1))
    assert_rows_served(batch, N, expected_scorers, expected)


def test_model_scores_outside_the_output_range_fall_back_per_row(tmp_path: Path) -> None:
    weights = np.zeros(39, dtype=np.float32)
    weights[24] = 2.0  # y = 2 * location_proximity: above 1 when it is above 0.5
    model = write_linear_model(
        tmp_path / "double.onnx", 39, feature_names=FEATURES, weights=weights
    )
    X = calling_rows(N, seed=6)
    X[:, 24] = np.linspace(0.0, 1.0, N, dtype=np.float32)
    high = X[:, 24] * np.float32(2.0) > 1.0
    with calling_engine(model) as engine:
        batch = engine.score_batch(X)
        single = engine.score(X[-1])
        neural = step_of(engine, "neural")
    k = int(high.sum())
    assert single.scorer == "formula"
    assert single.fallbacks[0].kind == "out_of_range"
    assert single.fallbacks[0].reason == "returned 2, outside output_range [0, 1]"
    assert batch.fallback_counts() == {"neural": {"out_of_range": k}}
    assert neural["rows_failed"] == {"out_of_range": k + 1}
    assert neural["rows_served"] == N - k
    expected = np.where(high, formula(X), 2.0 * X[:, 24].astype(np.float64))
    assert_rows_served(batch, N, np.where(high, "formula", "neural"), expected)


def test_shipped_model_serves_every_row_itself_as_the_control(tmp_path: Path) -> None:
    model = Path(shutil.copy(SHIPPED_MODEL, tmp_path / "calling_score_model.onnx"))
    X = calling_rows(N, seed=8)
    with calling_engine(model) as engine:
        batch = engine.score_batch(X)
        alone = engine.score_step("neural", X)
        neural = step_of(engine, "neural")
    assert neural["status"] == "ready"
    assert neural["details"]["feature_names_checked"] is True
    assert neural["rows_failed"] == {}
    assert not alone.failed.any()
    assert_rows_served(batch, N, ["neural"] * N, alone.scores, atol=0)
