"""The tables of ``scoring score``: the input's columns and rows, the output and rejects.

Before any scoring, a feature column that is absent and has no default stops the run.
After that, a bad value stops only its row: it becomes a :data:`Reject` (its row number,
the offending column and the reason); ``scoring compare`` sorts its rows the same way.

The output holds the kept input columns (``--keep``) and then ``score``, ``scorer`` and
``fallback_reason``, one row per scored row, in input order. The rejects file holds
``row``, ``column`` and ``error`` and then the same kept columns, one row per rejected
row. The output is opened at the first chunk, whose column types fix both schemas (a
column whose type changes later is widened by the writer); the rejects file then too.
An output that is a stream (standard output, a device, a FIFO) gets no rejects file
unless ``--rejects`` names one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scoring_core.errors import did_you_mean
from scoring_core.io import (
    Chunk,
    DataFileError,
    TableReader,
    TableWriter,
    arrow_categories,
    arrow_integers,
    arrow_numbers,
    arrow_strings,
    feature_matrix,
    is_stream,
    open_reader,
)

if TYPE_CHECKING:
    from scoring_core.engine import Engine
    from scoring_core.features.schema import PreparedBatch

__all__ = [
    "PROVENANCE_COLUMNS",
    "REJECT_COLUMNS",
    "SCORE_COLUMNS",
    "OutputFiles",
    "Reject",
    "check_columns",
    "checked_rows",
    "default_rejects_path",
    "open_input",
    "output_table",
]

SCORE_COLUMNS = ("score", "scorer", "fallback_reason")
# With `scoring score --provenance`: what produced each score (see results.Provenance);
# `scorer` above is the step, `step_scorer` the registered scorer it uses.
PROVENANCE_COLUMNS = ("chain", "step_scorer", "model_version", "model_sha256", "config_sha256")
REJECT_COLUMNS = ("row", "column", "error")
Reject = tuple[int, int, str, str]  # row number, position in the chunk (-1: unparsed), column, why


@contextmanager
def open_input(path: str, fmt: str) -> Iterator[TableReader]:
    reader = open_reader(path, fmt)
    try:
        yield reader
    finally:
        reader.close()


def check_columns(reader: TableReader, engine: Engine) -> None:
    """A feature column that is absent and has no default is an error before any scoring."""
    defaults = engine.feature_defaults
    features = engine.feature_names
    missing = [n for n in features if n not in reader.columns and n not in defaults]
    if not missing:
        return
    name = missing[0]
    others = [c for c in reader.columns if c not in features]
    hint = did_you_mean(name, others, list_known=False)
    if not hint:  # the columns it has are not called "known": they are not features
        hint = f"; its other columns: {', '.join(others)}" if 0 < len(others) <= 12 else ""
    more = ""
    if len(missing) > 1:
        listed = ", ".join(repr(n) for n in missing[1:6]) + (", ..." if len(missing) > 6 else "")
        more = f"; {len(missing) - 1} more feature(s) missing too: {listed}"
    raise DataFileError(
        f"{reader.name} has no column {name!r} (feature {features.index(name) + 1} of "
        f"{len(features)}), and the feature has no default{hint}{more}",
        file=reader.name,
        column=name,
    )


def default_rejects_path(output: str, fmt: str) -> str | None:
    """``out.csv`` -> ``out.rejects.csv``; None (no rejects file unless ``--rejects`` names
    one) for standard output, a device, a FIFO: nothing is written beside those."""
    if is_stream(output):
        return None
    path = Path(output)
    return str(path.with_name(f"{path.stem}.rejects{path.suffix or '.' + fmt}"))


# -- one chunk's tables -------------------------------------------------------------------------


def checked_rows(
    engine: Engine, chunk: Chunk, defaults: dict[str, float], source: str
) -> tuple[PreparedBatch, list[Reject]]:
    """A chunk's features as numbers, checked: the prepared rows and the rejects, in order.

    ``defaults`` is ``engine.feature_defaults``, taken once per file; ``source`` names
    the file in the error for a column that cannot hold numbers. The rejects are counted
    in the engine's ``rows_rejected`` (``engine.count_rejected``).
    """
    try:
        X, problems = feature_matrix(chunk.table, engine.feature_names, defaults, engine.row_dtype)
    except DataFileError as exc:
        if exc.file is not None:
            raise
        raise DataFileError(f"{source}: {exc}", file=source, column=exc.column) from None
    prepared = engine.prepare_batch(X)
    rows = chunk.rows
    rejects: list[Reject] = [(row, -1, "", f"the row {why}") for row, why in chunk.broken]
    for position, (column, why) in problems.items():
        rejects.append((int(rows[position]), position, column, why))
    for error in prepared.errors:
        position = int(error.row or 0)
        if position in problems:
            continue
        # the rejects file has its own row column: the reason without "row N:"
        rejects.append((int(rows[position]), position, error.feature or "", error.reason))
    rejects.sort()
    engine.count_rejected(len(rejects))
    return prepared, rejects


def output_table(
    chunk: Chunk, kept: tuple[str, ...], prepared: Any, result: Any, *, provenance: bool = False
) -> Any:
    """The scored rows of a chunk: the kept columns, then the score columns (and the
    provenance columns, with ``provenance``)."""
    import pyarrow as pa

    from scoring_core.results import EXHAUSTED_SCORER

    columns: list[Any] = []
    if kept:
        passthrough = chunk.table.select(list(kept))
        if prepared.rows.shape[0] != chunk.table.num_rows:
            passthrough = passthrough.take(arrow_integers(prepared.rows))
        columns.extend(passthrough.columns)
    names = [*result.step_names, EXHAUSTED_SCORER]
    scorers = arrow_categories(names, result.scorer_index % len(names))  # -1: on_exhausted
    reasons: dict[str, int] = {"": 0}
    picks: Any = np.zeros(len(result), dtype=np.int32)
    if result.fallback_counts():
        texts = result.fallback_reasons(detail=False)  # why a step is unavailable: stderr
        picks = [reasons.setdefault(text, len(reasons)) for text in texts]
    columns += [arrow_numbers(result.scores), scorers, arrow_categories(list(reasons), picks)]
    if not provenance:
        return pa.Table.from_arrays(columns, names=[*kept, *SCORE_COLUMNS])
    columns += _provenance_columns(result, names)
    return pa.Table.from_arrays(columns, names=[*kept, *SCORE_COLUMNS, *PROVENANCE_COLUMNS])


def _provenance_columns(result: Any, names: list[str]) -> list[Any]:
    """One category column per provenance field, coded by the step that scored the row."""
    stamps = [result.provenance.get(name) for name in names]
    picks = result.scorer_index % len(names)
    fields = ("chain", "scorer", "model_version", "model_sha256", "config_sha256")
    return [
        arrow_categories([("" if p is None else getattr(p, field) or "") for p in stamps], picks)
        for field in fields
    ]


def _rejects_table(chunk: Chunk, kept: tuple[str, ...], rejects: list[Reject], schema: Any) -> Any:
    import pyarrow as pa

    columns = [
        arrow_integers(np.array([r[0] for r in rejects], dtype=np.int64)),
        arrow_strings([r[2] for r in rejects]),
        arrow_strings([r[3] for r in rejects]),
    ]
    if kept:
        positions = np.array([r[1] for r in rejects], dtype=np.int64)
        indices = arrow_integers(np.maximum(positions, 0), valid=positions >= 0)
        columns.extend(chunk.table.select(list(kept)).take(indices).columns)
    return pa.Table.from_arrays(columns, names=schema.names)  # the writer casts to its schema


# -- the files ----------------------------------------------------------------------------------


@dataclass
class OutputFiles:
    """The output and rejects files, opened at the first chunk (its types fix the schema).

    ``rejects`` is None when no rejects file is written (the output is a stream and
    ``--rejects`` was not given): the rejected rows are counted only. The two files of a
    run are committed together: both are finished (every byte written) before either is
    moved into place, and when finishing one fails both are removed.
    """

    output: str
    fmt: str
    rejects: str | None
    rejects_always: bool  # a file output always gets its rejects file, so none is stale
    writer: TableWriter | None = None
    rejects_writer: TableWriter | None = None
    rejects_schema: Any = None

    def write(self, out: Any, chunk: Chunk, kept: tuple[str, ...], rejects: list[Reject]) -> None:
        import pyarrow as pa

        if self.writer is None:
            self.writer = TableWriter(
                self.output, self.fmt, out.schema, dictionary_columns=SCORE_COLUMNS[1:]
            )
            types = dict(zip(REJECT_COLUMNS, (pa.int64(), pa.string(), pa.string()), strict=True))
            fields = [pa.field(name, kind) for name, kind in types.items()]
            self.rejects_schema = pa.schema(fields + [chunk.table.schema.field(n) for n in kept])
        self.writer.write(out)
        if self.rejects is None:
            return
        if (rejects or self.rejects_always) and self.rejects_writer is None:
            self.rejects_writer = TableWriter(self.rejects, self.fmt, self.rejects_schema)
        if rejects and self.rejects_writer is not None:
            self.rejects_writer.write(_rejects_table(chunk, kept, rejects, self.rejects_schema))

    def close(self, *, keep: bool) -> None:
        """Finish both files, then move both into place; with ``keep=False``, or when
        finishing either fails, remove both (the error is raised)."""
        writers = [w for w in (self.writer, self.rejects_writer) if w is not None]
        if not keep:
            for writer in writers:
                writer.discard()
            return
        try:
            for writer in writers:
                writer.finish()
            for writer in writers:
                writer.commit()
        except BaseException:
            for writer in writers:
                writer.discard()
            raise


def empty_output(chunk: Chunk, kept: tuple[str, ...]) -> Any:
    """The output table of a chunk without rows: the kept columns, then the score columns."""
    import pyarrow as pa

    columns = [*chunk.table.select(list(kept)).columns] if kept else []
    no_text = arrow_categories([], [])
    columns += [arrow_numbers(np.empty(0)), no_text, no_text]
    return pa.Table.from_arrays(columns, names=[*kept, *SCORE_COLUMNS])
