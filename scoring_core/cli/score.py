"""What ``scoring score`` does: score a file in chunks through the chain, nothing lost.

The command and its options are declared in :mod:`scoring_core.cli.main`, which imports this
module only when the command runs (so ``scoring --help`` stays fast). Every input row
ends up either in the output (scored) or in the rejects file (its row number, the
offending column and the reason): rows in = scored + rejected, always.

The run itself (one thread reads ahead, worker threads score, one writes behind) is
:func:`scoring_core.batch.run.score_table`; the input's columns and rows, each chunk's
output and rejects tables and the two files are in :mod:`scoring_core.batch.tables`
(``scoring compare`` checks its input with it too); what the user sees on stderr, the
warnings, the progress bar and the summary, is in :mod:`scoring_core.cli.report`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from scoring_core.cli.errors import debug_of, errors_reported, unavailable_steps_reported_here
from scoring_core.cli.options import (
    FORMAT,
    chunk_rows_option,
    config_option,
    config_path,
)

__all__ = ["score", "score_command"]


@click.command()
@click.argument("input_path", metavar="INPUT")
@click.option("-o", "--output", default="-", show_default=True, help="Output file; - is stdout.")
@config_option
@click.option("--format", "fmt", type=FORMAT, help="Format of both input and output.")
@click.option("--input-format", type=FORMAT, help="Input format (default: from the extension).")
@click.option("--output-format", type=FORMAT, help="Output format (default: from the extension).")
@click.option(
    "--keep",
    metavar="COLS",
    help="Input columns copied to the output: a,b,c | all | none (default: the non-feature ones).",
)
@click.option(
    "--rejects",
    "rejects_path",
    metavar="PATH",
    help="Rejects file (default: next to OUTPUT, out.csv -> out.rejects.csv).",
)
@click.option("--fail-on-reject", is_flag=True, help="Exit 1 when any row was rejected.")
@click.option(
    "--allow-unavailable",
    is_flag=True,
    help="Exit 0 even when a step (not marked `optional: true`) could not load.",
)
@click.option(
    "--provenance",
    is_flag=True,
    help="Add what produced each score: chain, step_scorer, model_version, model_sha256, "
    "config_sha256.",
)
@chunk_rows_option
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=lambda: min(os.cpu_count() or 1, 4),
    show_default="CPUs, at most 4",
    help="Threads that convert and score chunks (1: in the main thread).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: only when stderr is a terminal).",
)
@click.pass_context
def score(ctx: click.Context, /, config: Path | None, **options: Any) -> None:
    """Score INPUT (CSV, JSON Lines or Parquet; - for stdin) through the chain.

    The output keeps the input's other columns and adds score, scorer and
    fallback_reason, in input order. Rows with bad input go to the rejects file with
    their row number, column and reason: rows in = scored + rejected, always.

    A step that could not load makes the run exit 1 once the output is written, unless
    it is marked `optional: true` or --allow-unavailable is given.
    """
    with errors_reported(debug_of(ctx)), unavailable_steps_reported_here(ctx):
        code = score_command(config=config_path(config), **options)
    sys.exit(code)


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
    allow_unavailable: bool,
    chunk_rows: int,
    workers: int,
    progress: bool | None,
    provenance: bool = False,
) -> int:
    """``scoring score``: score a file, print the summary on stderr, return the exit code."""
    from scoring_core import process
    from scoring_core.batch.run import score_table
    from scoring_core.batch.tables import OutputFiles, default_rejects_path, open_input
    from scoring_core.cli.exit_codes import (
        EXIT_OK,
        EXIT_PROBLEM,
        EXIT_STEP_UNAVAILABLE,
        EXIT_UNEXPECTED,
    )
    from scoring_core.cli.files import file_format, kept_columns
    from scoring_core.cli.report import (
        ProgressBar,
        summary_lines,
        unavailable_at_start,
        unavailable_lines,
        warn_unavailable,
    )
    from scoring_core.engine import Engine
    from scoring_core.errors import ChainExhaustedError
    from scoring_core.io import STDIO, check_target, display_name, require_pyarrow

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
        missing = unavailable_at_start(engine)
        warn_unavailable(engine)
        show = progress if progress is not None else sys.stderr.isatty()
        name = display_name(input_path) if input_path == STDIO else Path(input_path).name
        bar = ProgressBar(show, reader, name)
        try:
            counts = score_table(
                engine,
                reader,
                target,
                kept=kept_columns(reader, engine, keep),
                chunk_rows=chunk_rows,
                workers=workers,
                progress=bar,
                provenance=provenance,
            )
        except ChainExhaustedError as exc:
            click.echo(f"error: {exc}; no output was written", err=True)
            return EXIT_PROBLEM
    seconds = (time.perf_counter() - loaded, loaded - started)
    first = unavailable_lines(missing, counts, allowed=allow_unavailable)
    for line in (*first, *summary_lines(counts, seconds, target, reader)):
        click.echo(line, err=True)
    if counts.rows_in != counts.scored + counts.rejected:
        return EXIT_UNEXPECTED
    if fail_on_reject and counts.rejected:
        click.echo(f"{counts.rejected:,} row(s) rejected (--fail-on-reject)", err=True)
        return EXIT_PROBLEM
    if not allow_unavailable and any(not step.optional for step in missing):
        return EXIT_STEP_UNAVAILABLE
    return EXIT_OK
