"""``scoring plugins``: which plugins loaded, from where, and what they registered."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from scoring_core import process
from scoring_core.cli.errors import debug_of, errors_reported
from scoring_core.cli.exit_codes import EXIT_PROBLEM
from scoring_core.cli.options import logging_options

__all__ = ["plugins"]


@click.command(short_help="List the plugins: distribution, version, scorers, load errors.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--config",
    "-c",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also load the local plugins named in this YAML's `plugins:` list.",
)
@logging_options
@click.pass_context
def plugins(ctx: click.Context, as_json: bool, config: Path | None) -> None:
    """List plugins: distribution, version, scorers, hooks and load errors.

    Exit 1 when a plugin failed to load.
    """
    from scoring_core.plugins import PluginHost

    with errors_reported(debug_of(ctx)):
        local: list[str] = []
        disabled: list[str] = []
        base_dir = Path.cwd()
        if config is not None:
            from scoring_core.config.validate import parse_config
            from scoring_core.config.yaml import load_yaml_file

            parsed = parse_config(load_yaml_file(config))
            local, disabled = list(parsed.plugins), list(parsed.disable_plugins)
            base_dir = config.resolve().parent
        host = PluginHost(config_plugins=local, disabled=disabled, base_dir=base_dir)
        process.startup_done()
    infos = [p.as_dict() for p in host.plugins]
    failed = [info["name"] for info in infos if info["error"]]
    if as_json:
        filtered = [
            {"name": f.name, "distribution": f.distribution, "reason": f.reason}
            for f in host.filtered
        ]
        click.echo(json.dumps({"plugins": infos, "filtered": filtered}, indent=2))
    else:
        _print_plugins(infos, failed)
        for plugin in host.filtered:  # installed, not loaded: say so, and why (#14 point 9)
            click.echo(f"{plugin.name}  filtered out: {plugin.reason}")
    if failed:
        sys.exit(EXIT_PROBLEM)


def _print_plugins(infos: list[dict[str, Any]], failed: list[str]) -> None:
    if not infos:
        click.echo("no plugins loaded")
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
