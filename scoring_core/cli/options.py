"""Options several commands share, and finding the configuration file."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = [
    "CHUNK_ROWS",
    "FORMAT",
    "chunk_rows_option",
    "config_option",
    "config_path",
    "log_level",
    "logging_options",
    "metrics_option",
    "set_logging",
]

DEFAULT_CONFIG = "scoring.yaml"

config_option = click.option(
    "--config",
    "-c",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"The chain's YAML file (default: ./{DEFAULT_CONFIG}).",
)

FORMAT = click.Choice(["csv", "jsonl", "parquet", "json", "ndjson", "pq"], case_sensitive=False)
CHUNK_ROWS = 16_384
chunk_rows_option = click.option(
    "--chunk-rows",
    type=click.IntRange(1),
    default=CHUNK_ROWS,
    show_default=True,
    help="Rows read and scored at a time (memory grows with it).",
)

metrics_option = click.option(
    "--metrics",
    "metrics_path",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    default=None,
    help="Write the run's final metrics to FILE in Prometheus text format (needs the serve "
    "extra); for a node exporter's textfile collector or a Pushgateway.",
)


def config_path(config: Path | None, positional: Path | None = None) -> Path:
    """The config file: the positional CONFIG or ``--config`` (not both), else ./scoring.yaml."""
    if config is not None and positional is not None:
        raise click.UsageError(
            f"two configurations given: CONFIG {str(positional)!r} and --config "
            f"{str(config)!r}; pass one of them"
        )
    path = positional or config or Path(DEFAULT_CONFIG)
    if not path.exists():
        raise click.UsageError(
            f"no configuration at {str(path)!r}: there is no such file"
            if config or positional
            else f"no {DEFAULT_CONFIG} in {Path.cwd()}; pass one with --config FILE"
        )
    return path


def log_level(debug: bool, verbose: int) -> int:
    """-v: INFO; -vv or --debug: DEBUG; otherwise WARNING."""
    if verbose > 1 or debug:
        return logging.DEBUG
    return logging.INFO if verbose == 1 else logging.WARNING


def set_logging(ctx: click.Context, *, debug: bool = False, verbose: int = 0) -> None:
    """Record --debug and -v on the root context (what every command reads) and set the log
    level; given again after the command name, they add to what came before it."""
    root = ctx.find_root()
    state = root.obj if isinstance(root.obj, dict) else {}
    debug = debug or bool(state.get("debug"))
    verbose = max(verbose, int(state.get("verbose", 0)))
    level = log_level(debug, verbose)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    state.update(debug=debug, verbose=verbose, quiet_logs=level == logging.WARNING)
    root.obj = state


Command = TypeVar("Command", bound=Callable[..., Any])


def _debug_given(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        set_logging(ctx, debug=True)


def _verbose_given(ctx: click.Context, _param: click.Parameter, value: int) -> None:
    if value:
        set_logging(ctx, verbose=value)


def logging_options(command: Command) -> Command:
    """``--debug`` and ``-v`` on a command too, so ``scoring score ... --debug`` works as
    ``scoring --debug score ...`` does."""
    command = click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_verbose_given,
        help="More log output (-v info, -vv debug); also before the command.",
    )(command)
    return click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        callback=_debug_given,
        help="Show tracebacks and debug logs; also before the command.",
    )(command)
