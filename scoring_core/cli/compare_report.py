"""The report of ``scoring compare``: each step alone on the same rows, agreement between
steps, error against a label; as JSON, as tables, as a plot. The statistics are in
:mod:`scoring_core.stats`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_THRESHOLD",
    "StepScores",
    "Threshold",
    "build_report",
    "choose_threshold",
]

from scoring_core.stats import (
    DEFAULT_THRESHOLD,
    Floats,
    agreement,
    auc,
    is_binary,
    pearson,
    spearman,
)


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


@dataclass(frozen=True)
class Threshold:
    """The decision cut of the agreement metrics, where it came from, and the report's note.

    ``value`` is None when no cut can be told from the data: the threshold-based metrics
    (``share_at_or_above_threshold``, ``agreement``) are then left out (null).
    """

    value: float | None
    source: str | None  # "given" | "default" | "output_range" | None
    note: str


def choose_threshold(
    given: float | None,
    output_range: tuple[float, float] | None,
    scores: Sequence[Floats],
) -> Threshold:
    """``--threshold`` when given; else 0.7 for scores in [0, 1] (by ``output_range``, or,
    without one, by the scores themselves); else the middle of ``output_range``; else none.
    """
    if given is not None:
        return Threshold(given, "given", f"threshold {given:g} (--threshold)")
    default = Threshold(
        DEFAULT_THRESHOLD,
        "default",
        f"threshold {DEFAULT_THRESHOLD:g} (default; --threshold to change)",
    )
    if output_range is not None:
        low, high = output_range
        if (low, high) == (0.0, 1.0):
            return default
        middle = (low + high) / 2
        return Threshold(
            middle,
            "output_range",
            f"threshold {middle:g} (the middle of output_range [{low:g}, {high:g}]; "
            "--threshold to change)",
        )
    served = [values[np.isfinite(values)] for values in scores]
    served = [values for values in served if values.size]
    if not served:
        return default
    low, high = min(float(v.min()) for v in served), max(float(v.max()) for v in served)
    if low >= 0.0 and high <= 1.0:
        return default
    return Threshold(
        None,
        None,
        f"no threshold: the scores run from {low:g} to {high:g}, outside [0, 1], and the "
        "config has no output_range, so share_at_or_above_threshold and agreement are left "
        "out; pass --threshold X (or set output_range) to have them",
    )


def at_or_above(scores: Floats, threshold: float) -> npt.NDArray[np.bool_]:
    """Which scores are at or above the cut, compared in float32, the precision the rows
    and models run in: a score the rules compute as ``0.2 + 0.5`` (0.699999988 in float32)
    is at a cut of 0.7, since 0.7 is that same float32. Scores and cut are both rounded to
    float32 first, so a float64 score within float32 rounding of the cut counts as at it.
    """
    return np.asarray(scores, dtype=np.float32) >= np.float32(threshold)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _step_report(
    step: StepScores, scores: Floats, threshold: float | None, label: Floats | None
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
        "share_at_or_above_threshold": _round(float(np.mean(at_or_above(served, threshold))))
        if served.size and threshold is not None
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
    threshold: float | Threshold = DEFAULT_THRESHOLD,
    label: Floats | None = None,
    label_name: str | None = None,
    rows: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The comparison as a JSON-serialisable dict: per step, and per pair of steps.

    ``threshold`` is a number (given) or a :class:`Threshold` from :func:`choose_threshold`.
    """
    scores = {step.name: step.scores() for step in steps}
    if not isinstance(threshold, Threshold):
        threshold = Threshold(threshold, "given", f"threshold {threshold:g}")
    cut = threshold.value
    report: dict[str, Any] = {
        "rows": dict(rows or {}),
        "threshold": cut,
        "threshold_source": threshold.source,
        "threshold_note": threshold.note,
        "label": label_name,
        "label_binary": bool(label is not None and is_binary(label[np.isfinite(label)])),
        "steps": [_step_report(s, scores[s.name], cut, label) for s in steps],
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
                "agreement": None if cut is None else _round(_agreement(a, b, cut)),
            }
        )
    return report


def _agreement(a: Floats, b: Floats, cut: float) -> float | None:
    """:func:`scoring_core.stats.agreement`, with the decisions of :func:`at_or_above`."""
    return agreement(a.astype(np.float32), b.astype(np.float32), float(np.float32(cut)))


def save_plot(scores: Mapping[str, Floats], path: str, threshold: float | None) -> None:
    """Score distributions and step-vs-step scatter plots, as a PNG (matplotlib, Agg); the
    threshold, when there is one, as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(scores)
    pairs = list(combinations(names, 2))
    figure, axes = plt.subplots(1, 1 + len(pairs), figsize=(5 * (1 + len(pairs)), 4), squeeze=False)
    distributions = axes[0][0]
    served = {name: values[np.isfinite(values)] for name, values in scores.items()}
    everything = np.concatenate([*served.values(), [] if threshold is None else [threshold]])
    low, high = float(everything.min()), float(everything.max())
    bins = np.linspace(low, high if high > low else low + 1.0, 61)
    for name, values in served.items():
        distributions.hist(values, bins=bins, alpha=0.5, label=f"{name} ({values.size:,} rows)")
    if threshold is not None:
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
        if threshold is not None:
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
    cut = report["threshold"]
    at = f">= {cut:g}" if cut is not None else ">= n/a"
    header = ["step", "rows failed", "us/row", "rows/s", "mean", "std", at]
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
    if not pairs:  # one step: no pair to compare; print_report says so in a sentence
        return tables
    tables.append(
        (
            f"pairs (agreement at {cut:g})" if cut is not None else "pairs (agreement: n/a)",
            ["pair", "rows", "mean |diff|", "pearson", "spearman", "agreement"],
            pairs,
        )
    )
    return tables


def print_report(report: Mapping[str, Any]) -> None:
    """Print the report's tables on stdout: with rich when installed, plain text otherwise;
    first, where the threshold came from."""
    tables = report_tables(report)
    print(report["threshold_note"])
    if not report["pairs"]:
        no_pairs = (
            f"the chain has one step, {report['steps'][0]['name']!r}: there is no pair of steps "
            "to compare (add a step to the chain to compare it with; --label compares the "
            "step with the true outcomes)"
            if len(report["steps"]) == 1
            else "no pair of steps to compare"
        )
    else:
        no_pairs = None
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
        if no_pairs:
            print(no_pairs)
        return
    console = Console()
    for title, header, rows in tables:
        table = Table(title=title, title_justify="left")
        for index, name in enumerate(header):
            table.add_column(name, justify="left" if index == 0 else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    if no_pairs:
        print(no_pairs)
