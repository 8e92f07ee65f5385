"""The ``scoring`` command line.

Exit codes (every command):

* 0: success
* 1: the work ran but found a problem (``check``: a step is unavailable; ``score``:
  a row was rejected and ``--fail-on-reject`` is set, or every step failed for a row
  and the config says ``on_exhausted: raise``, in which case no output is written)
* 2: usage error, bad configuration, or bad input (the message says which; for ``score``
  and ``compare``: an unreadable, empty or truncated file, a missing column, a column of
  a type that cannot hold numbers). Bad values in single rows are not exit 2: those rows
  go to the rejects file
* 3: an unexpected error (rerun with ``--debug`` for the traceback)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from scoring_core import process
from scoring_core.errors import ScoringError

__all__ = ["main"]

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_UNEXPECTED = 3
EXIT_INTERRUPTED = 130  # what a shell reports for a command Ctrl-C stopped (128 + SIGINT)
EXIT_BROKEN_PIPE = 141  # what a shell reports for a command SIGPIPE stopped (128 + 13)
DEFAULT_CONFIG = "scoring.yaml"

config_option = click.option(
    "--config",
    "-c",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"The chain's YAML file (default: ./{DEFAULT_CONFIG}).",
)


@contextmanager
def _errors_reported(debug: bool) -> Iterator[None]:
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


def _config_path(config: Path | None, positional: Path | None = None) -> Path:
    path = positional or config or Path(DEFAULT_CONFIG)
    if not path.exists():
        raise click.UsageError(
            f"no configuration at {str(path)!r}: there is no such file"
            if config or positional
            else f"no {DEFAULT_CONFIG} in {Path.cwd()}; pass one with --config FILE"
        )
    return path


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="scoring-core")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int) -> None:
    """Score rows through a YAML fallback chain of scorer plugins."""
    level = logging.WARNING
    if verbose == 1:
        level = logging.INFO
    elif verbose > 1 or debug:
        level = logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"debug": debug, "quiet_logs": level == logging.WARNING}


def _debug(ctx: click.Context) -> bool:
    return bool(ctx.find_root().obj and ctx.find_root().obj.get("debug"))


@contextmanager
def _unavailable_steps_reported_here(ctx: click.Context) -> Iterator[None]:
    """The command says which steps are unavailable and why, in its own words: the
    engine's log record for each would say it a second time (kept with -v or --debug)."""
    from scoring_core.steps import UNAVAILABLE_RECORD

    def first_time(record: logging.LogRecord) -> bool:
        return not hasattr(record, UNAVAILABLE_RECORD)

    root = ctx.find_root().obj or {}
    logger = logging.getLogger("scoring_core")
    if root.get("quiet_logs"):
        logger.addFilter(first_time)
    try:
        yield
    finally:
        logger.removeFilter(first_time)


@cli.command()
@click.argument("config_arg", required=False, type=click.Path(dir_okay=False, path_type=Path))
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the full diagnostics as JSON.")
@click.pass_context
def check(ctx: click.Context, config_arg: Path | None, config: Path | None, as_json: bool) -> None:
    """Load every step and report its status; exit 1 if any step is unavailable."""
    from scoring_core.engine import Engine

    with _errors_reported(_debug(ctx)), _unavailable_steps_reported_here(ctx):
        path = _config_path(config, config_arg)
        with Engine.from_yaml(path) as engine:
            process.startup_done()
            diagnostics = engine.diagnostics()
    steps = diagnostics["steps"]
    if as_json:
        click.echo(json.dumps(diagnostics, indent=2))
    else:
        click.echo(f"{path}: {len(steps)} step(s), {diagnostics['engine']['features']} features")
        width = max(len(s["name"]) for s in steps)
        for step in steps:
            origin = step["plugin"] + (f" {step['version']}" if step.get("version") else "")
            line = f"  {step['name']:<{width}}  {step['status']:<11}  scorer={step['scorer']}"
            line += f" ({origin}), loaded in {step['load_ms']:.1f} ms"
            if step["status"] != "ready":
                line = f"  {step['name']:<{width}}  {step['status']:<11}  scorer={step['scorer']}"
                line += f"\n  {'':<{width}}  reason: {step['reason']}"
            click.echo(line)
        failed_plugins = [p for p in diagnostics["plugins"] if p["error"]]
        for plugin in failed_plugins:
            click.echo(f"  plugin {plugin['name']!r} failed to load: {plugin['error']}")
    unavailable = [s["name"] for s in steps if s["status"] != "ready"]
    if unavailable:
        if not as_json:
            click.echo(
                f"{len(unavailable)} step(s) unavailable: {', '.join(unavailable)}; scores will "
                "come from the steps after them",
                err=True,
            )
        sys.exit(EXIT_PROBLEM)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--config",
    "-c",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also load the local plugins named in this YAML's `plugins:` list.",
)
@click.pass_context
def plugins(ctx: click.Context, as_json: bool, config: Path | None) -> None:
    """List plugins: distribution, version, scorers, hooks and load errors.

    Exit 1 when a plugin failed to load.
    """
    from scoring_core.plugins import PluginHost

    with _errors_reported(_debug(ctx)):
        local: list[str] = []
        disabled: list[str] = []
        base_dir = Path.cwd()
        if config is not None:
            from scoring_core.config import parse_config
            from scoring_core.yaml_loader import load_yaml_file

            parsed = parse_config(load_yaml_file(config))
            local, disabled = list(parsed.plugins), list(parsed.disable_plugins)
            base_dir = config.resolve().parent
        host = PluginHost(config_plugins=local, disabled=disabled, base_dir=base_dir)
        process.startup_done()
    infos = [p.as_dict() for p in host.plugins]
    failed = [info["name"] for info in infos if info["error"]]
    if as_json:
        click.echo(json.dumps({"plugins": infos}, indent=2))
    else:
        _print_plugins(infos, failed)
    if failed:
        sys.exit(EXIT_PROBLEM)


