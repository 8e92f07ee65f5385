"""Turning feature columns into the matrix the engine takes, value by value.

One bad cell rejects one row, never the file: a text that is not a number, a boolean,
or a missing value (null, empty text) of a feature without a default, is reported for
its row; the row is NaN in the matrix so the engine refuses it too.

What a number is, the same on every path (docs/python.md, "What a number is"): numbers
of any width and decimals; texts written as CSV tools write numbers (ASCII digits, an
optional sign, point and exponent: ``"0.5"``, ``"1e-3"``, ``"inf"``, ``"nan"``, the
last two then refused as values). Not numbers: booleans (a JSON ``true``, an Arrow
boolean column), and texts only Python's ``float()`` would read (``"1_0"``, full-width
or Arabic-Indic digits), so ``float()`` is never used on a text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring_core.errors import DataFileError

__all__ = ["boolean_cells", "column_numbers", "feature_matrix", "text_number"]

_TEXT_SHOWN = 120
# A number as CSV tools write one (and Arrow's cast reads): ASCII only, no `_`.
_NUMBER_TEXT = re.compile(
    r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)",
    re.ASCII | re.IGNORECASE,
)
_SPACES = " \t"
Problems = dict[int, tuple[str, str]]


def feature_matrix(
    table: Any,
    features: Sequence[str],
    defaults: dict[str, float],
    dtype: npt.DTypeLike = np.float32,
) -> tuple[npt.NDArray[np.floating[Any]], Problems]:
    """The feature columns of ``table`` as a C-ordered matrix of ``dtype`` (the engine's
    ``row_dtype``), in ``features`` order.

    A feature absent from ``table`` takes its default (the caller has checked it has one);
    so does a missing value of a feature with a default. Returns the matrix and the
    problems: row position -> (feature, message), first feature first.
    """
    X = np.empty((table.num_rows, len(features)), dtype=dtype)
    problems: Problems = {}
    present = set(table.schema.names)
    plain = _plain_types()
    with np.errstate(over="ignore", invalid="ignore"):
        for j, name in enumerate(features):
            if name not in present:
                X[:, j] = defaults[name]
                continue
            column = table.column(name)
            plain_dtype = plain.get(column.type.id)
            if plain_dtype is not None and column.num_chunks == 1 and not column.null_count:
                X[:, j] = _plain_values(column.chunk(0), plain_dtype)  # the usual case, quickly
                continue
            values, missing, bad = column_numbers(column, name)
            X[:, j] = values
            if missing is not None:
                if name in defaults:
                    X[missing, j] = defaults[name]
                else:
                    message = (
                        f"feature {name!r} is missing (a null or an empty cell) and has no "
                        "default; fill it upstream, or give the feature a `default:`"
                    )
                    for position in np.flatnonzero(missing).tolist():
                        problems.setdefault(position, (name, message))
            for position, message in bad:
                problems.setdefault(position, (name, message))
    if problems:
        X[list(problems)] = np.nan
    return X, problems


def column_numbers(
    column: Any, name: str
) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_] | None, list[tuple[int, str]]]:
    """A pyarrow column as numbers: ``(values, missing, bad)``.

    ``values`` is NaN where a value is missing or not a number; ``missing`` marks nulls and
    empty texts (None when there are none); ``bad`` lists ``(position, message)`` for the
    texts that are not numbers. A column of a type that cannot hold numbers (dates, lists)
    is a :class:`DataFileError`.
    """
    import pyarrow as pa

    kind = column.type
    if pa.types.is_dictionary(kind):
        return column_numbers(column.cast(kind.value_type), name)
    if pa.types.is_null(kind):
        return np.full(len(column), np.nan), np.ones(len(column), dtype=bool), []
    if pa.types.is_floating(kind) or pa.types.is_integer(kind):
        missing = _nulls(column) if column.null_count else None
        return _to_numpy(column), missing, []
    if pa.types.is_boolean(kind):
        return boolean_cells(column.to_pylist(), name)
    if pa.types.is_decimal(kind):
        return column_numbers(column.cast(pa.float64()), name)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        try:  # float64: Arrow parses it faster than float32 (measured)
            numbers = column.cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _parse_texts(column.to_pylist(), name)
        missing = _nulls(numbers) if numbers.null_count else None
        return _to_numpy(numbers), missing, []
    raise DataFileError(
        f"column {name!r} holds {kind} values, not numbers; a feature column must hold numbers",
        column=name,
    )


def _to_numpy(column: Any) -> npt.NDArray[Any]:
    """The values of a numeric pyarrow column; NaN where null (as floats then).

    Read straight from the Arrow buffers: pyarrow's own ``to_numpy`` imports pandas when it
    is installed (half a second and 40 MB, measured), even for a zero-copy view.
    """
    if hasattr(column, "chunks"):  # a ChunkedArray
        parts = [_array_to_numpy(chunk) for chunk in column.chunks]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.empty(0)
    return _array_to_numpy(column)


@functools.cache
def _plain_types() -> dict[int, np.dtype[Any]]:
    """pyarrow type id -> numpy dtype, for the number types whose buffer numpy reads as is."""
    import pyarrow as pa

    kinds = [pa.float32(), pa.float64(), pa.float16(), pa.int8(), pa.int16(), pa.int32()]
    kinds += [pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()]
    return {kind.id: np.dtype(kind.to_pandas_dtype()) for kind in kinds}


def _plain_values(array: Any, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """The values of a pyarrow array without nulls, read in place."""
    n, offset = len(array), array.offset
    if not n:
        return np.empty(0, dtype=dtype)
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=offset + n)[offset:]


def _array_to_numpy(array: Any) -> npt.NDArray[Any]:
    values = _plain_values(array, _plain_types()[array.type.id])
    if array.null_count:
        values = values.astype(np.float64)
        values[_null_mask(array.buffers()[0], array.offset, len(array))] = np.nan
    return values


def _null_mask(validity: Any, offset: int, n: int) -> npt.NDArray[np.bool_]:
    bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
    return np.asarray(bits[offset : offset + n] == 0)


def _nulls(column: Any) -> npt.NDArray[np.bool_]:
    chunks = column.chunks if hasattr(column, "chunks") else [column]
    masks = [
        _null_mask(c.buffers()[0], c.offset, len(c))
        if c.null_count
        else np.zeros(len(c), dtype=bool)
        for c in chunks
    ]
    return np.concatenate(masks) if masks else np.zeros(0, dtype=bool)


def _parse_texts(
    texts: list[str | None], name: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_] | None, list[tuple[int, str]]]:
    values = np.full(len(texts), np.nan)
    missing = np.zeros(len(texts), dtype=bool)
    bad: list[tuple[int, str]] = []
    for i, text in enumerate(texts):
        if text is None or not text.strip():
            missing[i] = True
            continue
        number = text_number(text)
        if number is None:
            shown = text if len(text) <= _TEXT_SHOWN else text[:_TEXT_SHOWN] + "..."
            bad.append((i, f"feature {name!r} is {shown!r}, not a number"))
        else:
            values[i] = number
    return values, (missing if missing.any() else None), bad


def text_number(text: str) -> float | None:
    """The number a text holds, as CSV tools read it; None when it holds none.

    Only ASCII digits: ``float()`` also reads ``"1_0"`` and non-ASCII digits, which no
    CSV tool does, so it is called only on a text that matched :data:`_NUMBER_TEXT`.
    """
    stripped = text.strip(_SPACES)
    if _NUMBER_TEXT.fullmatch(stripped) is None:
        return None
    return float(stripped)


def boolean_cells(
    cells: Sequence[bool | None], name: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_] | None, list[tuple[int, str]]]:
    """A boolean column: nulls are missing, and every true or false is a bad cell.

    Booleans are not numbers, on every path: the row is rejected, naming the feature, so
    a JSON ``true`` is never scored as 1.0 (whatever the rows around it hold).
    """
    missing = np.array([cell is None for cell in cells], dtype=bool)
    bad = [
        (
            i,
            f"feature {name!r} is {str(cell).lower()} (a boolean), not a number; "
            "send 1 or 0 if a number is meant",
        )
        for i, cell in enumerate(cells)
        if cell is not None
    ]
    return np.full(len(cells), np.nan), (missing if missing.any() else None), bad
