"""What ``scoring score`` does: score a file in chunks through the chain, nothing lost.

The command and its options are declared in :mod:`scoring_core.cli`, which imports this
module only when the command runs (so ``scoring --help`` stays fast). Every input row
ends up either in the output (scored) or in the rejects file (its row number, the
offending column and the reason): rows in = scored + rejected, always.

This module holds the command and the run: one thread reads ahead, worker threads score,
one writes behind. The input's columns and rows, each chunk's output and rejects tables
and the two files are in :mod:`scoring_core.score_tables` (``scoring compare`` checks its
input with it too); what the user sees on stderr, the warnings, the progress bar and the
summary, is in :mod:`scoring_core.score_report`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from scoring_core import process
from scoring_core.cli import EXIT_OK, EXIT_PROBLEM, EXIT_UNEXPECTED
from scoring_core.errors import ChainExhaustedError
from scoring_core.score_report import Counts, ProgressBar, summary_lines, warn_unavailable
from scoring_core.score_tables import (
    OutputFiles,
    Reject,
    check_columns,
    checked_rows,
    default_rejects_path,
    kept_columns,
    open_input,
    output_table,
)
from scoring_core.table_io import (
    STDIO,
    Chunk,
    DataFileError,
    TableReader,
    WriteBehind,
    check_target,
    display_name,
    file_format,
    map_in_order,
    read_ahead,
    require_pyarrow,
)

if TYPE_CHECKING:
    from scoring_core.engine import Engine

__all__ = ["score_command"]


def run_score(
    engine: Engine,
    reader: TableReader,
    target: OutputFiles,
    *,
    keep: str | None,
    chunk_rows: int,
    progress: ProgressBar,
    workers: int,
) -> Counts:
    """Score every chunk of ``reader`` into ``target``; the files are kept only on success.

    One thread reads ahead, ``workers`` threads turn chunks into numbers and score them
    (onnxruntime, numpy and pyarrow release the GIL, so they run side by side), and one
    writes behind; the chunks are written in input order.
    """
    check_columns(reader, engine)
    kept = kept_columns(reader, engine, keep)
    features = engine.feature_names
    defaults = engine.feature_defaults

    def score_chunk(chunk: Chunk) -> tuple[Any, Chunk, list[Reject], Any]:
        prepared, rejects = checked_rows(engine, chunk, defaults, reader.name)
        # From here on only the kept columns are needed: the features are in `prepared`,
        # and a chunk waiting to be written holds no more than its output.
        chunk = Chunk(chunk.table.select(list(kept)), chunk.rows, chunk.broken)
        try:
            result = engine.score_prepared(prepared)
        except ChainExhaustedError as exc:
            # the same error, numbered by the input's row instead of the chunk's
            raise ChainExhaustedError(exc.fallbacks, row=int(chunk.rows[exc.row])) from None
        return output_table(chunk, kept, prepared, result), chunk, rejects, result

    chunks = reader.chunks([*features, *kept], chunk_rows, numeric=features)
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
                progress.update(counts.rows_in)
        if counts.rows_in == 0:
            raise DataFileError(f"{reader.name} has no rows to score (a header alone, or empty)")
        done = True
    finally:
        progress.close()
        target.close(keep=done)
    return counts


def score_command(
    *,
    input_path: str,
    output: str,
    config: Path,
    fmt: str | None,
    input_format: str | None,
    output_format: str | None,
    keep: str | None,
    rejects_path: str | None,
    fail_on_reject: bool,
    chunk_rows: int,
    workers: int,
    progress: bool | None,
) -> int:
    """``scoring score``: score a file, print the summary on stderr, return the exit code."""
    from scoring_core.engine import Engine

    in_format = file_format(input_path, input_format or fmt, role="input")
    given = output_format or fmt or (in_format if output == STDIO else None)
    out_format = file_format(output, given, role="output")
    require_pyarrow()
    target = OutputFiles(
        output=output,
        fmt=out_format,
        rejects=rejects_path or default_rejects_path(output, out_format),
        rejects_always=rejects_path is not None or output != STDIO,
    )
    check_target(output, what="output", source=input_path)
    check_target(target.rejects, what="rejects file", source=input_path)
    if output != STDIO and os.path.abspath(target.rejects) == os.path.abspath(output):
        raise click.UsageError("--rejects must name another file than the output")
    started = time.perf_counter()
    with Engine.from_yaml(config) as engine, open_input(input_path, in_format) as reader:
        loaded = time.perf_counter()
        process.startup_done()
        warn_unavailable(engine)
        show = progress if progress is not None else sys.stderr.isatty()
        name = display_name(input_path) if input_path == STDIO else Path(input_path).name
        bar = ProgressBar(show, reader, name)
        try:
            counts = run_score(
                engine,
                reader,
                target,
                keep=keep,
                chunk_rows=chunk_rows,
                workers=workers,
                progress=bar,
            )
        except ChainExhaustedError as exc:
            click.echo(f"error: {exc}; no output was written", err=True)
            return EXIT_PROBLEM
    seconds = (time.perf_counter() - loaded, loaded - started)
    for line in summary_lines(counts, seconds, target, reader):
        click.echo(line, err=True)
    if counts.rows_in != counts.scored + counts.rejected:
        return EXIT_UNEXPECTED
    if fail_on_reject and counts.rejected:
        click.echo(f"{counts.rejected:,} row(s) rejected (--fail-on-reject)", err=True)
        return EXIT_PROBLEM
    return EXIT_OK