def _print_plugins(infos: list[dict[str, Any]], failed: list[str]) -> None:
    if not infos:
        click.echo("no plugins loaded (is SCORING_LOAD_PLUGINS set to ''?)")
    for info in infos:
        dist = f"{info['distribution']} {info['version']}" if info["distribution"] else "local"
        click.echo(f"{info['name']}  [{dist}] ({info['source']})")
        if info["error"]:
            click.echo(f"    ERROR: {info['error']}")
            continue
        click.echo(f"    scorers: {', '.join(info['scorers']) or '-'}")
        click.echo(f"    hooks:   {', '.join(info['hooks']) or '-'}")
    if failed:
        click.echo(f"{len(failed)} plugin(s) failed to load: {', '.join(failed)}", err=True)


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


# -- score and compare (the work is in scoring_core/cli_score.py) ---------------------------

_FORMAT = click.Choice(["csv", "jsonl", "parquet", "json", "ndjson", "pq"], case_sensitive=False)
_CHUNK_ROWS = 16_384
_chunk_rows_option = click.option(
    "--chunk-rows",
    type=click.IntRange(1),
    default=_CHUNK_ROWS,
    show_default=True,
    help="Rows read and scored at a time (memory grows with it).",
)


@cli.command()
@click.argument("input_path", metavar="INPUT")
@click.option("-o", "--output", default="-", show_default=True, help="Output file; - is stdout.")
@config_option
@click.option("--format", "fmt", type=_FORMAT, help="Format of both input and output.")
@click.option("--input-format", type=_FORMAT, help="Input format (default: from the extension).")
@click.option("--output-format", type=_FORMAT, help="Output format (default: from the extension).")
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
@_chunk_rows_option
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
    """
    with _errors_reported(_debug(ctx)), _unavailable_steps_reported_here(ctx):
        from scoring_core.cli_score import score_command

        code = score_command(config=_config_path(config), **options)
    sys.exit(code)


@cli.command()
@click.argument("input_path", metavar="INPUT")
@config_option
@click.option("--format", "fmt", type=_FORMAT, help="Input format (default: from the extension).")
@click.option("--label", metavar="COLUMN", help="True outcomes: adds MSE, MAE (and AUC if 0/1).")
@click.option(
    "--threshold",
    type=float,
    default=0.70,  # compare.DEFAULT_THRESHOLD (not imported here: it needs numpy)
    show_default=True,
    help="Decision cut for the agreement between steps.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    metavar="FILE.png",
    help="Save score distributions and step-vs-step scatter plots (needs matplotlib).",
)
@_chunk_rows_option
@click.pass_context
def compare(ctx: click.Context, /, config: Path | None, **options: Any) -> None:
    """Score INPUT with each chain step alone and compare the steps with each other, and
    with the true outcomes in --label when given."""
    with _errors_reported(_debug(ctx)), _unavailable_steps_reported_here(ctx):
        from scoring_core.compare import compare_command

        code = compare_command(config=_config_path(config), **options)
    sys.exit(code)
