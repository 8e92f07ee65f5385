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

import contextlib
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
    logging_options,
    metrics_option,
)

__all__ = ["score", "score_command"]


@click.command(short_help="Score a CSV, JSON Lines or Parquet file through the chain.")
@click.argument("input_path", metavar="INPUT")
@click.option(
    "-o",
    "--output",
    default=None,
    help="Output file; - is stdout (the default; given, it takes Parquet to a terminal too).",
)
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
    "--fail-on-empty",
    is_flag=True,
    help="Exit 1 when INPUT has no rows (the empty output is still written).",
)
@click.option(
    "--allow-unavailable",
    is_flag=True,
    help="Exit 0 even when a step (not marked `optional: true`) could not load.",
)
@click.option(
    "--experiment",
    "experiment_path",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Score each row with its unit's variant of this experiment (instead of --config); "
    "adds a `variant` column and writes the experiment's exposure log.",
)
@metrics_option
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
    "--dask",
    "dask_address",
    metavar="ADDRESS|local[:N]",
    help="Run on Dask: a scheduler address, or local:N worker processes on this machine. "
    "INPUT is then Parquet files (a glob or a folder) and OUTPUT a folder, one part per input.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress on stderr: a bar on a terminal, a plain line every few seconds otherwise "
    "(default: only when stderr is a terminal).",
)
@logging_options
@click.pass_context
def score(
    ctx: click.Context, /, config: Path | None, dask_address: str | None, **options: Any
) -> None:
    """Score INPUT (CSV, JSON Lines or Parquet; - for stdin) through the chain.

    The output keeps the input's other columns and adds score, scorer and
    fallback_reason, in input order. Rows with bad input go to the rejects file with
    their row number, column and reason: rows in = scored + rejected, always.

    A step that could not load makes the run exit 1 once the output is written, unless
    it is marked `optional: true` or --allow-unavailable is given.
    """
    with errors_reported(debug_of(ctx)), unavailable_steps_reported_here(ctx):
        if options.get("experiment_path"):
            if config is not None:
                raise click.UsageError("give --experiment or --config, not both")
            if dask_address is not None:
                raise click.UsageError("--experiment runs on this machine; leave out --dask")
            code = score_command(config=Path(options["experiment_path"]), **options)
        elif dask_address is not None:
            from scoring_core.cli.score_cluster import score_on_dask

            code = score_on_dask(dask_address, config=config_path(config), **options)
        else:
            code = score_command(config=config_path(config), **options)
    sys.exit(code)


