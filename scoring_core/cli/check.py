"""``scoring check``: load every step and report its status."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from scoring_core import process
from scoring_core.cli.errors import debug_of, errors_reported, unavailable_steps_reported_here
from scoring_core.cli.exit_codes import EXIT_OK, EXIT_PROBLEM
from scoring_core.cli.options import config_option, config_path, logging_options

__all__ = ["check"]


@click.command(short_help="Load every step of the chain and report its status.")
@click.argument(
    "config_arg",
    metavar="[CONFIG]",
    required=False,
    type=click.Path(dir_okay=False, path_type=Path),
)
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the full diagnostics as JSON.")
@logging_options
@click.pass_context
def check(ctx: click.Context, config_arg: Path | None, config: Path | None, as_json: bool) -> None:
    """Load every step of CONFIG (or --config; default ./scoring.yaml) and report its
    status; exit 1 if a step is unavailable (one marked `optional: true` is reported, and
    allowed)."""
    from scoring_core.cli.closing import closing_reported
    from scoring_core.cli.report import what_happens_without
    from scoring_core.engine import Engine

    with errors_reported(debug_of(ctx)), unavailable_steps_reported_here(ctx):
        path = config_path(config, config_arg)
        with closing_reported(Engine.from_yaml(path)) as closing:
            process.startup_done()
            diagnostics = closing.engine.diagnostics()
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
            served = (step.get("provenance") or {}).get("model_version")
            if served is not None and (step.get("details") or {}).get("version") is not None:
                line += f", model version {served}"  # a folder of versions (docs/models.md)
            if step["status"] != "ready":
                allowed = " (optional: the chain runs without it)" if step.get("optional") else ""
                line = f"  {step['name']:<{width}}  {step['status']:<11}  scorer={step['scorer']}"
                line += f"{allowed}\n  {'':<{width}}  reason: {step['reason']}"
            click.echo(line)
        failed_plugins = [p for p in diagnostics["plugins"] if p["error"]]
        for plugin in failed_plugins:
            click.echo(f"  plugin {plugin['name']!r} failed to load: {plugin['error']}")
    down = [s for s in steps if s["status"] != "ready"]
    unavailable = [s["name"] for s in down if not s.get("optional")]
    optional = [s["name"] for s in down if s.get("optional")]
    if not as_json and optional:
        click.echo(
            f"{len(optional)} optional step(s) unavailable: {', '.join(optional)}; "
            f"{what_happens_without(diagnostics, optional)} (allowed: `optional: true`)",
            err=True,
        )
    if unavailable and not as_json:
        click.echo(
            f"{len(unavailable)} step(s) unavailable: {', '.join(unavailable)}; "
            f"{what_happens_without(diagnostics, [s['name'] for s in down])}",
            err=True,
        )
    code = EXIT_PROBLEM if unavailable else EXIT_OK
    sys.exit(closing.exit_code(code))
