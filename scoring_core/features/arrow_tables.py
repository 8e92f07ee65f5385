"""Arrow input: pyarrow Tables and RecordBatches, and polars DataFrames through Arrow.

A polars DataFrame becomes a pyarrow Table with ``to_arrow()`` (zero-copy for number
columns), so both take one path. Each feature column is read by
:func:`scoring_core.features.numbers.column_numbers`, the conversion ``scoring score``
uses for CSV, JSON Lines and Parquet: numbers of any width and decimals as they are,
dictionary columns through their values, texts that read as numbers (``"0.5"``) too;
nulls, booleans and other texts are reported per row. Arrow's nulls are the missing
values; a NaN is not one. A column of dates, times or lists is
refused, naming the column. Neither pyarrow nor polars is imported unless such an
object is passed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy.typing as npt

from scoring_core.errors import DataFileError, InputError
from scoring_core.features.columns import Column, check_column_names, columns_batch, one_row

if TYPE_CHECKING:
    from scoring_core.features.schema import FeatureSchema, PreparedBatch

__all__ = ["is_table", "table_batch", "table_row"]

_ARROW_KINDS = frozenset({"Table", "RecordBatch"})


def is_table(obj: Any) -> bool:
    """A pyarrow Table or RecordBatch, or a polars DataFrame or LazyFrame."""
    kind = type(obj)
    module = kind.__module__
    if module.startswith("pyarrow"):
        return kind.__name__ in _ARROW_KINDS
    return module.startswith("polars") and kind.__name__ in {"DataFrame", "LazyFrame"}


def table_batch(schema: FeatureSchema, table: Any) -> PreparedBatch:
    """Check the rows of an Arrow table (or a polars frame), column by column."""
    table = _as_arrow(table)
    columns = [str(name) for name in table.schema.names]
    features = check_column_names(schema, columns)
    return columns_batch(schema, table.num_rows, features, lambda name: _numbers(table, name))


def table_row(
    schema: FeatureSchema, table: Any, row_index: int
) -> tuple[npt.NDArray[Any], tuple[str, ...]]:
    """The one row of a one-row Arrow table or polars DataFrame."""
    kind = f"{type(table).__module__.partition('.')[0]} {type(table).__name__}"
    return one_row(table_batch(schema, table), row_index, kind)


def _as_arrow(table: Any) -> Any:
    if not type(table).__module__.startswith("polars"):
        return table
    if type(table).__name__ == "LazyFrame":
        raise InputError(
            "got a polars LazyFrame; collect it first: engine.score_batch(lazy.collect())"
        )
    try:
        return table.to_arrow()
    except Exception as exc:  # polars raises its own errors for columns Arrow cannot hold
        raise InputError(
            f"the polars DataFrame could not be turned into Arrow columns: {exc}"
        ) from exc


def _numbers(table: Any, name: str) -> Column:
    from scoring_core.features.numbers import column_numbers

    try:
        return column_numbers(table.column(name), name)
    except DataFileError as exc:
        raise InputError(str(exc), feature=name) from exc
