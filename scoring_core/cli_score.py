"""What ``scoring score`` does: score a file in chunks through the chain, nothing lost.

The command and its options are declared in :mod:`scoring_core.cli`, which imports this
module only when the command runs (so ``scoring --help`` stays fast). Every input row
ends up either in the output (scored) or in the rejects file (its row number, the
offending column and the reason): rows in = scored + rejected, always.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from scoring_core.cli import EXIT_OK, EXIT_PROBLEM, EXIT_UNEXPECTED
from scoring_core.config import did_you_mean
from scoring_core.errors import ChainExhaustedError
from scoring_core.table_io import (
    STDIO,
    Chunk,
    DataFileError,
    TableReader,
    TableWriter,
    WriteBehind,
    arrow_integers,
    arrow_numbers,
    arrow_strings,
    display_name,
    empty_strings,
    feature_matrix,
    file_format,
    map_in_order,
    open_reader,
    read_ahead,
    require_pyarrow,
)

if TYPE_CHECKING:
    from scoring_core.engine import Engine
    from scoring_core.features import PreparedBatch

__all__ = [
    "check_columns",
    "checked_rows",
    "default_rejects_path",
    "feature_defaults",
    "open_input",
    "score_command",
]

SCORE_COLUMNS = ("score", "scorer", "fallback_reason")
REJECT_COLUMNS = ("row", "column", "error")
Reject = tuple[int, int, str, str]  # row number, position in the chunk (-1: unparsed), column, why


def feature_defaults(engine: Engine) -> dict[str, float]:
    """Features with a ``default:``, which may be absent from the input."""
    return engine.feature_defaults


def check_columns(reader: TableReader, engine: Engine, defaults: dict[str, float]) -> None:
    """A feature column that is absent and has no default is an error before any scoring."""
    others = [c for c in reader.columns if c not in engine.feature_names]
    for index, name in enumerate(engine.feature_names):
        if name not in reader.columns and name not in defaults:
            raise DataFileError(
                f"{reader.name} has no column {name!r} (feature {index + 1} of "
                f"{len(engine.feature_names)}), and the feature has no default"
                f"{did_you_mean(name, others)}",
                file=reader.name,
                column=name,
            )


def _kept_columns(reader: TableReader, engine: Engine, keep: str | None) -> tuple[str, ...]:
    choice = (keep or "").strip()
    if keep is None:
        kept = tuple(c for c in reader.columns if c not in engine.feature_names)
    elif choice.lower() == "all":
        kept = reader.columns
    elif choice.lower() in ("none", ""):
        kept = ()
    else:
        kept = tuple(dict.fromkeys(c.strip() for c in choice.split(",") if c.strip()))
        for name in kept:
            if name not in reader.columns:
                raise click.BadParameter(
                    f"{reader.name} has no column {name!r}{did_you_mean(name, reader.columns)}",
                    param_hint="--keep",
                )
    clash = [c for c in kept if c in SCORE_COLUMNS]
    if clash:
        raise click.BadParameter(
            f"the input column {clash[0]!r} would clash with the output column of that name; "
            "choose the columns to keep, e.g. --keep id (or --keep none)",
            param_hint="--keep",
        )
    return kept


def default_rejects_path(output: str, fmt: str) -> str:
    """``out.csv`` -> ``out.rejects.csv``; for stdout, ``rejects.<fmt>`` in this folder."""
    if output == STDIO:
        return f"rejects.{fmt}"
    path = Path(output)
    return str(path.with_name(f"{path.stem}.rejects{path.suffix or '.' + fmt}"))


@contextmanager
def open_input(path: str, fmt: str) -> Iterator[TableReader]:
    reader = open_reader(path, fmt)
    try:
        yield reader
    finally:
        reader.close()


# -- one chunk ----------------------------------------------------------------------------------


def checked_rows(
    engine: Engine, chunk: Chunk, X: Any, problems: dict[int, tuple[str, str]]
) -> tuple[PreparedBatch, list[Reject]]:
    """Check a chunk's feature matrix; returns the prepared rows and the rejects, in order."""
    prepared = engine.prepare_batch(X)
    rows = chunk.rows
    rejects: list[Reject] = [(row, -1, "", f"the row {why}") for row, why in chunk.broken]
    for position, (column, why) in problems.items():
        rejects.append((int(rows[position]), position, column, why))
    for error in prepared.errors:
        position = int(error.row or 0)
        if position in problems:
            continue
        message = str(error)
        if message.startswith("row ") and ": " in message:  # the row has its own column
            message = message.split(": ", 1)[1]
        rejects.append((int(rows[position]), position, error.feature or "", message))
    rejects.sort()
    return prepared, rejects


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


