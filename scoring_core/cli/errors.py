"""How every command reports a failure: one clear line and an exit code, no traceback
unless ``--debug``; and the unavailable steps said once, in the command's own words."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import click

from scoring_core.cli.exit_codes import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
)
from scoring_core.errors import ScoringError

__all__ = ["debug_of", "errors_reported", "unavailable_steps_reported_here"]


@contextmanager
def errors_reported(debug: bool) -> Iterator[None]:
    """Turn our errors into one clear line and exit code 2; hide tracebacks unless --debug.

    With --debug the traceback comes first, and the exit code is the same.
    """
    try:
        yield
    except ScoringError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except (click.exceptions.Exit, click.ClickException, SystemExit):
        raise
    except KeyboardInterrupt:
        click.echo("interrupted (Ctrl-C): files it was writing are removed", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # Whoever reads standard output stopped early (`| head`): stop quietly, as Unix
        # tools do, and point standard output at nothing so the exit's flush cannot fail.
        with contextlib.suppress(AttributeError, OSError, ValueError):  # no real stdout
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_BROKEN_PIPE)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (rerun with --debug for the traceback)"
        click.echo(f"unexpected error: {type(exc).__name__}: {exc}{hint}", err=True)
        sys.exit(EXIT_UNEXPECTED)


def debug_of(ctx: click.Context) -> bool:
    return bool(ctx.find_root().obj and ctx.find_root().obj.get("debug"))


@contextmanager
def unavailable_steps_reported_here(ctx: click.Context) -> Iterator[None]:
    """The command says which steps are unavailable and why, and which failed to close, in
    its own words: the engine's log record for each would say it a second time (kept with
    -v or --debug)."""
    from scoring_core.chain.step import CLOSE_ERROR_RECORD, UNAVAILABLE_RECORD

    def first_time(record: logging.LogRecord) -> bool:
        return not hasattr(record, UNAVAILABLE_RECORD) and not hasattr(record, CLOSE_ERROR_RECORD)

    root = ctx.find_root().obj or {}
    logger = logging.getLogger("scoring_core")
    if root.get("quiet_logs"):
        logger.addFilter(first_time)
    try:
        yield
    finally:
        logger.removeFilter(first_time)
