"""What the conformance check finds: the names of its checks, one violation, the report.

:func:`~scoring_core.testing.check_scorer` returns a :class:`ConformanceReport`; see
:mod:`scoring_core.testing` for what each check name means.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CHECKS", "ConformanceReport", "Violation"]


CHECKS = (
    "options",
    "construct",
    "score",
    "shape",
    "finite",
    "output_range",
    "input",
    "deterministic",
    "batch_independence",
    "threads",
    "close",
    "engine",
)


@dataclass(frozen=True)
class Violation:
    """One way the scorer breaks the contract; ``check`` is one of the names listed above."""

    check: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.message}"


@dataclass(frozen=True)
class ConformanceReport:
    """What :func:`check_scorer` found.

    :ivar scorer: what was checked (the factory's name, or the registered scorer name).
    :ivar violations: every problem found, in the order the checks ran.
    :ivar passed: the checks that ran and found nothing.
    :ivar skipped: checks that did not run, each with the reason.
    """

    scorer: str
    violations: tuple[Violation, ...]
    passed: tuple[str, ...]
    skipped: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when no check found a violation."""
        return not self.violations

    def checks_failed(self) -> tuple[str, ...]:
        """The names of the checks with at least one violation, without repeats."""
        return tuple(dict.fromkeys(v.check for v in self.violations))

    def format(self) -> str:
        """A plain-text report: one line per violation, then what passed and what did not run."""
        if self.ok:
            lines = [f"scorer {self.scorer} conforms ({len(self.passed)} checks passed)"]
        else:
            lines = [f"scorer {self.scorer} has {len(self.violations)} violation(s):"]
            lines += [f"  - {violation}" for violation in self.violations]
            if self.passed:
                lines.append(f"passed: {', '.join(self.passed)}")
        if self.skipped:
            lines.append("not run: " + "; ".join(self.skipped))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()
