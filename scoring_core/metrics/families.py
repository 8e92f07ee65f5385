"""The metric families scoring-core exposes: names, types, labels and help texts.

No prometheus_client here: the collector (:mod:`scoring_core.metrics.collector`) builds
its families from this table, and the docs test checks docs/metrics.md against a scrape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scoring_core.experiments.shadow import SHADOW_OUTCOMES  # the bounded `outcome` label
from scoring_core.observe.counters import FAILURE_KINDS, LOAD_FAILURE_REASONS

__all__ = [
    "EXPERIMENT_FAMILIES",
    "FAILURE_REASONS",
    "FAMILIES",
    "SHADOW_OUTCOMES",
    "Family",
    "failure_reason",
]

#: The bounded ``reason`` label of ``scoring_step_failures_total`` (DESIGN.md "Metrics").
FAILURE_REASONS: tuple[str, ...] = FAILURE_KINDS


def failure_reason(kind: str) -> str:
    """The ``reason`` label for one of the engine's failure kinds; a kind outside the
    bounded set (none today) counts as ``error``, so the label never grows."""
    return kind if kind in FAILURE_REASONS else "error"


@dataclass(frozen=True)
class Family:
    """One metric family: ``name`` as exposed (counters end in ``_total``)."""

    name: str
    type: Literal["counter", "gauge", "histogram"]
    labels: tuple[str, ...]
    help: str


FAMILIES: tuple[Family, ...] = (
    Family(
        "scoring_rows_served_total",
        "counter",
        ("chain", "step"),
        "Rows whose score this step produced.",
    ),
    Family(
        "scoring_step_failures_total",
        "counter",
        ("chain", "step", "reason"),
        "Rows this step failed (they went on to the next step), by reason: "
        + ", ".join(FAILURE_REASONS)
        + ".",
    ),
    Family(
        "scoring_rows_rejected_total",
        "counter",
        ("chain",),
        "Rows refused as bad input (InputError) before any step saw them.",
    ),
    Family(
        "scoring_rows_exhausted_total",
        "counter",
        ("chain",),
        "Rows no step could score (raised ChainExhaustedError, or got the on_exhausted default).",
    ),
    Family(
        "scoring_step_calls_total",
        "counter",
        ("chain", "step"),
        "Calls of this step's scorer (one call scores a row or a batch).",
    ),
    Family(
        "scoring_step_duration_seconds",
        "histogram",
        ("chain", "step"),
        "Duration of one call of this step's scorer, in seconds.",
    ),
    Family(
        "scoring_step_ready",
        "gauge",
        ("chain", "step"),
        "1 when this step has a loaded scorer and can score, else 0.",
    ),
    Family(
        "scoring_model_info",
        "gauge",
        ("chain", "step", "version", "sha256"),
        "1 for the model this step serves now (version and sha256 as its scorer describes "
        "them; empty when unknown).",
    ),
    Family(
        "scoring_model_load_failures_total",
        "counter",
        ("chain", "step", "version", "reason"),
        "Loads and reloads of this step that failed, per model version (empty for a step "
        "without versions), by reason: " + ", ".join(LOAD_FAILURE_REASONS) + ".",
    ),
)


#: The families of experiments (``scoring_core.metrics.register_experiment``); no label
#: ever holds a unit id.
EXPERIMENT_FAMILIES: tuple[Family, ...] = (
    Family(
        "scoring_exposures_total",
        "counter",
        ("experiment", "variant"),
        "Units exposed to this variant for the first time (one exposure record each).",
    ),
    Family(
        "scoring_shadow_rows_total",
        "counter",
        ("experiment", "outcome"),
        "Rows sent to the experiment's shadow chain, by outcome: "
        + ", ".join(SHADOW_OUTCOMES)
        + ".",
    ),
)
