"""Python inputs as practitioners hold them: every kind gives the numpy array's scores.

pandas DataFrames of every numeric dtype (nullable ones too), polars DataFrames, pyarrow
Tables and RecordBatches, and a pandas Series as one row. Columns may come in any order;
a null takes the feature's default or makes its row an InputError naming the row and the
feature; a column of dates is refused, naming the column.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scorers import MeanScorer

from scoring_core import Engine, InputError
from scoring_core.config.schema import FeatureSpec
from scoring_core.features import FeatureSchema
from scoring_core.testing import engine_for, scorer_plugin

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = scorer_plugin("mean", MeanScorer)
CHAIN = [{"name": "m", "scorer": "mean"}]
NAMES = ["a", "b", "c"]
WITH_DEFAULT = [
    {"name": "a", "min": 0, "max": 1},
    {"name": "b", "min": 0, "max": 1, "default": 0.5},
    {"name": "c", "min": 0, "max": 1},
]


def mean_engine(features: list[Any] | None = None) -> Engine:
    return engine_for(CHAIN, plugins=[PLUGIN], features=features or NAMES)


@pytest.fixture(scope="module")
def shipped() -> Iterator[Engine]:
    """The shipped chain (the ONNX model, then the formula), built once for the module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCORING_LOAD_PLUGINS", "onnx,rules")
        engine = Engine.from_yaml(ROOT / "scoring.yaml")
    with engine:
        assert engine.diagnostics()["steps"][0]["status"] == "ready"
        yield engine


# -- every kind of frame, the same scores -------------------------------------------------


def _chunked(table: pa.Table) -> pa.Table:
    """The same table in chunks of at most two rows."""
    return pa.Table.from_batches(table.to_batches(max_chunksize=2), schema=table.schema)


FRAMES: dict[str, Callable[[np.ndarray, list[str]], Any]] = {
    "pandas": lambda X, names: pd.DataFrame(X, columns=names),
    "pandas, columns reversed": lambda X, names: pd.DataFrame(X, columns=names)[names[::-1]],
    "pandas Float64": lambda X, names: pd.DataFrame(X, columns=names).astype("Float64"),
    "pandas double[pyarrow]": lambda X, names: pd.DataFrame(X, columns=names).astype(
        "double[pyarrow]"
    ),
    "polars": lambda X, names: pl.from_numpy(X, schema=names),
    "polars, columns reversed": lambda X, names: pl.from_numpy(X, schema=names).select(names[::-1]),
    "pyarrow Table": lambda X, names: pa.table({n: X[:, j] for j, n in enumerate(names)}),
    "pyarrow Table in chunks": lambda X, names: _chunked(
        pa.table({n: X[:, j] for j, n in enumerate(names)})
    ),
    "pyarrow RecordBatch": lambda X, names: pa.RecordBatch.from_pydict(
        {n: X[:, j] for j, n in reversed(list(enumerate(names)))}
    ),
    "list of dicts": lambda X, names: [dict(zip(names, row, strict=True)) for row in X.tolist()],
}


@settings(max_examples=25)
@given(
    X=hnp.arrays(
        np.float64,
        st.tuples(st.integers(0, 12), st.just(39)),
        elements=st.floats(0, 1, width=32),
    )
)
def test_every_frame_kind_scores_like_the_numpy_array(shipped: Engine, X: np.ndarray) -> None:
    expected = shipped.score_batch(X)
    for kind, make in FRAMES.items():
        got = shipped.score_batch(make(X, list(shipped.feature_names)))
        np.testing.assert_array_equal(got.scores, expected.scores, err_msg=kind)
        assert list(got.scorers) == list(expected.scorers), kind


def test_a_pandas_series_is_one_row_read_by_its_index(shipped: Engine) -> None:
    rng = np.random.default_rng(7)
    X = rng.random((4, len(shipped.feature_names)))
    frame = pd.DataFrame(X, columns=list(shipped.feature_names))
    expected = shipped.score_batch(X).scores
    for i in range(len(X)):
        row = frame.iloc[i]
        assert shipped.score(row).score == expected[i]
        assert shipped.score(row[row.index[::-1]]).score == expected[i]  # any order
        assert shipped.score(row.astype("Float32")).score == shipped.score(X[i]).score


def test_a_one_row_frame_is_one_row_for_score(shipped: Engine) -> None:
    names = list(shipped.feature_names)
    X = np.random.default_rng(3).random((1, len(names)))
    expected = shipped.score(X[0]).score
    assert shipped.score(pl.from_numpy(X, schema=names)).score == expected
    assert shipped.score(pa.table({n: X[:, j] for j, n in enumerate(names)})).score == expected
    assert shipped.score(pd.DataFrame(X, columns=names)).score == expected
    with pytest.raises(InputError, match="score takes one row; got a polars DataFrame of 2"):
        shipped.score(pl.from_numpy(np.vstack([X, X]), schema=names))


