"""``scoring experiment report``: exposures joined to outcomes, per variant, split tested.

The numbers are :func:`scoring_core.experiments.analysis.analyse`'s; this module reads the
files, prints the table (or ``--json``) and sets the exit code: 1 when the split does not
follow the weights (a sample-ratio mismatch, p < 0.001).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from scoring_core.cli.errors import debug_of, errors_reported
from scoring_core.cli.exit_codes import EXIT_OK, EXIT_PROBLEM

__all__ = ["experiment", "report_lines"]


@click.group()
def experiment() -> None:
    """A/B experiments between chains (docs/experiments.md)."""


@experiment.command()
@click.option(
    "--exposures",
    "exposures_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The exposure log (JSON Lines), as the experiment wrote it.",
)
@click.option(
    "--outcomes",
    "outcomes_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A CSV, JSON Lines or Parquet file with the unit column and the metric.",
)
@click.option("--metric", metavar="COL", help="The outcome column (default: the only other one).")
@click.option("--unit", metavar="COL", help="The unit column of the outcomes (default: unit).")
@click.option(
    "--shadow",
    "shadow_path",
    type=click.Path(exists=True, dir_okay=False),
    help="The shadow's pairs (JSON Lines): how far its scores are from the served ones.",
)
@click.option(
    "--experiment", "key", metavar="KEY", help="The experiment, when the log has several."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def report(
    ctx: click.Context,
    exposures_path: str,
    outcomes_path: str,
    metric: str | None,
    unit: str | None,
    shadow_path: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Units, observed and expected share, mean outcome and lift against the control with
    95% CIs, and the steps that served each variant; exit 1 on a sample-ratio mismatch."""
    from scoring_core.experiments import analysis

    with errors_reported(debug_of(ctx)):
        name, records = analysis.first_exposures(analysis.read_jsonl(exposures_path), key)
        outcomes, _, metric_name = analysis.read_outcomes(outcomes_path, unit, metric)
        pairs = None
        if shadow_path is not None:
            pairs = [
                p for p in analysis.read_jsonl(shadow_path) if p.get("experiment") in (None, name)
            ]
        result = analysis.analyse(
            records, outcomes, experiment=name, metric=metric_name, shadow_pairs=pairs
        )
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        for line in report_lines(result):
            click.echo(line)
    if not result["srm"]["ok"]:
        click.echo(
            click.style(srm_warning(result["srm"]), fg="red", bold=True),
            err=True,
            color=None if sys.stderr.isatty() else False,
        )
        ctx.exit(EXIT_PROBLEM)
    ctx.exit(EXIT_OK)


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value * 100:+.1f}%" if signed else f"{value * 100:.1f}%"


def srm_warning(srm: dict[str, Any]) -> str:
    return (
        f"SAMPLE RATIO MISMATCH: chi2 {srm['chi2']:.2f}, p {srm['p_value']:.2g} < 0.001: the "
        "units did not split as the weights say, so the comparison cannot be trusted; find "
        "why (assignment, logging, a variant that fails and drops users) before reading it"
    )


def report_lines(result: dict[str, Any]) -> list[str]:
    """The report as a table, as ``scoring experiment report`` prints it."""
    kind = "binary" if result["binary"] else "continuous"
    lines = [
        f"experiment {result['experiment']}: {result['units']:,} units exposed, "
        f"{result['outcomes']:,} with an outcome ({result['metric']}, {kind})",
        "",
    ]
    header = (
        "variant",
        "units",
        "observed",
        "expected",
        "mean",
        "95% CI",
        "lift",
        "95% CI",
        "served by",
    )
    table = [header]
    for row in result["variants"]:
        ci = f"[{_number(row['ci_low'])}, {_number(row['ci_high'])}]"
        if row["lift"] is None and row is result["variants"][0]:
            lift, lift_ci = "control", ""
        else:
            lift = _percent(row["lift"], signed=True)
            lift_ci = (
                f"[{_percent(row['lift_ci_low'], True)}, {_percent(row['lift_ci_high'], True)}]"
            )
        units = max(row["units"], 1)
        served = ", ".join(
            f"{step} {count / units * 100:.1f}%" for step, count in row["served_by"].items()
        )
        table.append(
            (
                row["name"],
                f"{row['units']:,}",
                _percent(row["observed_share"]),
                _percent(row["expected_share"]),
                _number(row["mean"]),
                ci,
                lift,
                lift_ci,
                served,
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        lines.append(
            "  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip()
        )
    srm = result["srm"]
    verdict = "ok" if srm["ok"] else "MISMATCH"
    lines += [
        "",
        f"sample ratio: chi2 {srm['chi2']:.2f}, df {srm['df']}, p {srm['p_value']:.3g}: {verdict}",
    ]
    shadow = result.get("shadow")
    if shadow is not None:
        lines.append(
            f"shadow {shadow['chain']}: {shadow['pairs']:,} pairs, mean |diff| "
            f"{_number(shadow['mean_abs_diff'])}, pearson {_number(shadow['pearson'])}, "
            f"agreeing at {shadow['threshold']:.2f}: {_percent(shadow['agreement'])}"
        )
    lines.append(f"method: {result['method']}")
    return lines
