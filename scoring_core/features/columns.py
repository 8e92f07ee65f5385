"""Feature columns as the engine's rows: the one path every frame takes.

A pandas DataFrame, a pyarrow Table or RecordBatch, a polars DataFrame and a pandas
Series (one row) are all read column by column: each feature's column becomes a
:data:`Column` (its values, which of them are null, which are not numbers), and
:func:`columns_batch` lays the columns out in the engine's feature order in the
schema's element type. The rules are the same for every kind of frame:

- a column that is not a feature (an ``id``, a label) is ignored, unless its name looks
  like a feature's (:func:`typo_of`: a typo must not be ignored, or the feature would
  silently take its default): then the call is refused, with did-you-mean; a feature
  column that is absent takes the feature's default, or is refused;
- a null cell (pandas' missing values, NaN in a float column included) takes the
  feature's default, or its row is an :class:`InputError` naming the row and the feature
  (never a silent 0 or 0.5);
- a cell that is not a number (a boolean included) is an InputError for its row; the
  other rows go on.
"""

from __future__ import annotations

import decimal
import difflib
import math
import numbers
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from scoring_core.errors import InputError
from scoring_core.features.cells import boolean_reason

if TYPE_CHECKING:
    from scoring_core.features.schema import FeatureSchema, PreparedBatch

__all__ = [
    "Column",
    "cell_numbers",
    "check_column_names",
    "columns_batch",
    "not_numbers",
    "one_row",
    "typo_of",
]

# values (NaN where null or not a number), nulls (None: there are none), and the cells
# that are not numbers: (position, message).
Column = tuple[npt.NDArray[Any], npt.NDArray[np.bool_] | None, list[tuple[int, str]]]

_TEXT_SHOWN = 120
# How alike a column's name and a feature's must be for the column to count as a typo
# (difflib's ratio, on lower-case names): "user_explorationn_eagerness" is one, "user_id"
# or "label" beside the calling-score features are not.
TYPO_CUTOFF = 0.8


def typo_of(column: str, names: Sequence[str]) -> str | None:
    """The feature name ``column`` looks like a typo of (None: it looks like no feature).

    Close in difflib's ratio (at least :data:`TYPO_CUTOFF`), or equal ignoring case.
    """
    lowered = {name.lower(): name for name in names}
    close = difflib.get_close_matches(column.lower(), list(lowered), n=1, cutoff=TYPO_CUTOFF)
    return lowered[close[0]] if close else None


def check_column_names(
    schema: FeatureSchema, columns: Sequence[str], *, what: str = "column"
) -> list[str]:
    """The feature columns among ``columns``; other columns are ignored.

    Refuses a repeated feature column, a column whose name looks like a typo of a
    feature's, and an absent feature without a default.
    """
    seen: set[str] = set()
    features: list[str] = []
    for name in columns:
        if name in schema.names_set:
            if name in seen:
                raise InputError(f"{what} {name!r} appears more than once; keep one", feature=name)
            seen.add(name)
            features.append(name)
            continue
        typo = typo_of(name, schema.names)
        if typo is not None:
            hint = (
                "; rename it, or drop it: columns that are not features are ignored unless "
                "their name looks like a feature's, so a typo cannot go unnoticed"
            )
            raise InputError(
                f"{what} {name!r} is not a feature but looks like one; did you mean "
                f"{typo!r}?{hint}",
                feature=name,
            )
    for name in schema.names:
        if name not in seen and name not in schema.defaults:
            none = ""
            if not features and columns:
                shown = ", ".join(map(repr, columns[:5])) + (", ..." if len(columns) > 5 else "")
                none = f" (none of the {len(columns)} {what} names given, {shown}, is a feature)"
            raise InputError(
                f"{what} {name!r} is missing and the feature has no default{none}; provide it, "
                "or give the feature a `default:` in the feature schema",
                feature=name,
            )
    return features


def not_numbers(name: str, kind: object) -> InputError:
    """The error for a column whose type cannot hold numbers (dates, times, lists)."""
    return InputError(
        f"column {name!r} holds {kind} values, not numbers; a feature column must hold "
        "numbers (convert it first, e.g. a date to a number of days)",
        feature=name,
    )


def cell_numbers(cells: Sequence[Any], name: str) -> Column:
    """Python values (a pandas object column, a Series row) as a :data:`Column`.

    pandas' missing values are nulls: ``None``, ``pd.NA``, ``NaT`` and a float NaN;
    numbers are taken as they are; anything else (a boolean, a text) is not a number
    (as for a mapping row).
    """
    values = np.full(len(cells), np.nan)
    missing = np.zeros(len(cells), dtype=bool)
    bad: list[tuple[int, str]] = []
    for i, cell in enumerate(cells):
        if (
            cell is None
            or _is_pandas_na(cell)
            or (isinstance(cell, float | np.floating) and math.isnan(cell))
        ):
            missing[i] = True
        elif isinstance(cell, bool | np.bool_):
            bad.append((i, boolean_reason(name, cell)))
        elif isinstance(cell, numbers.Real | decimal.Decimal):
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
    return kind.__name__ in {"NAType", "NaTType"} and kind.__module__.startswith("pandas")


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