# -- pandas dtypes --------------------------------------------------------------------------

COLUMN = np.array([0.0, 1.0, 0.25, 0.5])
DTYPES = {
    "float16": lambda v: pd.Series(v, dtype="float16"),
    "float32": lambda v: pd.Series(v, dtype="float32"),
    "Float64": lambda v: pd.Series(v, dtype="Float64"),
    "category of numbers": lambda v: pd.Series(v).astype("category"),
    "double[pyarrow]": lambda v: pd.Series(v, dtype="double[pyarrow]"),
    "object": lambda v: pd.Series(list(v), dtype=object),
}
INTEGER_DTYPES = ["int8", "uint8", "int64", "uint64", "Int64", "UInt16"]


@pytest.mark.parametrize("dtype", [*DTYPES, *INTEGER_DTYPES])
def test_every_numeric_pandas_dtype_scores_like_numpy(dtype: str) -> None:
    values = (COLUMN > 0.3).astype(int) if dtype in INTEGER_DTYPES else COLUMN
    make = DTYPES.get(dtype, lambda v: pd.Series(v).astype(dtype))
    frame = pd.DataFrame({"c": [0.1, 0.2, 0.3, 0.4], "a": make(values), "b": 0.75})
    X = np.column_stack([np.asarray(values, dtype=np.float64), np.full(4, 0.75), frame["c"]])
    with mean_engine() as e:
        np.testing.assert_array_equal(e.score_batch(frame).scores, e.score_batch(X).scores)


NULLABLE = {
    "pandas Int64": lambda: pd.DataFrame(
        {"a": pd.array([0, 1, None], dtype="Int64"), "b": [0.5, 0.5, 0.5], "c": [0.0] * 3}
    ),
    "pandas Float64": lambda: pd.DataFrame(
        {"a": pd.array([0.0, 1.0, None], dtype="Float64"), "b": [0.5] * 3, "c": [0.0] * 3}
    ),
    "pandas float64 NaN": lambda: pd.DataFrame(
        {"a": [0.0, 1.0, np.nan], "b": [0.5] * 3, "c": [0.0] * 3}
    ),
    "pandas object with None": lambda: pd.DataFrame(
        {"a": pd.Series([0.0, 1, None], dtype=object), "b": [0.5] * 3, "c": [0.0] * 3}
    ),
    "pandas category": lambda: pd.DataFrame(
        {"a": pd.Series([0.0, 1.0, None]).astype("category"), "b": [0.5] * 3, "c": [0.0] * 3}
    ),
    "polars": lambda: pl.DataFrame({"a": [0.0, 1.0, None], "b": [0.5] * 3, "c": [0.0] * 3}),
    "pyarrow": lambda: pa.table({"a": [0.0, 1.0, None], "b": [0.5] * 3, "c": [0.0] * 3}),
}


@pytest.mark.parametrize("kind", NULLABLE)
def test_a_null_without_a_default_makes_only_its_row_an_error(kind: str) -> None:
    with mean_engine() as e:
        prepared = e.prepare_batch(NULLABLE[kind]())
    assert prepared.rows.tolist() == [0, 1]
    assert [(err.row, err.feature) for err in prepared.errors] == [(2, "a")]
    assert "null" in str(prepared.errors[0])
    assert "no default" in str(prepared.errors[0])
    np.testing.assert_allclose(prepared.X, [[0, 0.5, 0], [1, 0.5, 0]])


@pytest.mark.parametrize("kind", NULLABLE)
def test_a_null_takes_the_default_and_says_so(kind: str) -> None:
    frame = NULLABLE[kind]()
    swap = {"a": "b", "b": "a"}  # the null now sits in feature b, which has a default
    if isinstance(frame, pd.DataFrame):
        frame = frame.rename(columns=swap)
    elif isinstance(frame, pl.DataFrame):
        frame = frame.rename(swap)
    else:
        frame = frame.rename_columns(["b", "a", "c"])
    with mean_engine(WITH_DEFAULT) as e:
        prepared = e.prepare_batch(frame)
        result = e.score_batch(frame)
    assert prepared.errors == ()
    np.testing.assert_allclose(prepared.X[:, 1], [0, 1, 0.5])
    assert prepared.defaults_used == ((), (), ("b",))
    assert result.defaults_used == ((), (), ("b",))


