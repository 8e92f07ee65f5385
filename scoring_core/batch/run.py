"""Scoring a table in chunks through the chain, nothing lost.

Every input row ends up either in the output (scored) or in the rejects file (its row
number, the offending column and the reason): rows in = scored + rejected, always. This is
the loop behind ``scoring score``; it knows no command line, so the distributed adapters
and the server can run it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from scoring_core.batch.pipeline import WriteBehind, map_in_order, read_ahead
from scoring_core.batch.tables import (
    OutputFiles,
    Reject,
    check_columns,
    checked_rows,
    empty_output,
    output_table,
)
from scoring_core.errors import ChainExhaustedError, DataFileError
from scoring_core.io import Chunk, TableReader

if TYPE_CHECKING:
    from scoring_core.engine import Engine
    from scoring_core.experiments.experiment import Experiment

__all__ = ["Counts", "Progress", "score_table"]


class Progress(Protocol):
    """What hears a run's progress: ``update(rows read so far)``, then ``close()``."""

    def update(self, rows: int) -> None: ...

    def close(self) -> None: ...


@dataclass
class Counts:
    """What a run did with its rows, added up chunk by chunk for the summary."""

    rows_in: int = 0
    scored: int = 0
    rejected: int = 0
    by_scorer: dict[str, int] = field(default_factory=dict)
    fallbacks: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, result: Any, rejected: int) -> None:
        self.rows_in += len(result) + rejected
        self.scored += len(result)
        self.rejected += rejected
        for name, rows in result.counts_by_scorer().items():
            self.by_scorer[name] = self.by_scorer.get(name, 0) + rows
        for step, kinds in result.fallback_counts().items():
            mine = self.fallbacks.setdefault(step, {})
            for kind, rows in kinds.items():
                mine[kind] = mine.get(kind, 0) + rows


def score_table(
    engine: Engine,
    reader: TableReader,
    target: OutputFiles,
    *,
    kept: tuple[str, ...],
    chunk_rows: int,
    workers: int,
    progress: Progress | None = None,
    experiment: Experiment | None = None,
    provenance: bool = False,
) -> Counts:
    """Score every chunk of ``reader`` into ``target``; the files are kept only on success.

    One thread reads ahead, ``workers`` threads turn chunks into numbers and score them
    (onnxruntime, numpy and pyarrow release the GIL, so they run side by side), and one
    writes behind; the chunks are written in input order. ``kept`` are the input columns
    copied to the output and the rejects file; ``progress`` hears the rows read so far;
    ``provenance`` adds the provenance columns (what produced each score).

    With ``experiment`` (whose control is ``engine``), each row is scored by its unit's
    variant, the unit read from the column the experiment names, and the output gets a
    ``variant`` column after the score columns.

    An input without rows (a CSV header alone) gets an output without rows, with its
    columns; ``counts.rows_in`` is then 0, for the caller to judge.
    """
    from scoring_core.batch import units as unit_column

    check_columns(reader, engine)
    features = engine.feature_names
    defaults = engine.feature_defaults
    field = None if experiment is None else experiment.unit_field
    if field is not None and field not in reader.columns:
        raise DataFileError(
            f"{reader.name} has no unit column {field!r} (the experiment's `unit:`)",
            file=reader.name,
            column=field,
        )

    def score_chunk(chunk: Chunk) -> tuple[Any, Chunk, list[Reject], Any]:
        prepared, rejects = checked_rows(engine, chunk, defaults, reader.name)
        units: list[str] = []
        if field is not None:
            prepared, units, missing = unit_column.split_units(chunk, prepared, field)
            if missing:
                engine.count_rejected(len(missing))
                rejects = sorted(rejects + missing)
        # From here on only the kept columns are needed: the features are in `prepared`,
        # and a chunk waiting to be written holds no more than its output.
        chunk = Chunk(chunk.table.select(list(kept)), chunk.rows, chunk.broken)
        result: Any
        try:
            if experiment is None:
                result = engine.score_prepared(prepared)
            else:
                result = experiment.score_prepared(prepared, units)
        except ChainExhaustedError as exc:
            # the same error, numbered by the input's row instead of the chunk's
            raise ChainExhaustedError(exc.fallbacks, row=int(chunk.rows[exc.row])) from None
        out = output_table(chunk, kept, prepared, result, provenance=provenance)
        if experiment is not None:
            out = out.append_column(
                unit_column.VARIANT_COLUMN, unit_column.variant_column(result.variants)
            )
        return out, chunk, rejects, result

    wanted = [*features, *kept]
    if field is not None and field not in wanted:
        wanted.append(field)
    chunks = reader.chunks(wanted, chunk_rows, numeric=features)
    counts = Counts()
    done = False
    try:
        with WriteBehind[tuple[Any, Chunk, list[Reject]]](
            lambda item: target.write(item[0], item[1], kept, item[2])
        ) as writing:
            for out, chunk, rejects, result in map_in_order(
                score_chunk, read_ahead(chunks), workers
            ):
                writing.submit((out, chunk, rejects))
                counts.add(result, len(rejects))
                if progress is not None:
                    progress.update(counts.rows_in)
        if target.writer is None:  # no rows at all: an empty output with the right columns
            empty = Chunk(reader.empty_table(kept, features), np.empty(0, dtype=np.int64))
            target.write(empty_output(empty, kept), empty, kept, [])
        done = True
    finally:
        if progress is not None:
            progress.close()
        target.close(keep=done)
    return counts
