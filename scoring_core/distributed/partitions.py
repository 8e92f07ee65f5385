"""One partition of a distributed frame, scored by the code behind ``scoring score``.

A partition arrives as a pyarrow Table (Spark's ``mapInArrow`` batches, a Dask partition
converted once). Its rows are checked by :func:`scoring_core.batch.checked_rows`, the good
ones scored by ``engine.score_prepared``; the result is the same rows in the same order
with four columns added: ``score`` (null for a rejected row), ``scorer``,
``fallback_reason`` (empty when none) and ``reject_reason`` (null unless rejected: why
the row's input is bad). Nothing is dropped; the :class:`~scoring_core.batch.Counts` of
the partition go back to the driver for the job's summary.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

import numpy as np

from scoring_core.batch import Counts, checked_rows
from scoring_core.errors import ChainExhaustedError, DataFileError
from scoring_core.io import Chunk

if TYPE_CHECKING:
    from scoring_core.engine import Engine

__all__ = [
    "RESULT_COLUMNS",
    "check_frame_columns",
    "result_schema",
    "score_arrow",
    "worker_name",
]

RESULT_COLUMNS = ("score", "scorer", "fallback_reason", "reject_reason")


def worker_name() -> str:
    """This process, as the summary names it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def check_frame_columns(engine: Engine, columns: Any) -> None:
    """Before any task: every feature is a column (or has a default), and no column has
    the name of a result column."""
    columns = list(columns)
    missing = [
        name
        for name in engine.feature_names
        if name not in columns and name not in engine.feature_defaults
    ]
    if missing:
        features = engine.feature_names
        raise DataFileError(
            f"the frame has no column {missing[0]!r} (feature {features.index(missing[0]) + 1} "
            f"of {len(features)}), and the feature has no default",
            column=missing[0],
        )
    clash = [name for name in RESULT_COLUMNS if name in columns]
    if clash:
        raise DataFileError(
            f"the frame already has a column {clash[0]!r}, which scoring adds; "
            "rename or drop it first",
            column=clash[0],
        )


def result_schema(schema: Any) -> Any:
    """The output schema: ``schema`` (the input's) with the four result columns."""
    import pyarrow as pa

    kinds = (pa.float64(), pa.string(), pa.string(), pa.string())
    fields = [pa.field(name, kind) for name, kind in zip(RESULT_COLUMNS, kinds, strict=True)]
    return pa.schema([*schema, *fields])


def _reason(column: str, why: str) -> str:
    return why if not column or repr(column) in why else f"feature {column!r}: {why}"


def score_arrow(engine: Engine, table: Any, source: str = "partition") -> tuple[Any, Counts]:
    """Score ``table``'s rows; returns it with the result columns, and its counts.

    A bad row is kept with its reason in ``reject_reason``; ``ChainExhaustedError`` (every
    step failed a row and ``on_exhausted: raise``) fails the partition, as it fails
    ``scoring score``.
    """
    import pyarrow as pa

    rows = table.num_rows
    counts = Counts()
    scores = np.full(rows, np.nan)
    scorers: list[str | None] = [None] * rows
    fallbacks: list[str | None] = [None] * rows
    rejected: list[str | None] = [None] * rows
    valid = np.zeros(rows, dtype=bool)
    if rows:
        chunk = Chunk(table, np.arange(1, rows + 1, dtype=np.int64))
        prepared, rejects = checked_rows(engine, chunk, engine.feature_defaults, source)
        try:
            result = engine.score_prepared(prepared)
        except ChainExhaustedError as exc:
            position = int(prepared.rows[exc.row]) if exc.row is not None else None
            raise ChainExhaustedError(exc.fallbacks, row=position) from None
        good = prepared.rows
        scores[good] = result.scores
        valid[good] = True
        for position, name, reason in zip(
            good.tolist(),
            result.scorers.tolist(),
            result.fallback_reasons(detail=False),
            strict=True,
        ):
            scorers[position] = name
            fallbacks[position] = reason
        for _row, position, column, why in rejects:
            rejected[position] = _reason(column, why)
        counts.add(result, len(rejects))
    columns = [
        pa.array(scores, pa.float64(), mask=~valid),
        pa.array(scorers, pa.string()),
        pa.array(fallbacks, pa.string()),
        pa.array(rejected, pa.string()),
    ]
    out = table
    for name, column in zip(RESULT_COLUMNS, columns, strict=True):
        out = out.append_column(name, column)
    return out, counts
