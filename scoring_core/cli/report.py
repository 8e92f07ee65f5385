"""What ``scoring score`` tells the user on stderr: a warning, a progress bar, a summary.

Before the run, a warning for each step that is unavailable (its rows go to the next
step). During the run, a progress bar (rows, rows/s, and the ETA when the input's size is
known) when it is on (``--progress``, or by default when stderr is a terminal) and rich
is installed. After the run, the :class:`Counts` as a summary: rows in = scored +
rejected, the rows each scorer scored, the fallbacks, the rejects file, the time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import click

from scoring_core import process

if TYPE_CHECKING:
    from scoring_core.batch.run import Counts
    from scoring_core.batch.tables import OutputFiles
    from scoring_core.engine import Engine
    from scoring_core.io import TableReader

__all__ = [
    "FilesDone",
    "MissingStep",
    "ProgressBar",
    "counts_lines",
    "summary_lines",
    "unavailable_at_start",
    "unavailable_lines",
    "warn_unavailable",
    "what_happens_without",
]


def _names(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)


def what_happens_without(diagnostics: dict[str, Any], down: list[str]) -> str:
    """What really happens to the rows when the steps ``down`` cannot score: the steps after
    them take the rows, or, when none can, the chain's ``on_exhausted`` answers."""
    steps = diagnostics["steps"]
    ready = [s["name"] for s in steps if s["status"] == "ready" and s["name"] not in down]
    exhausted = diagnostics["engine"]["on_exhausted"]
    if exhausted == "raise":
        fails = "is an error that stops `scoring score` (on_exhausted: raise)"
        every = "every row is an error that stops `scoring score` (on_exhausted: raise)"
    else:
        fails = f"gets the on_exhausted score {exhausted['score']:g}"
        every = f"every row gets the on_exhausted score {exhausted['score']:g}"
    if not ready:
        return f"no step can score: {every}"
    names = [s["name"] for s in steps]
    last_ready = max(names.index(name) for name in ready)
    if all(names.index(name) < last_ready for name in down):
        served = "the steps after them" if len(down) > 1 else "the steps after it"
        return f"scores will come from {served}: {_names(ready)}"
    after = [name for name in down if names.index(name) > last_ready]
    return (
        f"scores will come from {_names(ready)}; no step that can score comes after "
        f"{_names(after)}, so a row {_names(ready)} fail{'s' if len(ready) == 1 else ''} {fails}"
    )


