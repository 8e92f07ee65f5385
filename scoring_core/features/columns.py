"""Feature columns as the engine's rows: the one path every frame takes.

A pandas DataFrame, a pyarrow Table or RecordBatch, a polars DataFrame and a pandas
Series (one row) are all read column by column: each feature's column becomes a
:data:`Column` (its values, which of them are null, which are not numbers), and
:func:`columns_batch` lays the columns out in the engine's feature order in the
schema's element type. The rules are the same for every kind of frame:

- a column that is not a feature is refused, with did-you-mean (a typo must not be
  ignored); a feature column that is absent takes the feature's default, or is refused;
- a null cell takes the feature's default, or its row is an :class:`InputError` naming
  the row and the feature (never a silent 0 or 0.5);
- a cell that is not a number is an InputError for its row; the other rows go on.
"""

from __future__ import annotations

import decimal
import numbers
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from scoring_core.errors import InputError, did_you_mean

if TYPE_CHECKING:
    from scoring_core.features.schema import FeatureSchema, PreparedBatch

__all__ = [
    "Column",
    "cell_numbers",
    "check_column_names",
    "columns_batch",
    "not_numbers",
    "one_row",
]

# values (NaN where null or not a number), nulls (None: there are none), and the cells
# that are not numbers: (position, message).
Column = tuple[npt.NDArray[Any], npt.NDArray[np.bool_] | None, list[tuple[int, str]]]

_TEXT_SHOWN = 120


def check_column_names(
    schema: FeatureSchema, columns: Sequence[str], *, what: str = "column"
) -> None:
    """Refuse a repeated or unknown column, or an absent feature without a default."""
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            raise InputError(f"{what} {name!r} appears more than once; keep one", feature=name)
        seen.add(name)
    unknown = [c for c in columns if c not in schema.names_set]
    if unknown:
        hint = (
            "; pass only the feature columns, e.g. "
            "engine.score_batch(df[list(engine.feature_names)])"
            if what == "column"
            else " (the engine's features are engine.feature_names)"
        )
        raise InputError(
            f"unknown {what} {unknown[0]!r}{did_you_mean(unknown[0], schema.names)}{hint}",
            feature=unknown[0],
        )
    for name in schema.names:
        if name not in seen and name not in schema.defaults:
            raise InputError(
                f"{what} {name!r} is missing and the feature has no default; provide it, or "
                "give the feature a `default:` in the feature schema",
                feature=name,
            )


def not_numbers(name: str, kind: object) -> InputError:
    """The error for a column whose type cannot hold numbers (dates, times, lists)."""
    return InputError(
        f"column {name!r} holds {kind} values, not numbers; a feature column must hold "
        "numbers (convert it first, e.g. a date to a number of days)",
        feature=name,
    )


def cell_numbers(cells: Sequence[Any], name: str) -> Column:
    """Python values (an object column, a Series row) as a :data:`Column`.

    ``None`` and pandas' ``NA`` are nulls; numbers (bools included) are taken as they
    are; anything else, text included, is not a number (as for a mapping row).
    """
    values = np.full(len(cells), np.nan)
    missing = np.zeros(len(cells), dtype=bool)
    bad: list[tuple[int, str]] = []
    for i, cell in enumerate(cells):
        if cell is None or _is_pandas_na(cell):
            missing[i] = True
        elif isinstance(cell, numbers.Real | np.bool_ | decimal.Decimal):
            try:
                values[i] = float(cell)
            except OverflowError:
                bad.append((i, f"feature {name!r} is an integer too large for any float"))
        else:
            shown = repr(cell)
            shown = shown if len(shown) <= _TEXT_SHOWN else shown[:_TEXT_SHOWN] + "..."
            bad.append((i, f"feature {name!r} is {shown} ({type(cell).__name__}), not a number"))
    return values, (missing if missing.any() else None), bad


def _is_pandas_na(cell: Any) -> bool:
    kind = type(cell)
    return kind.__name__ == "NAType" and kind.__module__.startswith("pandas")


def columns_batch(
    schema: FeatureSchema,
    n: int,
    present: Sequence[str],
    column_of: Callable[[str], Column],
) -> PreparedBatch:
    """Check ``n`` rows given column by column; ``column_of(name)`` reads one present column.

    The names have passed :func:`check_column_names`. The matrix is built in
    ``schema.dtype``; values beyond it become infinite and are reported by
    :meth:`FeatureSchema.finish`, as for an array.
    """
    X = np.empty((n, schema.width), dtype=schema.dtype)
    errors: dict[int, InputError] = {}
    have = set(present)
    absent: list[int] = []  # feature positions that took their default in every row
    filled: npt.NDArray[np.bool_] | None = None  # (row, feature): a null took the default
    for j, name in enumerate(schema.names):
        if name not in have:
            X[:, j] = schema.defaults[name]
            absent.append(j)
            continue
        values, missing, bad = column_of(name)
        with np.errstate(over="ignore", invalid="ignore"):
            X[:, j] = values
        if missing is not None:
            if name in schema.defaults:
                X[missing, j] = schema.defaults[name]
                if filled is None:
                    filled = np.zeros((n, schema.width), dtype=bool)
                filled[:, j] = missing
            else:
                reason = (
                    f"feature {name!r} is null (missing) and has no default; fill it upstream, "
                    "or give the feature a `default:`"
                )
                for position in np.flatnonzero(missing).tolist():
                    errors.setdefault(position, InputError.for_row(position, reason, feature=name))
        for position, reason in bad:
            errors.setdefault(position, InputError.for_row(position, reason, feature=name))
    used = _defaults_used(schema, n, absent, filled)
    rows = np.arange(n, dtype=np.intp)
    if errors:
        keep = np.ones(n, dtype=bool)
        keep[list(errors)] = False
        X = np.ascontiguousarray(X[keep])
        rows = rows[keep]
        if used is not None:
            used = [u for u, k in zip(used, keep.tolist(), strict=True) if k]
    return schema.finish(X, rows, errors, used)


def _defaults_used(
    schema: FeatureSchema, n: int, absent: list[int], filled: npt.NDArray[np.bool_] | None
) -> list[tuple[str, ...]] | None:
    """The features that took their default, per row, in feature order (None: none did)."""
    if not absent and filled is None:
        return None
    every_row = tuple(schema.names[j] for j in absent)
    used = [every_row] * n
    if filled is not None:
        taken = filled.copy()
        taken[:, absent] = True
        for r in np.flatnonzero(filled.any(axis=1)).tolist():
            used[r] = tuple(schema.names[j] for j in np.flatnonzero(taken[r]).tolist())
    return used


def one_row(
    prepared: PreparedBatch, row_index: int, kind: str
) -> tuple[npt.NDArray[Any], tuple[str, ...]]:
    """The single row of ``prepared`` as :meth:`FeatureSchema.row` returns it, or its error."""
    count = len(prepared.rows) + len(prepared.errors)
    if count != 1:
        raise InputError.for_row(
            row_index,
            f"score takes one row; got a {kind} of {count} rows: use score_batch for several",
        )
    if prepared.errors:
        error = prepared.errors[0]
        raise InputError.for_row(row_index, error.reason, feature=error.feature)
    used = prepared.defaults_used[0] if prepared.defaults_used else ()
    return prepared.X, used