def _output_table(chunk: Chunk, kept: tuple[str, ...], prepared: Any, result: Any) -> Any:
    import pyarrow as pa

    from scoring_core.results import EXHAUSTED_SCORER

    columns: list[Any] = []
    if kept:
        passthrough = chunk.table.select(list(kept))
        if prepared.rows.shape[0] != chunk.table.num_rows:
            passthrough = passthrough.take(arrow_integers(prepared.rows))
        columns.extend(passthrough.columns)
    names = arrow_strings([*result.step_names, EXHAUSTED_SCORER])
    scorers = names.take(arrow_integers(result.scorer_index.astype(np.int64) % len(names)))
    fell_back = bool(result.fallback_counts())
    reasons = arrow_strings(result.fallback_reasons()) if fell_back else empty_strings(len(result))
    columns += [arrow_numbers(result.scores), scorers, reasons]
    return pa.Table.from_arrays(columns, names=[*kept, *SCORE_COLUMNS])


# -- the run ------------------------------------------------------------------------------------


@dataclass
class _Counts:
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


@dataclass
class _Target:
    """The output and rejects files, opened at the first chunk (its types fix the schema)."""

    output: str
    fmt: str
    rejects: str
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
        if (rejects or self.rejects_always) and self.rejects_writer is None:
            self.rejects_writer = TableWriter(self.rejects, self.fmt, self.rejects_schema)
        if rejects and self.rejects_writer is not None:
            self.rejects_writer.write(_rejects_table(chunk, kept, rejects, self.rejects_schema))

    def close(self, *, keep: bool) -> None:
        for writer in (self.writer, self.rejects_writer):
            if writer is not None:
                writer.close(keep=keep)


class _ExhaustedError(Exception):
    def __init__(self, error: ChainExhaustedError, row: int) -> None:
        details = "; ".join(f"{f.step}: {f.reason}" for f in error.fallbacks) or "no steps"
        super().__init__(
            f"every step of the chain failed for row {row} ({details}); no output was written. "
            "Run `scoring check` to see each step's status, or set `on_exhausted: {score: ...}` "
            "in the configuration to serve an explicit default"
        )


