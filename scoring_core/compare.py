"""Comparing chain steps on the same rows: agreement between steps, error against a label.

Numpy only (no scipy): Spearman correlation is Pearson's on average ranks, AUC is the
Mann-Whitney statistic on average ranks. A metric that is undefined on the data (a
constant score, a label with one class) is ``None``, never NaN, so the report is valid JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_THRESHOLD",
    "StepScores",
    "agreement",
    "auc",
    "average_ranks",
    "build_report",
    "compare_command",
    "pearson",
    "spearman",
]

DEFAULT_THRESHOLD = 0.70  # the app's "called" cut
Floats = npt.NDArray[np.float64]


def average_ranks(values: Floats) -> Floats:
    """1-based ranks; tied values share the average of their ranks (scipy's 'average')."""
    n = values.shape[0]
    order = np.argsort(values, kind="mergesort")
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = np.arange(n)
    ordered = values[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts)[inverse]
    bounds = np.r_[np.flatnonzero(starts), n]
    ranks: Floats = 0.5 * (bounds[group] + bounds[group - 1] + 1)
    return ranks


def pearson(a: Floats, b: Floats) -> float | None:
    """Pearson correlation; None when either side is constant or there are < 2 rows."""
    if a.shape[0] < 2:
        return None
    da, db = a - a.mean(), b - b.mean()
    denominator = float(np.sqrt(np.dot(da, da) * np.dot(db, db)))
    if denominator == 0.0 or not np.isfinite(denominator):
        return None
    return float(np.clip(np.dot(da, db) / denominator, -1.0, 1.0))


def spearman(a: Floats, b: Floats) -> float | None:
    """Spearman rank correlation (Pearson on average ranks)."""
    if a.shape[0] < 2:
        return None
    return pearson(average_ranks(a), average_ranks(b))


def agreement(a: Floats, b: Floats, threshold: float) -> float | None:
    """Share of rows where both sides make the same decision (score >= threshold)."""
    if a.shape[0] == 0:
        return None
    return float(np.mean((a >= threshold) == (b >= threshold)))


def auc(scores: Floats, labels: Floats) -> float | None:
    """ROC AUC for a 0/1 label; None unless both classes are present."""
    positive = labels == 1
    n_pos = int(positive.sum())
    n_neg = int(labels.shape[0] - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = average_ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def is_binary(labels: Floats) -> bool:
    return labels.shape[0] > 0 and bool(np.isin(labels, (0.0, 1.0)).all())


@dataclass
class StepScores:
    """One step's scores over every checked row (NaN where the step failed)."""

    name: str
    parts: list[Floats] = field(default_factory=list)
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(
        self, scores: Floats, failed: npt.NDArray[np.bool_], reason: str | None, seconds: float
    ) -> None:
        self.parts.append(scores)  # score_step already left failed rows NaN
        self.seconds += seconds
        if reason is not None and failed.any():
            self.reasons[reason] = self.reasons.get(reason, 0) + int(failed.sum())

    def scores(self) -> Floats:
        return np.concatenate(self.parts) if self.parts else np.empty(0)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _step_report(
    step: StepScores, scores: Floats, threshold: float, label: Floats | None
) -> dict[str, Any]:
    ok = np.isfinite(scores)
    served = scores[ok]
    rows = int(scores.shape[0])
    report: dict[str, Any] = {
        "name": step.name,
        "rows": rows,
        "rows_failed": rows - int(ok.sum()),
        "failure_reasons": dict(step.reasons),
        "seconds": round(step.seconds, 6),
        "us_per_row": round(step.seconds / rows * 1e6, 3) if rows else None,
        "rows_per_s": round(rows / step.seconds) if step.seconds > 0 else None,
        "mean": _round(float(served.mean())) if served.size else None,
        "std": _round(float(served.std())) if served.size else None,
        "share_at_or_above_threshold": _round(float(np.mean(served >= threshold)))
        if served.size
        else None,
    }
    if label is not None:
        usable = ok & np.isfinite(label)
        s, y = scores[usable], label[usable]
        report["label_rows"] = int(usable.sum())
        report["mse"] = _round(float(np.mean((s - y) ** 2))) if s.size else None
        report["mae"] = _round(float(np.mean(np.abs(s - y)))) if s.size else None
        report["auc"] = _round(auc(s, y)) if is_binary(y) else None
    return report


def build_report(
    steps: Sequence[StepScores],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    label: Floats | None = None,
    label_name: str | None = None,
    rows: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The comparison as a JSON-serialisable dict: per step, and per pair of steps."""
    scores = {step.name: step.scores() for step in steps}
    report: dict[str, Any] = {
        "rows": dict(rows or {}),
        "threshold": threshold,
        "label": label_name,
        "label_binary": bool(label is not None and is_binary(label[np.isfinite(label)])),
        "steps": [_step_report(s, scores[s.name], threshold, label) for s in steps],
        "pairs": [],
    }
    for first, second in combinations([s.name for s in steps], 2):
        a, b = scores[first], scores[second]
        both = np.isfinite(a) & np.isfinite(b)
        a, b = a[both], b[both]
        report["pairs"].append(
            {
                "a": first,
                "b": second,
                "rows": int(both.sum()),
                "mean_abs_diff": _round(float(np.mean(np.abs(a - b)))) if a.size else None,
                "pearson": _round(pearson(a, b)),
                "spearman": _round(spearman(a, b)),
                "agreement": _round(agreement(a, b, threshold)),
            }
        )
    return report


def save_plot(scores: Mapping[str, Floats], path: str, threshold: float) -> None:
    """Score distributions and step-vs-step scatter plots, as a PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(scores)
    pairs = list(combinations(names, 2))
    figure, axes = plt.subplots(1, 1 + len(pairs), figsize=(5 * (1 + len(pairs)), 4), squeeze=False)
    distributions = axes[0][0]
    served = {name: values[np.isfinite(values)] for name, values in scores.items()}
    everything = np.concatenate([*served.values(), [threshold]])
    low, high = float(everything.min()), float(everything.max())
    bins = np.linspace(low, high if high > low else low + 1.0, 61)
    for name, values in served.items():
        distributions.hist(values, bins=bins, alpha=0.5, label=f"{name} ({values.size:,} rows)")
    distributions.axvline(threshold, color="black", linestyle="--", linewidth=1)
    distributions.set(title="score distributions", xlabel="score", ylabel="rows")
    distributions.legend()
    sample = np.random.default_rng(0)
    for axis, (first, second) in zip(axes[0][1:], pairs, strict=True):
        a, b = scores[first], scores[second]
        both = np.flatnonzero(np.isfinite(a) & np.isfinite(b))
        if both.size > 20_000:
            both = sample.choice(both, 20_000, replace=False)
        axis.scatter(a[both], b[both], s=2, alpha=0.3)
        axis.axvline(threshold, color="black", linestyle="--", linewidth=1)
        axis.axhline(threshold, color="black", linestyle="--", linewidth=1)
        axis.set(title=f"{first} vs {second}", xlabel=first, ylabel=second)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _cell(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def report_tables(report: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report as (title, header, rows) tables of text cells."""
    with_label = report["label"] is not None
    header = ["step", "rows failed", "us/row", "rows/s", "mean", "std", f">= {report['threshold']}"]
    steps = []
    for step in report["steps"]:
        row = [
            step["name"],
            _cell(step["rows_failed"]),
            _cell(step["us_per_row"], 2),
            _cell(step["rows_per_s"]),
            _cell(step["mean"]),
            _cell(step["std"]),
            _cell(step["share_at_or_above_threshold"], 3),
        ]
        steps.append(row)
    pairs = [
        [
            f"{p['a']} vs {p['b']}",
            _cell(p["rows"]),
            _cell(p["mean_abs_diff"]),
            _cell(p["pearson"]),
            _cell(p["spearman"]),
            _cell(p["agreement"], 3),
        ]
        for p in report["pairs"]
    ]
    rows = report["rows"]
    title = f"{rows.get('compared', 0):,} rows compared, {rows.get('rejected', 0):,} rejected" + (
        f", label {report['label']!r}" if with_label else ""
    )
    tables = [(f"steps ({title})", header, steps)]
    if with_label:  # a table of its own: ten columns do not fit a terminal's 80
        tables.append(
            (
                f"label {report['label']!r} (auc: 0/1 labels)",
                ["step", "rows", "mse", "mae", "auc"],
                [
                    [
                        s["name"],
                        _cell(s["label_rows"]),
                        _cell(s["mse"]),
                        _cell(s["mae"]),
                        _cell(s["auc"]),
                    ]
                    for s in report["steps"]
                ],
            )
        )
    tables.append(
        (
            f"pairs (agreement at {report['threshold']})",
            ["pair", "rows", "mean |diff|", "pearson", "spearman", "agreement"],
            pairs,
        )
    )
    return tables


def print_report(report: Mapping[str, Any]) -> None:
    """Print the report's tables on stdout: with rich when installed, plain text otherwise."""
    tables = report_tables(report)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        for title, header, rows in tables:
            widths = [max(len(c) for c in column) for column in zip(header, *rows, strict=True)]
            print(title)
            for line in (header, *rows):
                print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))
            print()
        return
    console = Console()
    for title, header, rows in tables:
        table = Table(title=title, title_justify="left")
        for index, name in enumerate(header):
            table.add_column(name, justify="left" if index == 0 else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)


# -- the command --------------------------------------------------------------------------------


def compare_command(
    *,
    input_path: str,
    config: Path,
    fmt: str | None,
    label: str | None,
    threshold: float,
    as_json: bool,
    plot: str | None,
    chunk_rows: int,
) -> int:
    """``scoring compare``: score a file with each step alone, print the report; exit code."""
    import json

    import click

    from scoring_core import process
    from scoring_core.config import did_you_mean
    from scoring_core.engine import Engine
    from scoring_core.score_report import warn_unavailable
    from scoring_core.score_tables import check_columns, checked_rows, open_input
    from scoring_core.table_io import (
        DataFileError,
        check_target,
        column_numbers,
        file_format,
        require_pyarrow,
    )

    in_format = file_format(input_path, fmt, role="input")
    require_pyarrow()
    if plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise DataFileError(
                "--plot needs matplotlib: pip install 'scoring-core[plot]'"
            ) from None
        check_target(plot, what="plot", source=input_path)
    with Engine.from_yaml(config) as engine, open_input(input_path, in_format) as reader:
        process.startup_done()
        warn_unavailable(engine, then="every row counts as failed by it")
        defaults = engine.feature_defaults
        check_columns(reader, engine)
        if label is not None and label not in reader.columns:
            raise DataFileError(
                f"{reader.name} has no label column {label!r}{did_you_mean(label, reader.columns)}",
                column=label,
            )
        steps = [StepScores(name) for name in engine.step_names]
        labels: list[Floats] = []
        label_example: Any = None  # the first value that is not a number
        label_numbers = False  # any number in the label column, rejected rows included
        rows_in = rejected = 0
        for chunk in reader.chunks(
            [*engine.feature_names, *([label] if label else [])], chunk_rows
        ):
            prepared, rejects = checked_rows(engine, chunk, defaults, reader.name)
            rows_in += chunk.table.num_rows + len(chunk.broken)
            rejected += len(rejects)
            for step in steps:
                run = engine.score_step(step.name, prepared.X)
                step.add(run.scores, run.failed, run.reason, run.seconds)
            if label is not None:
                with np.errstate(invalid="ignore"):
                    values, _, bad = column_numbers(chunk.table.column(label), label)
                values = np.asarray(values, dtype=np.float64)
                label_numbers = label_numbers or bool(np.isfinite(values).any())
                labels.append(values[prepared.rows])
                if bad and label_example is None:
                    label_example = chunk.table.column(label)[bad[0][0]].as_py()
        if rows_in == 0:
            raise DataFileError(f"{reader.name} has no rows to compare")
        if label is not None and not label_numbers:
            example = (
                f" (such as {label_example!r})"
                if label_example is not None
                else " (every value is empty)"
            )
            raise DataFileError(
                f"{reader.name}: the label column {label!r} holds no numbers{example}; --label "
                "takes the true outcome as a number (0/1 for AUC)",
                column=label,
            )
    report = build_report(
        steps,
        threshold=threshold,
        label=np.concatenate(labels) if labels else None,
        label_name=label,
        rows={"in": rows_in, "compared": rows_in - rejected, "rejected": rejected},
    )
    if plot is not None:
        save_plot({step.name: step.scores() for step in steps}, plot, threshold)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        print_report(report)
    if plot is not None:
        click.echo(f"plot saved to {plot}", err=True)
    return 0
