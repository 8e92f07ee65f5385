"""``scoring init [DIR]``: write a commented starter project: ``scoring.yaml``, the features
file, the shipped model and a sample CSV, from the package's own data, so ``scoring check``
and ``scoring score sample.csv -o out.csv`` work at once, outside a clone too."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

from scoring_core.cli.errors import debug_of, errors_reported
from scoring_core.cli.exit_codes import EXIT_USAGE
from scoring_core.cli.options import logging_options

__all__ = ["STARTER_FILES", "init", "starter_file"]

# What `scoring init` writes, in this order.
STARTER_FILES = (
    "scoring.yaml",
    "calling_score_features.yaml",
    "calling_score_model.onnx",
    "sample.csv",
)


# Where a clone keeps a starter file under models/, when its name differs.
_CHECKOUT_PATHS = {"calling_score_model.onnx": "calling_score/1/model.onnx"}


def starter_file(name: str) -> Path:
    """A starter file: in the installed package (``scoring_core/starter/``, where the wheel
    puts the model and the features file too), else in the checkout's ``models/`` (an
    editable install of a clone)."""
    package = Path(__file__).resolve().parent.parent
    in_checkout = _CHECKOUT_PATHS.get(name, name)
    for candidate in (package / "starter" / name, package.parent / "models" / in_checkout):
        if candidate.is_file():
            return candidate
    raise click.ClickException(
        f"this installation of scoring-core has no starter file {name!r} "
        f"(looked in {package / 'starter'}); reinstall it: pip install --force-reinstall "
        "scoring-core"
    )


@click.command(short_help="Write a starter: scoring.yaml, the features, the model, a sample.")
@click.argument(
    "folder",
    metavar="[DIR]",
    required=False,
    default=".",
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option("--force", is_flag=True, help="Overwrite the starter files already in DIR.")
@logging_options
@click.pass_context
def init(ctx: click.Context, folder: Path, force: bool) -> None:
    """Write a commented starter project into DIR (default: this folder; created if
    missing): scoring.yaml (the model first, the formula second), the features file, the
    shipped model and sample.csv. Files already there are never overwritten without
    --force."""
    with errors_reported(debug_of(ctx)):
        sources = [starter_file(name) for name in STARTER_FILES]
        targets = [folder / name for name in STARTER_FILES]
        there = [str(t) for t in targets if t.exists() or t.is_symlink()]
        if there and not force:
            click.echo(
                f"error: not overwriting {', '.join(there)}: pass --force to replace "
                f"{'it' if len(there) == 1 else 'them'}, or choose another folder "
                "(scoring init DIR)",
                err=True,
            )
            sys.exit(EXIT_USAGE)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for source, target in zip(sources, targets, strict=True):
                if target.is_dir():
                    raise click.ClickException(f"{target} is a folder; remove it or choose DIR")
                shutil.copyfile(source, target)
        except OSError as exc:
            raise click.ClickException(
                f"cannot write the starter into {folder}: {exc.strerror or exc}"
            ) from None
        for target in targets:
            click.echo(f"wrote {target}")
        go = "" if folder == Path(".") else f"cd {folder} && "
        click.echo(
            f"next: {go}scoring check && scoring score sample.csv -o scored.csv "
            "(scoring.yaml's comments say what to change)"
        )
