"""One value of a row: a number, a missing value, or the error that names it.

The rules (docs/python.md, "Missing values" and "What a number is"):

- ``None`` is a missing value: it takes the feature's ``default:``, or the row is an
  :class:`InputError` naming the feature. A NaN in a numpy array, a list or a mapping is
  not a missing value (a computation gone wrong looks the same): it is refused.
- A boolean (``True``, ``numpy.bool_``) is not a number: refused, naming the feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from scoring_core.errors import InputError

if TYPE_CHECKING:
    from scoring_core.features.schema import FeatureSchema

__all__ = ["BOOLEANS", "boolean_reason", "fill_missing", "raise_non_number", "value_error"]

BOOLEANS = frozenset({bool, np.bool_})
_NO_DEFAULTS: tuple[str, ...] = ()


def boolean_reason(name: str, value: Any) -> str:
    """Why a boolean is refused as the value of feature ``name``."""
    return (
        f"feature {name!r} is {value!r} (a boolean), not a number; "
        "send 1.0 or 0.0 if a number is meant"
    )


def fill_missing(
    schema: FeatureSchema, values: Sequence[Any], row_index: int
) -> tuple[Sequence[Any], tuple[str, ...]]:
    """``None`` takes its feature's default (or is refused); a boolean is refused.

    Returns the values and the features that took their default, in feature order.
    """
    if len(values) != schema.width:
        return values, _NO_DEFAULTS  # the length error comes first
    filled: list[str] = []
    out: list[Any] | None = None
    for position, value in enumerate(values):
        if type(value) in BOOLEANS:
            name = schema.names[position]
            raise InputError.for_row(row_index, boolean_reason(name, value), feature=name)
        if value is None:
            name = schema.names[position]
            if name not in schema.defaults:
                raise InputError.for_row(
                    row_index,
                    f"feature {name!r} is None (missing) and has no default; "
                    "provide it, or give it a `default:` in the feature schema",
                    feature=name,
                )
            out = list(values) if out is None else out
            out[position] = schema.defaults[name]
            filled.append(name)
    return (values if out is None else out), tuple(filled)


def raise_non_number(names: Sequence[str], values: Sequence[Any], row_index: int) -> None:
    """Raise the InputError for the first value that is not a number."""
    for position, value in enumerate(values):
        if position >= len(names):
            break
        if type(value) in BOOLEANS:
            name = names[position]
            raise InputError.for_row(row_index, boolean_reason(name, value), feature=name)
        if not isinstance(value, int | float | np.number):
            name = names[position]
            raise InputError.for_row(
                row_index,
                f"feature {name!r} is {value!r} ({type(value).__name__}), not a number",
                feature=name,
            )
    raise InputError.for_row(row_index, "the values are not numbers")


def value_error(schema: FeatureSchema, value: float, column: int, row: int) -> InputError:
    """The InputError for a number a feature refuses: NaN, infinite, or out of range."""
    name = schema.names[column]
    spec = schema.specs[column]
    if np.isnan(value):
        what = "is NaN (missing?)"
        if name in schema.defaults:
            todo = (
                "NaN is not a missing value here (None, a null, or pandas' NaN is): pass "
                f"None, or leave the feature out of a mapping, to take its default "
                f"({schema.defaults[name]:g})"
            )
        else:
            todo = "fill it upstream, or give the feature a `default:` and leave it out"
    elif np.isinf(value) or abs(value) > schema.max_value:
        what = f"is infinite or too large for a {schema.dtype.itemsize * 8}-bit float"
        todo = "send a finite number in the feature's range"
    else:
        # The value in full: 1.0000002 must not read as "1, outside [0, 1]".
        shown = np.float32(value) if schema.dtype == np.float32 else np.float64(value)
        what = f"is {shown!s}, outside [{spec.min}, {spec.max}]"
        todo = "fix the value upstream, or set `clip: true` on the feature to clip it"
    return InputError.for_row(row, f"feature {name!r} {what}; {todo}", feature=name)
