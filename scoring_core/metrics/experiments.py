"""The Prometheus collector of experiments: exposures per variant, shadow rows per outcome.

Read from the experiments' own counts when scraped (the exposure writer's and the shadow
worker's), never per row. Experiments are held weakly, like engines.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from scoring_core.errors import MissingExtraError
from scoring_core.metrics.collector import CollectorRegistry, register
from scoring_core.metrics.families import EXPERIMENT_FAMILIES, SHADOW_OUTCOMES

try:
    from prometheus_client.core import CounterMetricFamily, Metric
    from prometheus_client.registry import REGISTRY, Collector
except ImportError as exc:  # pragma: no cover - the serve extra is installed in the tests
    raise MissingExtraError(
        "scoring_core.metrics", extra="serve", library="prometheus_client"
    ) from exc

if TYPE_CHECKING:
    from scoring_core.experiments.experiment import Experiment

__all__ = ["ExperimentCollector", "register_experiment"]

_COLLECTORS: weakref.WeakKeyDictionary[CollectorRegistry, ExperimentCollector] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


class ExperimentCollector(Collector):
    """Every experiment registered in one registry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._experiments: dict[str, weakref.ref[Experiment]] = {}

    def add(self, experiment: Experiment) -> None:
        with self._lock:
            known = self._experiments.get(experiment.name)
            if known is not None and known() is not None:
                raise ValueError(
                    f"an experiment named {experiment.name!r} is already registered in this "
                    "registry"
                )
            self._experiments[experiment.name] = weakref.ref(experiment)

    def describe(self) -> Iterator[Metric]:
        yield from _families().values()

    def collect(self) -> Iterator[Metric]:
        families = _families()
        with self._lock:
            live = [ref() for ref in self._experiments.values()]
        for experiment in live:
            if experiment is None:
                continue
            counts = experiment.metric_counts()
            for variant, exposed in counts["exposures"].items():
                families["scoring_exposures_total"].add_metric([experiment.name, variant], exposed)
            shadow = counts["shadow"]
            if shadow is not None:
                for outcome in SHADOW_OUTCOMES:
                    families["scoring_shadow_rows_total"].add_metric(
                        [experiment.name, outcome], shadow.get(outcome, 0)
                    )
        yield from families.values()


def _families() -> dict[str, CounterMetricFamily]:
    return {
        family.name: CounterMetricFamily(family.name, family.help, labels=family.labels)
        for family in EXPERIMENT_FAMILIES
    }


def register_experiment(
    experiment: Experiment, registry: CollectorRegistry | None = None
) -> ExperimentCollector:
    """Expose ``experiment``: its families, and every variant's chain (and the shadow's)
    as :func:`scoring_core.metrics.register` does."""
    target = REGISTRY if registry is None else registry
    with _LOCK:
        collector = _COLLECTORS.get(target)
        if collector is None:
            collector = ExperimentCollector()
            target.register(collector)
            _COLLECTORS[target] = collector
    collector.add(experiment)
    engines = list(experiment.engines.values())
    if experiment.shadow_engine is not None:
        engines.append(experiment.shadow_engine)
    for engine in engines:
        register(engine, target)
    return collector