def score_command(
    *,
    input_path: str,
    output: str | None,
    config: Path,
    fmt: str | None,
    input_format: str | None,
    output_format: str | None,
    keep: str | None,
    rejects_path: str | None,
    fail_on_reject: bool,
    fail_on_empty: bool = False,
    allow_unavailable: bool,
    chunk_rows: int,
    workers: int,
    progress: bool | None,
    metrics_path: str | None = None,
    experiment_path: str | None = None,
    provenance: bool = False,
) -> int:
    """``scoring score``: score a file, print the summary on stderr, return the exit code."""
    from scoring_core import process
    from scoring_core.batch.run import score_table
    from scoring_core.batch.tables import OutputFiles, default_rejects_path, open_input
    from scoring_core.cli.closing import closing_reported
    from scoring_core.cli.exit_codes import (
        EXIT_OK,
        EXIT_PROBLEM,
        EXIT_STEP_UNAVAILABLE,
        EXIT_UNEXPECTED,
    )
    from scoring_core.cli.files import check_metrics_target, file_format, kept_columns
    from scoring_core.cli.report import (
        ProgressBar,
        summary_lines,
        unavailable_at_start,
        unavailable_lines,
        warn_unavailable,
    )
    from scoring_core.engine import Engine
    from scoring_core.errors import ChainExhaustedError
    from scoring_core.io import (
        STDIO,
        check_target,
        display_name,
        is_stream,
        open_stream,
        require_pyarrow,
    )
    from scoring_core.metrics.textfile import written_at_exit
    from scoring_core.plugin_stdout import prints_to_stderr

    forced = output is not None  # `-o -` given: Parquet may go to a terminal
    output = STDIO if output is None else output
    in_format = file_format(input_path, input_format or fmt, role="input")
    # standard output, a device, a FIFO: no extension to go by; the input's format
    given = output_format or fmt or (in_format if is_stream(output) else None)
    out_format = file_format(output, given, role="output")
    if output == STDIO:
        open_stream(STDIO)  # closed (`>&-`): say so before any work
        if out_format == "parquet" and not forced and sys.stdout.isatty():
            raise click.UsageError(
                "refusing to write Parquet, a binary format, to the terminal: pass -o FILE, "
                "pipe the output to a program, or choose --output-format csv or jsonl "
                "(-o - writes it to the terminal anyway)"
            )
    require_pyarrow()
    target = OutputFiles(
        output=output,
        fmt=out_format,
        rejects=rejects_path or default_rejects_path(output, out_format),
        rejects_always=True,
    )
    check_target(output, what="output", source=input_path)
    if target.rejects is not None:
        check_target(target.rejects, what="rejects file", source=input_path)
        if output != STDIO and os.path.abspath(target.rejects) == os.path.abspath(output):
            raise click.UsageError("--rejects must name another file than the output")
    check_metrics_target(
        metrics_path, source=input_path, others={"output": output, "rejects file": target.rejects}
    )
    started = time.perf_counter()
    counts = None
    experiment = None
    with contextlib.ExitStack() as stack:
        # stdout belongs to the output: plugins print to stderr from their import on
        stack.enter_context(prints_to_stderr(output == STDIO))
        if experiment_path is not None:
            from scoring_core.experiments.experiment import Experiment

            experiment = stack.enter_context(Experiment.from_yaml(experiment_path))
        closing = closing_reported(
            experiment.control if experiment is not None else Engine.from_yaml(config)
        )
        stack.enter_context(closing)
        metered = experiment if experiment is not None else closing.engine
        stack.enter_context(written_at_exit(metered, metrics_path))
        reader = stack.enter_context(open_input(input_path, in_format))
        engine = closing.engine
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
                experiment=experiment,
                provenance=provenance,
            )
        except ChainExhaustedError as exc:
            click.echo(f"error: {exc}; no output was written", err=True)
    if counts is None:
        return closing.exit_code(EXIT_PROBLEM)
    seconds = (time.perf_counter() - loaded, loaded - started)
    first = unavailable_lines(missing, counts, allowed=allow_unavailable)
    lines = summary_lines(counts, seconds, target, reader, first_step=engine.step_names[0])
    for line in (*first, *lines):
        click.echo(line, err=True)
    code = EXIT_OK
    if experiment is not None:
        click.echo(_experiment_line(experiment), err=True)
    if counts.rows_in != counts.scored + counts.rejected:
        code = EXIT_UNEXPECTED
    elif fail_on_empty and counts.rows_in == 0:
        click.echo(f"{display_name(input_path)} has no rows (--fail-on-empty)", err=True)
        code = EXIT_PROBLEM
    elif fail_on_reject and counts.rejected:
        click.echo(f"{counts.rejected:,} row(s) rejected (--fail-on-reject)", err=True)
        code = EXIT_PROBLEM
    elif not allow_unavailable and any(not step.optional for step in missing):
        code = EXIT_STEP_UNAVAILABLE
    return closing.exit_code(code)


def _experiment_line(experiment: Any) -> str:
    """The summary's last line for ``--experiment``: the new exposures and where they went."""
    exposures = experiment.diagnostics()["experiment"]["exposures"]
    written = exposures["written"]
    split = ", ".join(f"{name} {count:,}" for name, count in written.items())
    where = f" -> {exposures['file']}" if exposures["file"] else ""
    return (
        f"experiment   {experiment.name}: {sum(written.values()):,} new exposure(s) "
        f"({split}){where}"
    )
