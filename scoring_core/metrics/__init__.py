"""Prometheus metrics of engines (extra ``serve``): which step served, failures by reason,
latency, readiness and model identity, read from the engines' counters at scrape time.

``register(engine, registry=None)`` exposes an engine in a prometheus_client registry and
returns the registry's collector; ``write_textfile(path, *engines)`` writes the metrics of
engines in Prometheus text format (for a node exporter's textfile collector or a
Pushgateway). docs/metrics.md lists every metric. prometheus_client is imported when one
of these is first called; without it they raise :class:`~scoring_core.errors.MissingExtraError`
naming ``pip install 'scoring-core[serve]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scoring_core.metrics.families import (
    EXPERIMENT_FAMILIES,
    FAILURE_REASONS,
    FAMILIES,
    SHADOW_OUTCOMES,
    Family,
)

if TYPE_CHECKING:
    from pathlib import Path

    from prometheus_client.registry import CollectorRegistry

    from scoring_core.engine import Engine
    from scoring_core.experiments.experiment import Experiment
    from scoring_core.metrics.collector import ChainCollector
    from scoring_core.metrics.experiments import ExperimentCollector

__all__ = [
    "EXPERIMENT_FAMILIES",
    "FAILURE_REASONS",
    "FAMILIES",
    "SHADOW_OUTCOMES",
    "Family",
    "register",
    "register_experiment",
    "unregister",
    "write_textfile",
]


def register(engine: Engine, registry: CollectorRegistry | None = None) -> ChainCollector:
    """Expose ``engine`` in ``registry`` (the default registry when None); return the
    registry's collector. Several engines in one registry share that collector, each with
    its own ``chain`` label; the same engine twice, or two chains of one name, is a
    ValueError naming the chain."""
    from scoring_core.metrics import collector

    return collector.register(engine, registry)


def register_experiment(
    experiment: Experiment, registry: CollectorRegistry | None = None
) -> ExperimentCollector:
    """Expose ``experiment`` in ``registry``: ``scoring_exposures_total{experiment,variant}``,
    ``scoring_shadow_rows_total{experiment,outcome}``, and each of its chains as
    :func:`register` does."""
    from scoring_core.metrics import experiments

    return experiments.register_experiment(experiment, registry)


def unregister(engine: Engine, registry: CollectorRegistry | None = None) -> None:
    """Stop exposing ``engine`` in ``registry``; KeyError when it was not registered."""
    from scoring_core.metrics import collector

    collector.unregister(engine, registry)


def write_textfile(path: str | Path, *sources: Engine | Experiment) -> None:
    """Write the metrics of ``sources`` (engines, and experiments with all their chains) to
    ``path`` in Prometheus text format, atomically (a temporary file beside it, then a
    rename)."""
    from scoring_core.metrics import textfile

    textfile.write_textfile(path, *sources)
