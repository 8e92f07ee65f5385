"""``scoring serve``: the chains over HTTP (extra ``serve``; docs/serving.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from scoring_core import process
from scoring_core.cli.errors import debug_of, errors_reported
from scoring_core.cli.options import config_path

__all__ = ["serve"]


@click.command(short_help="Serve the chains over HTTP: Open Inference Protocol, MLflow, metrics.")
@click.argument(
    "configs", nargs=-1, type=click.Path(dir_okay=False, path_type=Path), metavar="CONFIG..."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to bind.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Processes serving behind the one port; /metrics and reloads cover them all.",
)
@click.option(
    "--max-body-mb",
    default=16.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Larger request bodies are refused with 413.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    configs: tuple[Path, ...],
    host: str,
    port: int,
    workers: int,
    max_body_mb: float,
) -> None:
    """Serve each CONFIG's chain (default ./scoring.yaml) over HTTP: the Open Inference
    Protocol (KServe V2), MLflow's /invocations, /metrics. An experiment file (a top-level
    `experiment:` key) is served as one model named after the experiment.
    SCORING_ADMIN_TOKEN set adds the reload route. Stops cleanly on SIGTERM or Ctrl-C."""
    import scoring_core.server
    from scoring_core.config import parse_config
    from scoring_core.config.yaml import load_yaml_file
    from scoring_core.experiments.config import is_experiment_file, load_experiment_file

    debug = debug_of(ctx)
    with errors_reported(debug):
        paths = [config_path(None, c) for c in configs] or [config_path(None)]
        for path in paths:  # a bad file fails now, before the port opens
            if is_experiment_file(path):  # an experiment, served as one model
                load_experiment_file(path)
            else:
                parse_config(load_yaml_file(path))
        process.startup_done()
        code = scoring_core.server.run(
            paths,
            host=host,
            port=port,
            workers=workers,
            max_body_mb=max_body_mb,
            log_level="debug" if debug else "info",
        )
    sys.exit(code)
