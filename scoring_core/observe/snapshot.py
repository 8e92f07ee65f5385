"""A chain's counters, states and model identities at one moment, for metrics to read.

:meth:`Engine.snapshot() <scoring_core.engine.Engine.snapshot>` builds a
:class:`ChainSnapshot` from the same counters ``engine.diagnostics()`` reads; the
Prometheus collector (``scoring_core.metrics``) turns one into metric families at scrape
time, so nothing is added to the scoring path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from scoring_core.observe.counters import StepSnapshot

__all__ = ["ChainSnapshot", "ModelIdentity", "StepView"]


@dataclass(frozen=True)
class ModelIdentity:
    """The model a step serves, from its scorer's ``describe()``: ``model_version`` and
    ``sha256`` (either may be None when the scorer does not say)."""

    version: str | None
    sha256: str | None


@dataclass(frozen=True)
class StepView:
    """One step: its name, scorer, whether it can score, its counters and its model
    (None when its scorer describes no model, or it has no scorer)."""

    name: str
    scorer: str
    ready: bool
    counters: StepSnapshot
    model: ModelIdentity | None = None


@dataclass(frozen=True)
class ChainSnapshot:
    """A whole chain: its name, its steps in chain order, and its own counters
    (``rows_rejected``, ``rows_exhausted``, ``timeouts_cancelled``, ``watch_reloads``)."""

    name: str
    closed: bool
    steps: tuple[StepView, ...]
    counters: Mapping[str, int] = field(default_factory=dict)

    @property
    def rows_rejected(self) -> int:
        return self.counters.get("rows_rejected", 0)

    @property
    def rows_exhausted(self) -> int:
        return self.counters.get("rows_exhausted", 0)