def test_a_pandas_nan_is_a_missing_value_but_an_arrow_or_array_nan_is_refused() -> None:
    # pandas' missing value in a float column is NaN; Arrow (and polars) have nulls, and
    # there NaN is a value, refused as it is in a numpy array.
    frame = pd.DataFrame({"a": [0.1, 0.2], "b": [0.2, np.nan], "c": [0.3, 0.3]})
    arrow = pa.table({k: v.to_numpy() for k, v in frame.items()})
    with mean_engine(WITH_DEFAULT) as e:
        result = e.score_batch(frame)
        arrow_errors = e.prepare_batch(arrow).errors
        array_errors = e.prepare_batch(frame.to_numpy()).errors
    assert result.defaults_used == ((), ("b",))
    assert result.scores[1] == pytest.approx((0.2 + 0.5 + 0.3) / 3)
    assert [(err.row, err.feature) for err in arrow_errors] == [(1, "b")]
    assert "is NaN" in str(arrow_errors[0])
    assert "pass None" in str(arrow_errors[0])
    assert [str(err) for err in array_errors] == [str(err) for err in arrow_errors]


def test_a_missing_column_takes_the_default_or_is_refused() -> None:
    kinds = (pl.DataFrame, pa.table, pd.DataFrame)
    with mean_engine(WITH_DEFAULT) as e:
        for make in kinds:
            result = e.score_batch(make({"c": [0.25], "a": [0.75]}))
            assert result.scores.tolist() == [pytest.approx(0.5)]
            assert result.defaults_used == (("b",),)
            with pytest.raises(InputError, match="'a' is missing and the feature has no default"):
                e.score_batch(make({"c": [0.25], "b": [0.75]}))


# -- bad cells and bad columns ----------------------------------------------------------------

BAD_TEXT = {
    "pandas": lambda: pd.DataFrame({"a": [0.1, "oops", 0.3, "no"], "b": [0.2] * 4, "c": 0.1}),
    "pandas str": lambda: pd.DataFrame(
        {"a": pd.Series(["0.1", "oops", "0.3", "no"], dtype="string"), "b": 0.2, "c": 0.1}
    ),
    "pandas category of text": lambda: pd.DataFrame(
        {"a": pd.Series(["x", "oops", "y", "no"]).astype("category"), "b": 0.2, "c": 0.1}
    ),
    "polars": lambda: pl.DataFrame(
        {"a": ["0.1", "oops", "0.3", "no"], "b": [0.2] * 4}
    ).with_columns(c=pl.lit(0.1)),
    "pyarrow": lambda: pa.table(
        {"a": ["0.1", "oops", "0.3", "no"], "b": [0.2] * 4, "c": [0.1] * 4}
    ),
}


@pytest.mark.parametrize("kind", BAD_TEXT)
def test_a_text_cell_is_an_error_for_its_row_naming_the_feature(kind: str) -> None:
    with mean_engine() as e:
        prepared = e.prepare_batch(BAD_TEXT[kind]())
        with pytest.raises(InputError, match=r"^row \d: feature 'a' is .*not a number"):
            e.score_batch(BAD_TEXT[kind]())
    assert [(err.row, err.feature) for err in prepared.errors if err.row in (1, 3)] == [
        (1, "a"),
        (3, "a"),
    ]
    assert all(str(err).startswith(f"row {err.row}: feature 'a'") for err in prepared.errors)


def test_numeric_text_in_arrow_columns_is_read_as_scoring_score_reads_it() -> None:
    # pandas text stays refused, as a mapping's text is; Arrow text columns are what a
    # CSV or Parquet file gives, and the Python API reads them like `scoring score`.
    with mean_engine() as e:
        prepared = e.prepare_batch(BAD_TEXT["pyarrow"]())
    assert prepared.rows.tolist() == [0, 2]


DATES = {
    "pandas datetime64": lambda: pd.Series(pd.to_datetime(["2024-01-01"] * 2)),
    "pandas datetime with a time zone": lambda: pd.Series(
        pd.to_datetime(["2024-01-01"] * 2).tz_localize("UTC")
    ),
    "pandas timedelta": lambda: pd.Series(pd.to_timedelta([1, 2], unit="s")),
    "pandas period": lambda: pd.Series(pd.period_range("2024-01", periods=2, freq="M")),
    "polars Datetime": lambda: pl.Series([datetime.datetime(2024, 1, 1)] * 2),
    "polars Date": lambda: pl.Series([datetime.date(2024, 1, 1)] * 2),
    "polars Duration": lambda: pl.Series([datetime.timedelta(seconds=1)] * 2),
    "pyarrow timestamp": lambda: pa.array([datetime.datetime(2024, 1, 1)] * 2),
}


