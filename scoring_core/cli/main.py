"""The ``scoring`` command group and its entry point; each command is a module of its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from scoring_core import process
from scoring_core.cli.check import check
from scoring_core.cli.compare import compare
from scoring_core.cli.experiment import experiment
from scoring_core.cli.init import init
from scoring_core.cli.models import models
from scoring_core.cli.options import set_logging
from scoring_core.cli.plugin_list import plugins
from scoring_core.cli.score import score
from scoring_core.cli.serve import serve

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="scoring-core")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int) -> None:
    """Score rows through a YAML fallback chain of scorer plugins.

    --debug and -v work before or after the command's name.
    """
    ctx.obj = {}
    set_logging(ctx, debug=debug, verbose=verbose)


cli.add_command(check)
cli.add_command(plugins)
cli.add_command(score)
cli.add_command(compare)
cli.add_command(models)
cli.add_command(init)
cli.add_command(serve)
cli.add_command(experiment)


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``scoring`` console script (click exits the process)."""
    command: Callable[..., Any] = cli
    if argv is None:  # this process is the command's: set it up (scoring_core.process)
        process.start()
    try:
        return command(args=argv, prog_name="scoring")
    finally:
        if argv is None:
            process.finish()
