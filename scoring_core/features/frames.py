"""Data frames as input: a pandas DataFrame's columns checked against the features."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from scoring_core.errors import InputError, did_you_mean

if TYPE_CHECKING:
    from scoring_core.features.schema import FeatureSchema, PreparedBatch

__all__ = ["dataframe_batch", "is_dataframe"]

_NUMERIC_KINDS = frozenset("fiub")


def is_dataframe(obj: Any) -> bool:
    module = type(obj).__module__
    return module.startswith("pandas") and hasattr(obj, "columns") and hasattr(obj, "to_numpy")


def dataframe_batch(schema: FeatureSchema, frame: Any) -> PreparedBatch:
    """Check the rows of a pandas DataFrame, column by column (one row by one when a
    feature column holds anything but numbers)."""
    columns = [str(c) for c in frame.columns]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise InputError(
            f"column {repeated[0]!r} appears more than once; keep one",
            feature=repeated[0],
        )
    unknown = [c for c in columns if c not in schema.names_set]
    if unknown:
        raise InputError(
            f"unknown column {unknown[0]!r}{did_you_mean(unknown[0], schema.names)}; pass only "
            "the feature columns, e.g. engine.score_batch(df[list(engine.feature_names)])",
            feature=unknown[0],
        )
    present = set(columns)
    n = len(frame)
    X = np.empty((n, schema.width), dtype=schema.dtype)
    used_names: list[str] = []
    for j, name in enumerate(schema.names):
        if name in present:
            column = frame[name].to_numpy()
            if column.dtype.kind not in _NUMERIC_KINDS:
                return schema.row_by_row(
                    [dict(zip(columns, r, strict=True)) for r in frame.itertuples(index=False)]
                )
            with np.errstate(over="ignore", invalid="ignore"):
                X[:, j] = column
        elif name in schema.defaults:
            X[:, j] = schema.defaults[name]
            used_names.append(name)
        else:
            raise InputError(
                f"column {name!r} is missing and the feature has no default",
                feature=name,
            )
    used = [tuple(used_names)] * n if used_names else None
    return schema.finish(X, np.arange(n), {}, used)