@pytest.mark.parametrize("kind", DATES)
def test_a_date_column_is_refused_naming_the_column(kind: str) -> None:
    dates = DATES[kind]()
    columns = {"a": [0.1, 0.2], "b": [0.2, 0.2], "c": dates}
    frame = (
        pl.DataFrame(columns)
        if isinstance(dates, pl.Series)
        else pa.table(columns)
        if isinstance(dates, pa.Array)
        else pd.DataFrame(columns)
    )
    with (
        mean_engine() as e,
        pytest.raises(InputError, match=r"column 'c' holds .* not numbers") as info,
    ):
        e.score_batch(frame)
    assert info.value.feature == "c"


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"a": [0.1], "b": [0.2], "C": [0.3]}),
        pl.DataFrame({"a": [0.1], "b": [0.2], "C": [0.3]}),
        pa.table({"a": [0.1], "b": [0.2], "C": [0.3]}),
        pa.RecordBatch.from_pydict({"a": [0.1], "b": [0.2], "C": [0.3]}),
    ],
    ids=["pandas", "polars", "pyarrow Table", "pyarrow RecordBatch"],
)
def test_a_column_that_looks_like_a_feature_is_refused_with_did_you_mean(frame: Any) -> None:
    with (
        mean_engine(WITH_DEFAULT) as e,
        pytest.raises(
            InputError, match=r"column 'C' is not a feature but looks like one; did you mean 'c'"
        ) as info,
    ):
        e.score_batch(frame)
    assert info.value.feature == "C"


def test_a_repeated_arrow_column_is_refused() -> None:
    table = pa.Table.from_arrays(
        [pa.array([0.1]), pa.array([0.2]), pa.array([0.3])] * 2, list("abcabc")
    )
    with mean_engine() as e, pytest.raises(InputError, match="'a' appears more than once"):
        e.score_batch(table)


def test_a_series_given_to_score_batch_says_to_use_score() -> None:
    with mean_engine() as e, pytest.raises(InputError, match=r"use engine.score\(series\)"):
        e.score_batch(pd.Series({"a": 0.1, "b": 0.2, "c": 0.3}))


def test_a_series_row_with_a_null_or_an_unknown_name_is_refused_naming_the_feature() -> None:
    with mean_engine(WITH_DEFAULT) as e:
        row = pd.Series({"a": 0.25, "b": None, "c": 0.75}, dtype=object)
        assert e.score(row).defaults_used == ("b",)
        with pytest.raises(InputError, match=r"^row 0: feature 'a' is null") as info:
            e.score(pd.Series({"a": pd.NA, "b": 0.5, "c": 0.75}, dtype="Float64"))
        assert info.value.feature == "a"
        with pytest.raises(InputError, match=r"none of the 3 feature names given.*index.*to_numpy"):
            e.score(pd.Series([0.1, 0.2, 0.3]))


def test_a_polars_lazy_frame_asks_to_be_collected() -> None:
    with mean_engine() as e, pytest.raises(InputError, match=r"collect\(\)"):
        e.score_batch(pl.DataFrame({"a": [0.1], "b": [0.2], "c": [0.3]}).lazy())


# -- the schema's element type, and what gets imported --------------------------------------


def test_frames_are_built_in_the_schema_dtype() -> None:
    schema = FeatureSchema([FeatureSpec(name=n, min=0, max=1) for n in NAMES], dtype=np.float64)
    values = np.array([[0.1, 0.2, 1 / 3], [0.4, 0.5, 2 / 3]])
    for frame in (
        pd.DataFrame(values, columns=NAMES),
        pl.from_numpy(values, schema=NAMES),
        pa.table({n: values[:, j] for j, n in enumerate(NAMES)}),
    ):
        X = schema.batch(frame).X
        assert X.dtype == np.float64
        np.testing.assert_array_equal(X, values)


def test_scoring_a_pandas_frame_imports_no_polars() -> None:
    script = (
        "import sys, numpy as np, pandas as pd\n"
        "from scoring_core.features import FeatureSchema\n"
        "from scoring_core.config.schema import FeatureSpec\n"
        "schema = FeatureSchema([FeatureSpec(name='a'), FeatureSpec(name='b')])\n"
        "schema.batch(pd.DataFrame({'a': [0.5], 'b': [0.5]}))\n"
        "schema.batch(np.zeros((1, 2)))\n"
        "schema.row(pd.Series({'a': 0.5, 'b': 0.5}))\n"
        "print('polars' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"
