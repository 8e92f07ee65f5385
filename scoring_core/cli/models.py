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
    short_help="Model files: annotate, and the versions of a step: list, promote, rollback."
)
def models() -> None:
    """Work on model files: annotate them; list versions, promote and roll back labels."""


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


def _default_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a container without one)
        return "unknown"


_BY = click.option(
    "--by",
    metavar="NAME",
    default=_default_user,
    show_default="your user name",
    help="Who moves the label, as recorded in the history file.",
)


@models.command("list", short_help="The versions of each onnx step: sha256, checks, labels.")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--step", "step_name", metavar="STEP", help="Only this step.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_command(ctx: click.Context, config: Path, step_name: str | None, as_json: bool) -> None:
    """List the model versions of CONFIG's steps: sha256, checks, labels, what is served.

    Every version is loaded and checked the way the engine would serve it."""
    import json

    from scoring_core.cli.model_versions import find_step, list_versions, versioned_steps

    with errors_reported(debug_of(ctx)):
        steps = [find_step(config, step_name)] if step_name else versioned_steps(config)
        listed = [list_versions(config, step) for step in steps]
    if as_json:
        click.echo(json.dumps({"config": str(config), "steps": listed}, indent=2))
        return
    if not listed:
        click.echo(f"{config}: no step's `model:` names a folder of versions")
    for entry in listed:
        policy = entry["version_policy"]
        if isinstance(policy, str) and policy in entry["labels"]:
            policy = f"{policy} -> {entry['labels'][policy]}"
        serves = entry["serves"] if entry["serves"] is not None else "nothing (no version passes)"
        click.echo(
            f"step {entry['step']}: {entry['model_dir']} (version: {policy}; serves {serves})"
        )
        click.echo(f"  {'version':>7}  {'sha256':<16}  {'pinned':<6}  {'labels':<16}  checks")
        for v in entry["versions"]:
            sha = (v["sha256"] or "-")[:16]
            pinned = "yes" if v["pinned_sha256"] else "-"
            labels = ", ".join(v["labels"]) or "-"
            checks = (
                f"passed, self-test {v['self_test']}"
                if v["checks_passed"]
                else f"FAILED: {v['reason']}"
            )
            click.echo(f"  {v['version']:>7}  {sha:<16}  {pinned:<6}  {labels:<16}  {checks}")
        dangling = sorted(
            f"{k} -> {n}"
            for k, n in entry["labels"].items()
            if all(v["version"] != n for v in entry["versions"])
        )
        if dangling:
            click.echo(f"  labels naming no version folder: {', '.join(dangling)}")


def _report_move(
    config: Path, step: str, label: str, version: int | None, by: str, debug: bool
) -> None:
    from scoring_core.cli.exit_codes import EXIT_PROBLEM
    from scoring_core.cli.model_versions import LabelMoveError, move_label
    from scoring_core.models import HISTORY_FILE

    with errors_reported(debug):
        try:
            move, check = move_label(config, step, label, version, by=by)
        except LabelMoveError as exc:
            click.echo(f"refused: {exc}", err=True)
            raise SystemExit(EXIT_PROBLEM) from None
    if move is None:
        click.echo(
            f"label {label} of step {step} already points at version {check.version}; nothing moved"
        )
        return
    was = move.from_version if move.from_version is not None else "no version"
    click.echo(
        f"{move.action}: label {label} of step {step}: {was} -> {move.to_version} "
        f"(by {move.by}, {move.ts})"
    )
    click.echo(
        f"  version {check.version}: checks passed, self-test {check.self_test}; "
        f"sha256 {check.sha256}"
    )
    click.echo(f"  recorded in {check.path.parent.parent / HISTORY_FILE}")
    click.echo(
        "  a running engine serves it after its next reload (`watch:` picks the labels file "
        "up by itself)"
    )


@models.command(short_help="Point LABEL of STEP at VERSION, once it loads and passes.")
@click.argument("config", type=click.Path(path_type=Path))
@click.argument("step")
@click.argument("label")
@click.argument("version", type=click.IntRange(0))
@_BY
@click.pass_context
def promote(ctx: click.Context, config: Path, step: str, label: str, version: int, by: str) -> None:
    """Point LABEL of STEP at VERSION, once VERSION loads and passes its self-test; the move
    is appended to the history file beside the labels."""
    _report_move(config, step, label, version, by, debug_of(ctx))


@models.command(short_help="Point LABEL of STEP back where it was before its last move.")
@click.argument("config", type=click.Path(path_type=Path))
@click.argument("step")
@click.argument("label")
@_BY
@click.pass_context
def rollback(ctx: click.Context, config: Path, step: str, label: str, by: str) -> None:
    """Point LABEL of STEP back at the version it had before its last promotion (from the
    history file), once that version loads and passes its self-test."""
    _report_move(config, step, label, None, by, debug_of(ctx))
