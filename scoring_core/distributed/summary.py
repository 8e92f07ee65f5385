"""The cluster-wide picture: every worker's engine diagnostics, added up and kept apart.

Each worker process has its own engine, so its own counters and its own step statuses.
:class:`ClusterSummary` adds the counters up (rows each step served across the cluster,
fallbacks by kind, rejected rows) and keeps what must not be averaged away: a step
unavailable on one worker (its model unreadable there) is listed with that worker and the
reason. The partition counts of a job add up with :func:`merged_counts`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scoring_core.batch import Counts

__all__ = ["ClusterSummary", "UnavailableStep", "counts_as_dict", "merged_counts"]


def merged_counts(parts: Iterable[Counts]) -> Counts:
    """The counts of a whole job from those of its partitions."""
    total = Counts()
    for part in parts:
        total.rows_in += part.rows_in
        total.scored += part.scored
        total.rejected += part.rejected
        for name, rows in part.by_scorer.items():
            total.by_scorer[name] = total.by_scorer.get(name, 0) + rows
        for step, kinds in part.fallbacks.items():
            mine = total.fallbacks.setdefault(step, {})
            for kind, rows in kinds.items():
                mine[kind] = mine.get(kind, 0) + rows
    return total


def counts_as_dict(counts: Counts) -> dict[str, Any]:
    return {
        "rows_in": counts.rows_in,
        "scored": counts.scored,
        "rejected": counts.rejected,
        "by_scorer": dict(counts.by_scorer),
        "fallbacks": {step: dict(kinds) for step, kinds in counts.fallbacks.items()},
    }


@dataclass(frozen=True)
class UnavailableStep:
    """A step that a worker's engine could not load (or lost): where, and why."""

    worker: str
    step: str
    reason: str


@dataclass
class ClusterSummary:
    """What every worker's engine did, from ``{worker: engine.diagnostics()}``.

    ``rows_served`` (step -> rows, across the cluster), ``rows_failed`` (step -> reason
    kind -> rows), ``rows_rejected``, ``rows_exhausted``, ``rows_by_worker`` (worker ->
    step -> rows) and ``unavailable`` (one entry per step and worker where it is not
    ready). The counters are the engines' own, since each was built: a worker that died
    took its counts with it (the job's output and its ``Counts`` are what is exact).
    """

    workers: dict[str, dict[str, Any]]
    rows_served: dict[str, int] = field(default_factory=dict)
    rows_failed: dict[str, dict[str, int]] = field(default_factory=dict)
    rows_rejected: int = 0
    rows_exhausted: int = 0
    rows_by_worker: dict[str, dict[str, int]] = field(default_factory=dict)
    unavailable: list[UnavailableStep] = field(default_factory=list)

    @classmethod
    def from_diagnostics(cls, workers: Mapping[str, Mapping[str, Any]]) -> ClusterSummary:
        summary = cls({name: dict(diagnostics) for name, diagnostics in workers.items()})
        for worker, diagnostics in sorted(workers.items()):
            engine = diagnostics.get("engine", {})
            summary.rows_rejected += int(engine.get("rows_rejected", 0))
            summary.rows_exhausted += int(engine.get("rows_exhausted", 0))
            mine = summary.rows_by_worker.setdefault(worker, {})
            for step in diagnostics.get("steps", []):
                name = step["name"]
                served = int(step.get("rows_served", 0))
                summary.rows_served[name] = summary.rows_served.get(name, 0) + served
                mine[name] = served
                failed = summary.rows_failed.setdefault(name, {})
                for kind, rows in step.get("rows_failed", {}).items():
                    failed[kind] = failed.get(kind, 0) + int(rows)
                if step.get("status") != "ready":
                    reason = str(step.get("reason") or "not ready")
                    summary.unavailable.append(UnavailableStep(worker, name, reason))
        return summary

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable: the totals, each worker's rows, the unavailable steps and
        each worker's whole diagnostics."""
        return {
            "rows_served": dict(self.rows_served),
            "rows_failed": {step: dict(kinds) for step, kinds in self.rows_failed.items()},
            "rows_rejected": self.rows_rejected,
            "rows_exhausted": self.rows_exhausted,
            "rows_by_worker": {w: dict(steps) for w, steps in self.rows_by_worker.items()},
            "unavailable": [
                {"worker": u.worker, "step": u.step, "reason": u.reason} for u in self.unavailable
            ],
            "workers": self.workers,
        }

    def lines(self) -> list[str]:
        """The summary as text: workers, rows per step, then each unavailable step."""
        served = ", ".join(f"{step} {rows:,}" for step, rows in self.rows_served.items()) or "-"
        lines = [f"workers   {len(self.workers):>12,}  rows served by step: {served}"]
        for worker, steps in self.rows_by_worker.items():
            detail = ", ".join(f"{step} {rows:,}" for step, rows in steps.items())
            lines.append(f"          {'':>12}  {worker}: {detail}")
        for step, kinds in self.rows_failed.items():
            if kinds:
                detail = ", ".join(f"{kind} {rows:,}" for kind, rows in kinds.items())
                lines.append(f"          {'':>12}  step {step!r} failed rows: {detail}")
        for item in self.unavailable:
            lines.append(
                f"warning: step {item.step!r} is unavailable on worker {item.worker}: {item.reason}"
            )
        return lines
