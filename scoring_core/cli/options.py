"""Options several commands share, and finding the configuration file."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = [
    "CHUNK_ROWS",
    "FORMAT",
    "chunk_rows_option",
    "config_option",
    "config_path",
    "metrics_option",
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
    path = positional or config or Path(DEFAULT_CONFIG)
    if not path.exists():
        raise click.UsageError(
            f"no configuration at {str(path)!r}: there is no such file"
            if config or positional
            else f"no {DEFAULT_CONFIG} in {Path.cwd()}; pass one with --config FILE"
        )
    return path