def warn_unavailable(engine: Engine, then: str | None = None) -> None:
    """A warning on stderr for each step that is not ready: why, and ``then`` what (by
    default, what really happens to its rows: :func:`what_happens_without`)."""
    diagnostics = engine.diagnostics()
    for step in diagnostics["steps"]:
        if step["status"] != "ready":
            which = "optional step" if step.get("optional") else "step"
            after = then or what_happens_without(diagnostics, [step["name"]])
            click.echo(
                f"warning: {which} {step['name']!r} is unavailable ({step['reason']}); {after}",
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
# Without a terminal (--progress into a log or a pipe): one plain line this often.
PLAIN_EVERY_S = 5.0


class _Progress(Protocol):
    def progress(self, rows: int) -> tuple[int, int | None]: ...


class FilesDone:
    """How far a job over many files is (:class:`ProgressBar` reads it as a reader's
    ``progress``): the files finished out of ``total``."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0

    def progress(self, rows: int) -> tuple[int, int | None]:
        return self.done, self.total


class ProgressBar:
    """Progress on stderr: rows, rows/s, and how far (and how long to go) when the size is
    known. On a terminal, a rich bar; otherwise (or without rich) a plain line every
    ``every_s`` seconds and one at the end, so ``--progress`` into a log shows something."""

    def __init__(
        self,
        enabled: bool,
        reader: TableReader | _Progress,
        label: str,
        *,
        terminal: bool | None = None,
        every_s: float = PLAIN_EVERY_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._bar: Any = None
        self._plain = False
        self._reader = reader
        self._label = label
        self._clock = clock
        self._every_s = every_s
        self._started = self._last = clock()
        self._rows = 0
        if not enabled:
            return
        if terminal is None:
            terminal = sys.stderr.isatty()
        try:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
        except ImportError:  # rich is optional: plain lines then
            terminal = False
        if not terminal:
            self._plain = True
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
        self._bar.start()

    def update(self, rows: int) -> None:
        self._rows = rows
        if self._plain:
            now = self._clock()
            if now - self._last >= self._every_s:
                self._last = now
                self._line(now, final=False)
        elif self._bar is not None:
            done, total = self._reader.progress(rows)
            rate = rows / max(time.perf_counter() - self._started, 1e-9)
            self._bar.update(
                self._task, completed=done, total=total, rows=rows, rate=f"{rate:,.0f}"
            )

    def _line(self, now: float, *, final: bool) -> None:
        elapsed = max(now - self._started, 1e-9)
        rate = self._rows / elapsed
        line = f"progress: {self._label}: {self._rows:,} rows"
        if final:
            line += f", done in {elapsed:.1f} s ({rate:,.0f} rows/s)"
        else:
            line += f", {rate:,.0f} rows/s, {elapsed:.0f} s"
            done, total = self._reader.progress(self._rows)
            if total and 0 < done <= total:
                left = elapsed * (total - done) / done
                line += f", {done / total:.0%} read, about {left:.0f} s left"
        click.echo(line, err=True)

    def close(self) -> None:
        if self._plain:
            self._plain = False
            self._line(self._clock(), final=True)
        elif self._bar is not None:
            self._bar.stop()


def summary_lines(
    counts: Counts,
    seconds: tuple[float, float],
    target: OutputFiles,
    reader: TableReader,
    *,
    first_step: str | None = None,
) -> list[str]:
    """The summary; ``seconds`` is (reading, scoring and writing; building the engine).

    ``fallbacks`` counts the rows that fell back: scored, but not by ``first_step`` (the
    chain's first step). ``failures`` counts, per step, the rows it failed: a row that
    fell back twice fails two steps, so the failures can add up to more than the rows.
    """
    written = target.rejects if target.rejects_writer is not None else None
    return counts_lines(
        counts,
        seconds,
        written,
        reader.notes,
        first_step=first_step,
        unwritten=target.rejects is None,
    )


def counts_lines(
    counts: Counts,
    seconds: tuple[float, float],
    rejects: str | None,
    notes: list[str],
    loading: str = "load the chain and open the input",
    *,
    first_step: str | None = None,
    unwritten: bool = False,
) -> list[str]:
    """The summary of :func:`summary_lines`, from its parts: ``rejects`` is the rejects
    file (or folder) written, if any (``unwritten``: none was asked for, the output being
    a stream); ``loading`` what the second of ``seconds`` took."""
    adds_up = counts.rows_in == counts.scored + counts.rejected
    check = "the counts add up" if adds_up else "THE COUNTS DO NOT ADD UP: a bug, please report it"
    by_scorer = ", ".join(f"{name} {rows:,}" for name, rows in counts.by_scorer.items()) or "-"
    lines = [
        f"rows in   {counts.rows_in:>12,}  = {counts.scored:,} scored + {counts.rejected:,} "
        f"rejected ({check})",
        f"scored    {counts.scored:>12,}  by scorer: {by_scorer}",
    ]
    failures = sum(sum(kinds.values()) for kinds in counts.fallbacks.values())
    if first_step is None:  # without the chain's order, the rows a first step served
        first_step = next(iter(counts.fallbacks), None) or next(iter(counts.by_scorer), "")
    fell_back = counts.scored - counts.by_scorer.get(first_step, 0)
    lines.append(
        f"fallbacks {fell_back:>12,}  rows not scored by the first step, {first_step!r} "
        "(why: the fallback_reason column)"
    )
    if failures:
        lines.append(
            f"failures  {failures:>12,}  rows each step failed (a row counts once per step "
            "that failed it):"
        )
    for step, kinds in counts.fallbacks.items():
        detail = ", ".join(f"{kind} {rows:,}" for kind, rows in kinds.items())
        lines.append(f"          {'':>12}  step {step!r}: {detail}")
    where = f"  -> {rejects}" if rejects else ""
    if unwritten and counts.rejected:
        where = "  not written: the output is a stream; pass --rejects FILE to keep them"
    lines.append(f"rejected  {counts.rejected:>12,}{where}")
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
