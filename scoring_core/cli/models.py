"""``scoring models``: commands that work on model files.

``scoring models annotate`` writes feature names, and a self-test, into an ONNX model's
metadata; the work is in :mod:`scoring_core.cli.model_annotate`, imported when it runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from scoring_core.cli.errors import debug_of, errors_reported
from scoring_core.cli.options import logging_options

__all__ = ["models"]


@click.group(
    short_help="Work on model files: `models annotate` writes feature names and a self-test."
)
def models() -> None:
    """Work on model files (annotate them for the onnx scorer)."""


@models.command(short_help="Write feature names (and a self-test) into a model's metadata.")
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--features",
    "features",
    required=True,
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="The feature names, in the model's input order: a YAML list of names or of "
    "{name, min, max} (what `features:` takes), or a text file with one name per line.",
)
@click.option(
    "-o",
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    metavar="OUT",
    help="The annotated model to write (MODEL is never changed in place without --force).",
)
@click.option("--force", is_flag=True, help="Overwrite OUT when it exists (even MODEL itself).")
@click.option(
    "--self-test",
    "rows_file",
    metavar="ROWS_FILE",
    help="Rows (CSV, JSON Lines or Parquet; feature columns by name) to score now and store "
    "as the model's self-test, run at every load.",
)
@click.option(
    "--output",
    "output",
    metavar="NAME",
    help="The output holding the score (required for the self-test of a model with several).",
)
@click.option(
    "--class",
    "label",
    metavar="LABEL",
    help="For a matrix or ZipMap output: the class whose column is the score.",
)
@click.option(
    "--column",
    type=click.IntRange(0),
    metavar="K",
    help="For a matrix or ZipMap output: the column K (0-based) that is the score.",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(0, min_open=False),
    help="Largest difference the self-test allows (default: 1e-5 times the largest score, "
    "at least 1e-5).",
)
@click.option("--model-version", metavar="TEXT", help="Also write scoring_core.model_version.")
@logging_options
@click.pass_context
def annotate(
    ctx: click.Context,
    model: Path,
    features: Path,
    out: Path,
    force: bool,
    rows_file: str | None,
    output: str | None,
    label: str | None,
    column: int | None,
    tolerance: float | None,
    model_version: str | None,
) -> None:
    """Write the feature names (and, with --self-test, golden rows) into MODEL's metadata,
    as OUT, so the onnx scorer checks them at every load."""
    from scoring_core.cli.model_annotate import OutputChoice, annotate_model

    if label is not None and column is not None:
        raise click.UsageError("pass --class or --column, not both")
    if rows_file is None and (output, label, column, tolerance) != (None, None, None, None):
        raise click.UsageError(
            "--output, --class, --column and --tolerance choose the self-test's scores: they "
            "need --self-test ROWS_FILE"
        )
    with errors_reported(debug_of(ctx)):
        done = annotate_model(
            model,
            features,
            out,
            force=force,
            rows_file=rows_file,
            choice=OutputChoice(output=output, label=label, column=column),
            tolerance=tolerance,
            model_version=model_version,
        )
    from scoring_onnx.metadata import FEATURE_NAMES_KEY, MODEL_VERSION_KEY, SELF_TEST_KEY

    names = done.names
    shown = ", ".join(names) if len(names) <= 6 else f"{', '.join(names[:3])}, ..., {names[-1]}"
    click.echo(f"wrote {done.out} (model {done.model}; inputs: {done.inputs})")
    click.echo(f"  {FEATURE_NAMES_KEY}: {len(names)} names ({shown})")
    if done.self_test is not None:
        click.echo(f"  {SELF_TEST_KEY}: {done.self_test}")
    if done.model_version is not None:
        click.echo(f"  {MODEL_VERSION_KEY}: {done.model_version}")
    if done.replaced:
        click.echo(f"  replaced the model's earlier {', '.join(done.replaced)}")
    if done.kept_self_test:
        click.echo(
            f"  kept the model's own {SELF_TEST_KEY}; pass --self-test ROWS_FILE to write a new "
            "one if the names changed"
        )
    if done.self_test is not None and (output, label, column) != (None, None, None):
        choice = ", ".join(
            part
            for part in (
                f"output: {output}" if output else "",
                f"class: {label}" if label is not None else "",
                f"column: {column}" if column is not None else "",
            )
            if part
        )
        click.echo(f"  the step's options must choose the same score ({choice})")
