"""pandas input: a DataFrame's columns, or a Series as one row, checked against the features.

Every numeric dtype is read: numpy's (float16 to uint64) as they are, pandas' nullable
ones (``Int64``, ``Float64``, pyarrow-backed numbers), and categoricals of numbers
through their categories. pandas' missing values (what ``isna()`` says: NaN in a float
column, ``None``, ``pd.NA``) are nulls and follow the rules of
:mod:`scoring_core.features.columns` (the feature's default, or an error for that row).
Booleans (``bool``, ``boolean``) are not numbers: each of their cells is refused for its
row. Dates, times and periods are refused, naming the column; text and other objects are
refused cell by cell.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from scoring_core.errors import InputError
from scoring_core.features.columns import (
    Column,
    cell_numbers,
    check_column_names,
    columns_batch,
    not_numbers,
    one_row,
)

if TYPE_CHECKING:
    from scoring_core.features.schema import FeatureSchema, PreparedBatch

__all__ = ["dataframe_batch", "is_dataframe", "is_series", "series_row"]

_NUMERIC_KINDS = frozenset("fiu")
_TIME_KINDS = frozenset("mM")


def is_dataframe(obj: Any) -> bool:
    module = type(obj).__module__
    return module.startswith("pandas") and hasattr(obj, "columns") and hasattr(obj, "to_numpy")


def is_series(obj: Any) -> bool:
    """A pandas Series (detected without importing pandas for anything else)."""
    if not type(obj).__module__.startswith("pandas"):
        return False
    import pandas as pd

    return isinstance(obj, pd.Series)


def dataframe_batch(schema: FeatureSchema, frame: Any) -> PreparedBatch:
    """Check the rows of a pandas DataFrame, column by column, in any column order."""
    columns = [str(c) for c in frame.columns]
    features = check_column_names(schema, columns)
    position = {name: i for i, name in enumerate(columns)}
    return columns_batch(
        schema,
        len(frame),
        features,
        lambda name: series_numbers(frame.iloc[:, position[name]], name),
    )


def series_row(
    schema: FeatureSchema, series: Any, row_index: int
) -> tuple[npt.NDArray[Any], tuple[str, ...]]:
    """One row given as a pandas Series whose index holds the feature names."""
    names = [str(k) for k in series.index]
    try:
        features = check_column_names(schema, names, what="feature")
    except InputError as exc:
        hint = ""
        if not schema.names_set.intersection(names):
            hint = (
                " (a Series row is read by its index, which must hold the feature names; "
                "for values in feature order pass series.to_numpy())"
            )
        raise InputError.for_row(row_index, exc.reason + hint, feature=exc.feature) from None
    cells = dict(zip(names, series.tolist(), strict=True))
    prepared = columns_batch(schema, 1, features, lambda name: cell_numbers([cells[name]], name))
    return one_row(prepared, row_index, "Series")


def series_numbers(column: Any, name: str) -> Column:
    """One pandas column (a Series) as a :data:`Column`, whatever its dtype."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype):
        if dtype.kind == "f":
            values = column.to_numpy()
            missing = np.isnan(values)  # pandas' missing value in a float column
            return values, (missing if missing.any() else None), []
        if dtype.kind in _NUMERIC_KINDS:
            return column.to_numpy(), None, []
        if dtype.kind == "b":
            return cell_numbers(column.tolist(), name)
        if dtype.kind in _TIME_KINDS:
            raise not_numbers(name, dtype)
        return cell_numbers(column.tolist(), name)
    import pandas as pd

    if isinstance(dtype, pd.CategoricalDtype):
        return _categorical_numbers(column, name)
    if getattr(dtype, "kind", "O") in _TIME_KINDS or isinstance(
        dtype, pd.PeriodDtype | pd.IntervalDtype
    ):
        raise not_numbers(name, dtype)
    if pd.api.types.is_bool_dtype(dtype):
        return cell_numbers(column.astype(object).tolist(), name)
    if pd.api.types.is_numeric_dtype(dtype):
        # Nullable numbers (Int64, Float64, pyarrow-backed): what isna() says is a null; a
        # NaN it does not call missing stays NaN and is refused.
        missing = np.asarray(column.isna().to_numpy(dtype=bool))
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, (missing if missing.any() else None), []
    return cell_numbers(column.astype(object).tolist(), name)


def _categorical_numbers(column: Any, name: str) -> Column:
    """A categorical column: its categories read as numbers, picked by the codes."""
    import pandas as pd

    categories = pd.Series(column.cat.categories)
    try:
        category_values, _, bad_categories = series_numbers(categories, name)
    except InputError:
        raise not_numbers(name, f"categorical of {categories.dtype}") from None
    codes = column.cat.codes.to_numpy()
    missing = codes < 0
    lookup = np.append(np.asarray(category_values, dtype=np.float64), np.nan)
    values = lookup[codes]  # code -1 (a null) picks the NaN appended last
    bad: list[tuple[int, str]] = []
    if bad_categories:
        why = dict(bad_categories)
        for position in np.flatnonzero(np.isin(codes, list(why))).tolist():
            bad.append((position, why[int(codes[position])]))
    return values, (missing if missing.any() else None), bad