class _Progress:
    """A rich progress bar on stderr: rows, rows/s, and the ETA when the size is known."""

    def __init__(self, enabled: bool, reader: TableReader, label: str) -> None:
        self._bar: Any = None
        self._reader = reader
        if not enabled:
            return
        try:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
        except ImportError:  # rich is optional: no bar then
            return
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[rows]:,} rows  {task.fields[rate]} rows/s"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        total = reader.progress(0)[1]
        self._task = self._bar.add_task(label, total=total, rows=0, rate="-")
        self._started = time.perf_counter()
        self._bar.start()

    def update(self, rows: int) -> None:
        if self._bar is not None:
            done, total = self._reader.progress(rows)
            rate = rows / max(time.perf_counter() - self._started, 1e-9)
            self._bar.update(
                self._task, completed=done, total=total, rows=rows, rate=f"{rate:,.0f}"
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def run_score(
    engine: Engine,
    reader: TableReader,
    target: _Target,
    *,
    keep: str | None,
    chunk_rows: int,
    progress: _Progress,
    workers: int,
) -> _Counts:
    """Score every chunk of ``reader`` into ``target``; the files are kept only on success.

    One thread reads ahead, ``workers`` threads turn chunks into numbers and score them
    (onnxruntime, numpy and pyarrow release the GIL, so they run side by side), and one
    writes behind; the chunks are written in input order.
    """
    defaults = feature_defaults(engine)
    check_columns(reader, engine, defaults)
    kept = _kept_columns(reader, engine, keep)
    features = engine.feature_names

    def score_chunk(chunk: Chunk) -> tuple[Any, Chunk, list[Reject], Any]:
        X, problems = feature_matrix(chunk.table, features, defaults)
        prepared, rejects = checked_rows(engine, chunk, X, problems)
        try:
            result = engine.score_prepared(prepared)
        except ChainExhaustedError as exc:
            raise _ExhaustedError(exc, int(chunk.rows[exc.row])) from None
        return _output_table(chunk, kept, prepared, result), chunk, rejects, result

    chunks = reader.chunks([*features, *kept], chunk_rows, numeric=features)
    counts = _Counts()
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


def _summary(
    counts: _Counts, seconds: tuple[float, float], target: _Target, reader: TableReader
) -> list[str]:
    """The summary; ``seconds`` is (reading, scoring and writing; building the engine)."""
    adds_up = counts.rows_in == counts.scored + counts.rejected
    check = "the counts add up" if adds_up else "THE COUNTS DO NOT ADD UP: a bug, please report it"
    by_scorer = ", ".join(f"{name} {rows:,}" for name, rows in counts.by_scorer.items()) or "-"
    lines = [
        f"rows in   {counts.rows_in:>12,}  = {counts.scored:,} scored + {counts.rejected:,} "
        f"rejected ({check})",
        f"scored    {counts.scored:>12,}  by scorer: {by_scorer}",
    ]
    fell_back = sum(sum(kinds.values()) for kinds in counts.fallbacks.values())
    lines.append(
        f"fallbacks {fell_back:>12,}  (rows a step failed; see the fallback_reason column)"
    )
    for step, kinds in counts.fallbacks.items():
        detail = ", ".join(f"{kind} {rows:,}" for kind, rows in kinds.items())
        lines.append(f"          {'':>12}  step {step!r}: {detail}")
    written = target.rejects_writer is not None
    lines.append(
        f"rejected  {counts.rejected:>12,}" + (f"  -> {target.rejects}" if written else "")
    )
    rate = counts.rows_in / seconds[0] if seconds[0] > 0 else float("inf")
    lines.append(
        f"time      {seconds[0]:>12.2f} s  {rate:,.0f} rows/s "
        f"(and {seconds[1]:.2f} s to load the chain and open the input)"
    )
    lines.extend(f"note: {note}" for note in reader.notes)
    return lines


def _warn_unavailable(engine: Engine) -> None:
    for step in engine.diagnostics()["steps"]:
        if step["status"] != "ready":
            click.echo(
                f"warning: step {step['name']!r} is unavailable ({step['reason']}); its rows go "
                "to the next step",
                err=True,
            )


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
    target = _Target(
        output=output,
        fmt=out_format,
        rejects=rejects_path or default_rejects_path(output, out_format),
        rejects_always=rejects_path is not None or output != STDIO,
    )
    if output != STDIO and Path(target.rejects).resolve() == Path(output).resolve():
        raise click.UsageError("--rejects must name another file than the output")
    started = time.perf_counter()
    with Engine.from_yaml(config) as engine, open_input(input_path, in_format) as reader:
        loaded = time.perf_counter()
        _warn_unavailable(engine)
        show = progress if progress is not None else sys.stderr.isatty()
        bar = _Progress(show, reader, f"scoring {display_name(input_path)}")
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
        except _ExhaustedError as exc:
            click.echo(f"error: {exc}", err=True)
            return EXIT_PROBLEM
    seconds = (time.perf_counter() - loaded, loaded - started)
    for line in _summary(counts, seconds, target, reader):
        click.echo(line, err=True)
    if counts.rows_in != counts.scored + counts.rejected:
        return EXIT_UNEXPECTED
    if fail_on_reject and counts.rejected:
        click.echo(f"{counts.rejected:,} row(s) rejected (--fail-on-reject)", err=True)
        return EXIT_PROBLEM
    return EXIT_OK
