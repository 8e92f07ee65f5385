"""How every command reports a failure: one clear line and an exit code, no traceback
unless ``--debug``; and the unavailable steps said once, in the command's own words."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import click

from scoring_core.cli.exit_codes import (
    EXIT_BROKEN_PIPE,
    EXIT_ENVIRONMENT,
    EXIT_INTERRUPTED,
    EXIT_SIGNAL_BASE,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
)
from scoring_core.errors import OutputError, ScoringError

__all__ = ["debug_of", "errors_reported", "unavailable_steps_reported_here"]


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwind (removing the files being written) and exit."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def _terminate(signum: int, frame: object) -> None:
    # A second signal while the command cleans up stops it at once (default action).
    signal.signal(signum, signal.SIG_DFL)
    raise Terminated(signum)


@contextmanager
def _stopping_signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Terminated` in the main thread, as SIGINT raises
    KeyboardInterrupt, so ``finally`` blocks remove temporary files; restored after."""
    names = ("SIGTERM", "SIGHUP")
    numbers = [getattr(signal, n) for n in names if hasattr(signal, n)]
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {number: signal.signal(number, _terminate) for number in numbers}
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


@contextmanager
def errors_reported(debug: bool) -> Iterator[None]:
    """Turn our errors into one clear line and exit code 2; hide tracebacks unless --debug.

    With --debug the traceback comes first, and the exit code is the same. The system's
    refusals (a full disk, a read-only filesystem) exit 74 naming the file; SIGTERM and
    SIGHUP stop the command as Ctrl-C does, exiting 128 + the signal.
    """
    if sys.stderr is None:  # started with standard error closed (`2>&-`): nowhere to report
        sys.exit(EXIT_ENVIRONMENT)
    try:
        with _stopping_signals_raise():
            yield
    except OutputError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ENVIRONMENT)
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
    except Terminated as exc:
        click.echo(f"stopped by {exc}: files it was writing are removed", err=True)
        sys.exit(EXIT_SIGNAL_BASE + exc.signum)
    except BrokenPipeError:
        # Whoever reads standard output stopped early (`| head`): stop quietly, as Unix
        # tools do, and point standard output at nothing so the exit's flush cannot fail.
        with contextlib.suppress(AttributeError, OSError, ValueError):  # no real stdout
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_BROKEN_PIPE)
    except OSError as exc:  # the system refused a file outside the writers
        if debug:
            traceback.print_exc()
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"error: {where}{exc.strerror or exc}", err=True)
        sys.exit(EXIT_ENVIRONMENT)
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
