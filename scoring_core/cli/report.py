"""What ``scoring score`` tells the user on stderr: a warning, a progress bar, a summary.

Before the run, a warning for each step that is unavailable (its rows go to the next
step). During the run, a progress bar (rows, rows/s, and the ETA when the input's size is
known) when it is on (``--progress``, or by default when stderr is a terminal) and rich
is installed. After the run, the :class:`Counts` as a summary: rows in = scored +
rejected, the rows each scorer scored, the fallbacks, the rejects file, the time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from scoring_core import process

if TYPE_CHECKING:
    from scoring_core.batch.run import Counts
    from scoring_core.batch.tables import OutputFiles
    from scoring_core.engine import Engine
    from scoring_core.io import TableReader

__all__ = [
    "MissingStep",
    "ProgressBar",
    "counts_lines",
    "summary_lines",
    "unavailable_at_start",
    "unavailable_lines",
    "warn_unavailable",
]


def warn_unavailable(engine: Engine, then: str = "its rows go to the next step") -> None:
    """A warning on stderr for each step that is not ready: why, and ``then`` what."""
    for step in engine.diagnostics()["steps"]:
        if step["status"] != "ready":
            which = "optional step" if step.get("optional") else "step"
            click.echo(
                f"warning: {which} {step['name']!r} is unavailable ({step['reason']}); {then}",
                err=True,
            )


@dataclass(frozen=True)
class MissingStep:
    """A step that could not load when the engine was built."""

    name: str
    reason: str
    optional: bool


def unavailable_at_start(engine: Engine) -> list[MissingStep]:
    """The steps that are unavailable now, before the run (they failed to load)."""
    return [
        MissingStep(step["name"], str(step["reason"]), bool(step.get("optional")))
        for step in engine.diagnostics()["steps"]
        if step["status"] != "ready"
    ]


# The reason in the summary's first line is cut at its first sentence, or this long.
_SHORT_REASON = 160


def _short(reason: str) -> str:
    cut = reason.find(". ")
    short = reason[: cut + 1] if 0 < cut < _SHORT_REASON else reason
    return short if len(short) <= _SHORT_REASON else short[: _SHORT_REASON - 1] + "…"


def _served_by(counts: Counts) -> str:
    if not counts.scored:
        return "no row was scored"
    served = {name: rows for name, rows in counts.by_scorer.items() if rows}
    if len(served) == 1:
        name, rows = next(iter(served.items()))
        every = "the" if rows == 1 else f"all {rows:,}"
        return f"{every} {'row was' if rows == 1 else 'rows were'} scored by {name!r}"
    parts = ", ".join(f"{name!r} {rows:,}" for name, rows in served.items())
    return f"the {counts.scored:,} scored rows came from {parts}"


def unavailable_lines(missing: list[MissingStep], counts: Counts, *, allowed: bool) -> list[str]:
    """The summary's first lines: each step that could not load, and what scored instead.

    A step that is not optional is a failed run (exit 1) unless ``allowed``
    (``--allow-unavailable``); the line says how to mark it as expected.
    """
    lines = []
    for step in missing:
        later = counts.by_scorer.get(step.name, 0)
        when = (
            "was unavailable for the whole run"
            if not later
            else f"was unavailable when the run started (it scored {later:,} rows after a reload)"
        )
        which = "optional step" if step.optional else "step"
        line = f"{which} {step.name!r} {when}: {_short(step.reason)}; {_served_by(counts)}."
        if not step.optional:
            line += (
                " Allowed by --allow-unavailable."
                if allowed
                else " Mark the step `optional: true` or pass --allow-unavailable if that is "
                "expected."
            )
        lines.append(line)
    return lines


# The bar (12), "10,000,000 rows  1,234,567 rows/s" (33), the ETA (7) and the gaps (3).
_BAR_PARTS_WIDTH = 55


class ProgressBar:
    """A rich progress bar on stderr: rows, rows/s, and the ETA when the size is known."""

    def __init__(self, enabled: bool, reader: TableReader, label: str) -> None:
        self._bar: Any = None
        self._reader = reader
        if not enabled:
            return
        try:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
        except ImportError:  # rich is optional: no bar then
            return
        console = Console(stderr=True)
        # The counts, the rate and the ETA take up to 55 columns with the bar; the file's
        # name gets what is left, keeping its end ("…week_of_2026_11_23.csv").
        room = max(console.width - _BAR_PARTS_WIDTH, 8)
        label = label if len(label) <= room else "…" + label[len(label) - room + 1 :]
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=12),
            TextColumn("{task.fields[rows]:,} rows  {task.fields[rate]} rows/s"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        total = reader.progress(0)[1]
        self._task = self._bar.add_task(label, total=total, rows=0, rate="-")
        self._started = time.perf_counter()
        self._bar.start()

    def update(self, rows: int) -> None:
        if self._bar is not None:
            done, total = self._reader.progress(rows)
            rate = rows / max(time.perf_counter() - self._started, 1e-9)
            self._bar.update(
                self._task, completed=done, total=total, rows=rows, rate=f"{rate:,.0f}"
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def summary_lines(
    counts: Counts, seconds: tuple[float, float], target: OutputFiles, reader: TableReader
) -> list[str]:
    """The summary; ``seconds`` is (reading, scoring and writing; building the engine)."""
    written = target.rejects if target.rejects_writer is not None else None
    return counts_lines(counts, seconds, written, reader.notes)


def counts_lines(
    counts: Counts,
    seconds: tuple[float, float],
    rejects: str | None,
    notes: list[str],
    loading: str = "load the chain and open the input",
) -> list[str]:
    """The summary of :func:`summary_lines`, from its parts: ``rejects`` is the rejects
    file (or folder) written, if any; ``loading`` what the second of ``seconds`` took."""
    adds_up = counts.rows_in == counts.scored + counts.rejected
    check = "the counts add up" if adds_up else "THE COUNTS DO NOT ADD UP: a bug, please report it"
    by_scorer = ", ".join(f"{name} {rows:,}" for name, rows in counts.by_scorer.items()) or "-"
    lines = [
        f"rows in   {counts.rows_in:>12,}  = {counts.scored:,} scored + {counts.rejected:,} "
        f"rejected ({check})",
        f"scored    {counts.scored:>12,}  by scorer: {by_scorer}",
    ]
    fell_back = sum(sum(kinds.values()) for kinds in counts.fallbacks.values())
    lines.append(
        f"fallbacks {fell_back:>12,}  (rows a step failed; see the fallback_reason column)"
    )
    for step, kinds in counts.fallbacks.items():
        detail = ", ".join(f"{kind} {rows:,}" for kind, rows in kinds.items())
        lines.append(f"          {'':>12}  step {step!r}: {detail}")
    lines.append(f"rejected  {counts.rejected:>12,}" + (f"  -> {rejects}" if rejects else ""))
    rate = counts.rows_in / seconds[0] if seconds[0] > 0 else float("inf")
    lines.append(
        f"time      {seconds[0]:>12.2f} s  {rate:,.0f} rows/s (and {seconds[1]:.2f} s to {loading})"
    )
    peak = process.peak_memory_mb()
    if peak is not None:
        whole = "the whole process (Python and libraries too)"
        lines.append(f"memory    {peak:>12,.0f} MB  peak resident, {whole}")
    lines.extend(f"note: {note}" for note in notes)
    return lines
