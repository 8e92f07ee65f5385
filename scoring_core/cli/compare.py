"""``scoring compare``: score a file with each chain step alone and compare the steps.

The report itself is built in :mod:`scoring_core.cli.compare_report`, imported when the
command runs (so ``scoring --help`` stays fast).
"""

from __future__ import annotations

import math
import sys
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

__all__ = ["compare", "compare_command"]


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number; give a cut such as 0.7")
    return value


@click.command(short_help="Score a file with each step alone and compare the steps.")
@click.argument("input_path", metavar="INPUT")
@config_option
@click.option("--format", "fmt", type=FORMAT, help="Input format (default: from the extension).")
@click.option("--label", metavar="COLUMN", help="True outcomes: adds MSE, MAE (and AUC if 0/1).")
@click.option(
    "--threshold",
    type=float,
    default=None,
    callback=_finite,
    help="Decision cut for the agreement between steps (default: 0.7 for scores in [0, 1], "
    "the middle of output_range otherwise).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--rejects",
    "rejects_path",
    metavar="PATH",
    help="Rejects file, written when a row is rejected (default: next to INPUT, "
    "rows.csv -> rows.compare-rejects.csv).",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    metavar="FILE.png",
    help="Save score distributions and step-vs-step scatter plots (needs matplotlib).",
)
@chunk_rows_option
@metrics_option
@logging_options
@click.pass_context
def compare(ctx: click.Context, /, config: Path | None, **options: Any) -> None:
    """Score INPUT with each chain step alone and compare the steps with each other, and
    with the true outcomes in --label when given."""
    with errors_reported(debug_of(ctx)), unavailable_steps_reported_here(ctx):
        code = compare_command(config=config_path(config), **options)
    sys.exit(code)


def compare_command(
    *,
    input_path: str,
    config: Path,
    fmt: str | None,
    label: str | None,
    threshold: float | None,
    as_json: bool,
    plot: str | None,
    chunk_rows: int,
    metrics_path: str | None = None,
    rejects_path: str | None = None,
) -> int:
    """``scoring compare``: score a file with each step alone, print the report; exit code."""
    import json

    import numpy as np

    from scoring_core import process
    from scoring_core.batch.tables import check_columns, checked_rows, open_input
    from scoring_core.cli.closing import closing_reported
    from scoring_core.cli.compare_rejects import CompareRejects, default_compare_rejects_path
    from scoring_core.cli.compare_report import (
        StepScores,
        build_report,
        choose_threshold,
        print_report,
        save_plot,
    )
    from scoring_core.cli.files import check_metrics_target, file_format
    from scoring_core.cli.report import warn_unavailable
    from scoring_core.engine import Engine
    from scoring_core.errors import OutputError, did_you_mean
    from scoring_core.io import (
        STDIO,
        DataFileError,
        check_target,
        column_numbers,
        open_stream,
        require_pyarrow,
    )
    from scoring_core.metrics.textfile import written_at_exit

    open_stream(STDIO)  # the report goes there: closed (`>&-`) is said before any work
    in_format = file_format(input_path, fmt, role="input")
    require_pyarrow()
    if plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise DataFileError(
                "--plot needs matplotlib: pip install 'scoring-core[plot]'"
            ) from None
        check_target(plot, what="plot", source=input_path)
    rejected_rows = CompareRejects(
        rejects_path or default_compare_rejects_path(input_path), always=rejects_path is not None
    )
    check_target(rejected_rows.path, what="rejects file", source=input_path)
    check_metrics_target(
        metrics_path, source=input_path, others={"plot": plot, "rejects file": rejected_rows.path}
    )
    closing = closing_reported(Engine.from_yaml(config))
    with (
        closing,
        written_at_exit(closing.engine, metrics_path),
        open_input(input_path, in_format) as reader,
    ):
        engine = closing.engine
        process.startup_done()
        warn_unavailable(engine, then="every row counts as failed by it")
        defaults = engine.feature_defaults
        check_columns(reader, engine)
        if label is not None and label not in reader.columns:
            raise DataFileError(
                f"{reader.name} has no label column {label!r}{did_you_mean(label, reader.columns)}",
                column=label,
            )
        steps = [StepScores(name) for name in engine.step_names]
        labels: list[Any] = []
        label_example: Any = None  # the first value that is not a number
        label_numbers = False  # any number in the label column, rejected rows included
        rows_in = rejected = 0
        finished = False
        try:
            for chunk in reader.chunks(
                [*engine.feature_names, *([label] if label else [])], chunk_rows
            ):
                prepared, rejects = checked_rows(engine, chunk, defaults, reader.name)
                rows_in += chunk.table.num_rows + len(chunk.broken)
                rejected += len(rejects)
                rejected_rows.add(rejects)
                for step in steps:
                    run = engine.score_step(step.name, prepared.X)
                    step.add(run.scores, run.failed, run.reason, run.seconds)
                if label is not None:
                    with np.errstate(invalid="ignore"):
                        values, _, bad = column_numbers(chunk.table.column(label), label)
                    values = np.asarray(values, dtype=np.float64)
                    label_numbers = label_numbers or bool(np.isfinite(values).any())
                    labels.append(values[prepared.rows])
                    if bad and label_example is None:
                        label_example = chunk.table.column(label)[bad[0][0]].as_py()
            finished = True
        finally:
            rejected_rows.close(keep=finished)
        if rows_in == 0:
            raise DataFileError(f"{reader.name} has no rows to compare")
        if label is not None and not label_numbers:
            example = (
                f" (such as {label_example!r})"
                if label_example is not None
                else " (every value is empty)"
            )
            raise DataFileError(
                f"{reader.name}: the label column {label!r} holds no numbers{example}; --label "
                "takes the true outcome as a number (0/1 for AUC)",
                column=label,
            )
        output_range = engine.output_range
    cut = choose_threshold(threshold, output_range, [step.scores() for step in steps])
    report = build_report(
        steps,
        threshold=cut,
        label=np.concatenate(labels) if labels else None,
        label_name=label,
        rows={"in": rows_in, "compared": rows_in - rejected, "rejected": rejected},
    )
    report["rejects"] = {"file": rejected_rows.written, "reasons": rejected_rows.reasons()}
    if plot is not None:
        try:
            save_plot({step.name: step.scores() for step in steps}, plot, cut.value)
        except OSError as exc:
            raise OutputError.of(exc, plot, what="write the plot to") from None
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        print_report(report)
    for line in rejected_rows.lines():
        click.echo(line, err=True)
    if plot is not None:
        click.echo(f"plot saved to {plot}", err=True)
    if cut.value is None and as_json:  # the tables say it on stdout themselves
        click.echo(f"note: {cut.note}", err=True)
    return closing.exit_code(0)
