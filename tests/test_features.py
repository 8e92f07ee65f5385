"""Input: every bad row is an InputError naming the feature and the row; no backend sees it."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scorers import MeanScorer, built

from scoring_core import InputError
from scoring_core.testing import engine_for, scorer_plugin

PLUGIN = scorer_plugin("mean", MeanScorer)
CHAIN = [{"name": "m", "scorer": "mean"}]
NAMES = ["a", "b", "c"]


def engine(features: list[dict[str, object]] | None = None):  # type: ignore[no-untyped-def]
    return engine_for(CHAIN, plugins=[PLUGIN], features=features or NAMES)


def test_mapping_sequence_and_array_give_the_same_score() -> None:
    with engine() as e:
        by_name = e.score({"c": 0.3, "a": 0.1, "b": 0.2})
        by_position = e.score([0.1, 0.2, 0.3])
        by_array = e.score(np.array([0.1, 0.2, 0.3]))
        by_tuple = e.score((0.1, 0.2, 0.3))
    assert by_name.score == by_position.score == by_array.score == by_tuple.score
    assert by_name.score == pytest.approx(0.2)


def score_or_message(call: Callable[[], float]) -> float | str:
    """The score ``call`` gives, or the message of the InputError it raises."""
    try:
        return call()
    except InputError as exc:
        return str(exc)


@pytest.mark.parametrize(
    "values",
    [
        [0, 1, 0.5],  # ints, as JSON gives 0 and 1
        [True, False, 0.5],
        [1 + 2**-25, 0.0, 0.5],  # rounds down to 1.0 as float32: inside
        [-0.0, 0.25, 1e-45],  # negative zero, the smallest float32
        [1 + 2**-22, 0.0, 0.5],  # above 1.0 as float32: outside
        [0.5, 3.5e38, 0.5],  # beyond float32
        [0.5, 10**400, 0.5],  # beyond any float
        [0.5, math.nan, 0.5],
    ],
)
def test_a_dict_row_is_checked_exactly_like_the_same_values_in_a_list(values: list[object]) -> None:
    # Plain dicts of plain numbers take a faster path; it must agree with the general one.
    with engine() as e:
        by_name = score_or_message(lambda: e.score(dict(zip(NAMES, values, strict=True))).score)
        by_position = score_or_message(lambda: e.score(values).score)
    assert by_name == by_position


@pytest.mark.parametrize(
    ("row", "feature", "message"),
    [
        ({"a": 0.1, "b": 0.2}, "c", "missing and has no default"),
        ({"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}, "d", "unknown feature 'd'"),
        ({"a": 0.1, "bb": 0.2, "c": 0.3}, "bb", "did you mean 'b'"),
        ({"a": 0.1, "b": math.nan, "c": 0.3}, "b", "NaN"),
        ({"a": 0.1, "b": math.inf, "c": 0.3}, "b", "infinite or too large"),
        ({"a": 0.1, "b": 1e39, "c": 0.3}, "b", "infinite or too large"),
        ({"a": 0.1, "b": [0.2], "c": 0.3}, "b", "not a number"),
        ({"a": 0.1, "b": 1.5, "c": 0.3}, "b", r"outside \[0.0, 1.0\]"),
        ({"a": 0.1, "b": -0.01, "c": 0.3}, "b", "outside"),
        ({"a": 0.1, "b": 1 + 2**-22, "c": 0.3}, "b", r"is 1\.0000002, outside"),  # not "is 1"
        ({"a": 0.1, "b": "0.2", "c": 0.3}, "b", "not a number"),
        ({"a": 0.1, "b": None, "c": 0.3}, "b", r"is None \(missing\) and has no default"),
        ([0.1, 0.2, "x"], "c", "not a number"),
    ],
)
def test_bad_row_names_the_feature_and_reaches_no_backend(
    row: object, feature: str, message: str
) -> None:
    with engine() as e:
        with pytest.raises(InputError, match=message) as info:
            e.score(row)
        assert built(e, "m").calls == 0
    assert info.value.feature == feature
    assert info.value.row == 0


@pytest.mark.parametrize("row", [[0.1, 0.2], [0.1, 0.2, 0.3, 0.4], np.zeros((1, 3)), "abc", 7])
def test_wrong_length_or_type_is_an_input_error(row: object) -> None:
    with engine() as e, pytest.raises(InputError, match="row 0"):
        e.score(row)


def test_default_fills_a_missing_feature_and_is_visible() -> None:
    features = [
        {"name": "a", "min": 0, "max": 1},
        {"name": "b", "min": 0, "max": 1, "default": 0.5},
    ]
    with engine(features) as e:
        result = e.score({"a": 0.1})
        complete = e.score({"a": 0.1, "b": 0.3})
        batch = e.score_batch([{"a": 0.1}, {"a": 0.2, "b": 0.2}])
    assert result.score == pytest.approx(0.3)
    assert result.defaults_used == ("b",)
    assert complete.defaults_used == ()
    assert batch.defaults_used == (("b",), ())


def test_clip_feature_is_clipped_instead_of_refused() -> None:
    features = [{"name": "a", "min": 0, "max": 1, "clip": True}, {"name": "b", "min": 0, "max": 1}]
    with engine(features) as e:
        assert e.score([1.8, 0.0]).score == pytest.approx(0.5)
        with pytest.raises(InputError, match="NaN"):
            e.score([math.nan, 0.0])  # clip never hides a missing value


def test_batch_error_names_the_row_and_scores_nothing() -> None:
    X = np.full((10, 3), 0.5, dtype=np.float32)
    X[6, 2] = 7.0
    X[8, 0] = np.nan
    with engine() as e:
        with pytest.raises(InputError) as info:
            e.score_batch(X)
        assert built(e, "m").calls == 0
    assert info.value.row == 6
    assert info.value.feature == "c"
    assert "1 more bad row(s): row(s) 8; nothing was scored" in str(info.value)
    assert "prepare_batch(rows).errors" in str(info.value)  # where to see every one


def test_prepare_batch_sorts_good_rows_from_bad_ones() -> None:
    rows = [
        {"a": 0.1, "b": 0.1, "c": 0.1},
        {"a": "x", "b": 0.1, "c": 0.1},
        {"a": 0.2, "b": 0.2, "c": 0.2},
        {"a": 0.2, "b": 0.2},
    ]
    with engine() as e:
        prepared = e.prepare_batch(rows)
        result = e.score_prepared(prepared)
    assert prepared.rows.tolist() == [0, 2]
    assert [(err.row, err.feature) for err in prepared.errors] == [(1, "a"), (3, "c")]
    np.testing.assert_allclose(result.scores, [0.1, 0.2], rtol=1e-6)


def test_dataframe_input_by_column_name_in_any_order() -> None:
    frame = pd.DataFrame({"c": [0.3, 0.6], "a": [0.1, 0.4], "b": [0.2, 0.5]})
    with engine() as e:
        batch = e.score_batch(frame)
    np.testing.assert_allclose(batch.scores, [0.2, 0.5], rtol=1e-6)


def test_dataframe_with_a_column_like_a_features_name_is_refused() -> None:
    frame = pd.DataFrame({"a": [0.1], "b": [0.2], "c": [0.3], "A": [7]})
    with engine() as e, pytest.raises(InputError, match=r"column 'A' is not a feature.*'a'"):
        e.score_batch(frame)


def test_dataframe_text_cell_names_its_row() -> None:
    frame = pd.DataFrame({"a": [0.1, 0.2], "b": [0.2, "oops"], "c": [0.3, 0.3]})
    with engine() as e, pytest.raises(InputError) as info:
        e.score_batch(frame)
    assert (info.value.row, info.value.feature) == (1, "b")


def test_integer_and_float64_arrays_are_accepted() -> None:
    with engine() as e:
        assert e.score(np.array([0, 1, 0])).score == pytest.approx(1 / 3)
        batch = e.score_batch(np.array([[0.0, 1.0, 0.5]], dtype=np.float64))
    assert batch.scores.tolist() == [pytest.approx(0.5)]


def test_wrong_batch_shape_is_refused() -> None:
    with engine() as e, pytest.raises(InputError, match=r"shape \(n, 3\)"):
        e.score_batch(np.zeros((4, 5)))


def test_ragged_sequence_batch_names_the_short_row() -> None:
    with engine() as e, pytest.raises(InputError) as info:
        e.score_batch([[0.1, 0.2, 0.3], [0.1, 0.2]])
    assert info.value.row == 1


def test_string_batch_is_refused() -> None:
    with engine() as e, pytest.raises(InputError, match="got str"):
        e.score_batch("0.1,0.2,0.3")


def test_feature_defaults_are_public() -> None:
    features = [{"name": "a", "min": 0, "max": 1}, {"name": "b", "default": 0.5}]
    with engine(features) as e:
        assert e.feature_defaults == {"b": 0.5}


@pytest.mark.parametrize(
    "values",
    [[0.5, -0.5, 9.0], [0.5, -1.5, 1.0], [math.nan, 0.0, 1.0], [0.0, math.inf, 1.0],
     [0.0, 0.0, 10.5], [-0.0, -1.0, 10.0], [1.0, 1.0, 0.0]],
)  # fmt: skip
def test_a_single_row_with_per_feature_ranges_is_checked_like_a_batch(values: list[float]) -> None:
    # Bounds that differ by feature take another single-row check than [0, max] ones.
    features = [
        {"name": "a", "min": 0, "max": 1},
        {"name": "b", "min": -1, "max": 1},
        {"name": "c", "min": 0, "max": 10},
    ]

    with engine_for(CHAIN, plugins=[PLUGIN], features=features, output_range=[-10, 10]) as e:
        single = score_or_message(lambda: e.score(np.array(values)).score)
        batch = score_or_message(lambda: float(e.score_batch(np.array([values])).scores[0]))
    assert single == batch


def test_a_batch_error_carries_its_reason_without_the_row_prefix() -> None:
    with engine() as e:
        prepared = e.prepare_batch([[0.1, 0.2, 0.3], [0.1, 2.0, 0.3]])
    (error,) = prepared.errors
    assert error.row == 1
    assert error.feature == "b"
    assert error.reason.startswith("feature 'b' is 2.0, outside")
    assert str(error) == f"row 1: {error.reason}"
