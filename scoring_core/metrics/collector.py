"""The Prometheus collector: reads the engines' counters when scraped, never per row.

One :class:`ChainCollector` per registry holds every engine registered in it, so each
family is exposed once (one HELP, one TYPE) with samples per ``chain``. Engines are held
weakly: one that is garbage-collected drops out of the scrape.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from scoring_core.errors import MissingExtraError
from scoring_core.metrics.families import FAILURE_REASONS, FAMILIES, failure_reason

try:
    from prometheus_client import utils as _prometheus_utils
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.exposition import write_to_textfile
    from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
except ImportError as exc:  # pragma: no cover - the serve extra is installed in the tests
    raise MissingExtraError(
        "scoring_core.metrics", extra="serve", library="prometheus_client"
    ) from exc

if TYPE_CHECKING:
    from scoring_core.engine import Engine
    from scoring_core.observe.snapshot import ChainSnapshot

__all__ = [
    "ChainCollector",
    "CollectorRegistry",
    "collector_for",
    "families_of",
    "register",
    "unregister",
    "write_to_textfile",
]

# how prometheus_client writes an ``le`` bound ("2.5e-05", "+Inf"); it is untyped
_le_text: Callable[[float], str] = _prometheus_utils.floatToGoString
_COLLECTORS: weakref.WeakKeyDictionary[CollectorRegistry, ChainCollector] = (
    weakref.WeakKeyDictionary()
)
_COLLECTORS_LOCK = threading.Lock()


class ChainCollector(Collector):
    """Every engine registered in one registry, exposed as the families of
    :data:`scoring_core.metrics.families.FAMILIES`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: dict[str, weakref.ref[Engine]] = {}

    @property
    def chains(self) -> tuple[str, ...]:
        """The names of the chains registered, live ones only."""
        return tuple(name for name, _ in self._live())

    def add(self, engine: Engine) -> None:
        """Expose ``engine``; ValueError when it, or another chain of its name, already is."""
        name = engine.name
        with self._lock:
            self._prune()
            for known, ref in self._engines.items():
                if ref() is engine:
                    raise ValueError(
                        f"the engine of chain {known!r} is already registered in this registry"
                    )
            if name in self._engines:
                raise ValueError(
                    f"a chain named {name!r} is already registered in this registry; each "
                    "chain needs its own name (the `name:` key of its YAML, or the file's stem)"
                )
            self._engines[name] = weakref.ref(engine)

    def remove(self, engine: Engine) -> None:
        """Stop exposing ``engine``; KeyError when it is not registered here."""
        with self._lock:
            for known, ref in list(self._engines.items()):
                if ref() is engine:
                    del self._engines[known]
                    return
        raise KeyError(f"the engine of chain {engine.name!r} is not registered in this registry")

    def _prune(self) -> None:
        for name in [name for name, ref in self._engines.items() if ref() is None]:
            del self._engines[name]

    def _live(self) -> list[tuple[str, Engine]]:
        with self._lock:
            pairs = [(name, ref()) for name, ref in self._engines.items()]
        return [(name, engine) for name, engine in pairs if engine is not None]

    def describe(self) -> Iterator[Metric]:
        """The families without samples (the registry checks names with them)."""
        yield from _empty_families().values()

    def collect(self) -> Iterator[Metric]:
        """Read each engine's counters now and yield one family per metric."""
        snapshots = [engine.snapshot() for _, engine in self._live()]
        yield from families_of(snapshots)


def _empty_families() -> dict[str, Any]:
    families: dict[str, Any] = {}
    for family in FAMILIES:
        kind = {
            "counter": CounterMetricFamily,
            "gauge": GaugeMetricFamily,
            "histogram": HistogramMetricFamily,
        }[family.type]
        families[family.name] = kind(family.name, family.help, labels=family.labels)
    return families


def families_of(snapshots: list[ChainSnapshot]) -> Iterator[Metric]:
    """The metric families of the chains ``snapshots`` describe, one of each name."""
    families = _empty_families()
    served = families["scoring_rows_served_total"]
    failures = families["scoring_step_failures_total"]
    calls = families["scoring_step_calls_total"]
    duration = families["scoring_step_duration_seconds"]
    ready = families["scoring_step_ready"]
    model = families["scoring_model_info"]
    load_failures = families["scoring_model_load_failures_total"]
    for chain in snapshots:
        families["scoring_rows_rejected_total"].add_metric([chain.name], chain.rows_rejected)
        families["scoring_rows_exhausted_total"].add_metric([chain.name], chain.rows_exhausted)
        for step in chain.steps:
            labels = [chain.name, step.name]
            counters = step.counters
            served.add_metric(labels, counters.rows_served)
            by_reason = dict.fromkeys(FAILURE_REASONS, 0)
            for kind, rows in counters.rows_failed.items():
                by_reason[failure_reason(kind)] += rows
            for reason, rows in by_reason.items():
                failures.add_metric([*labels, reason], rows)
            calls.add_metric(labels, counters.calls)
            latency = counters.latency
            duration.add_metric(
                labels,
                buckets=[(_le_text(le), count) for le, count in latency.cumulative()],
                sum_value=latency.sum_s,
            )
            ready.add_metric(labels, 1 if step.ready and not chain.closed else 0)
            for (version, reason), loads in counters.load_failures.items():
                load_failures.add_metric([*labels, version, reason], loads)
            if step.model is not None and not chain.closed:
                model.add_metric([*labels, step.model.version or "", step.model.sha256 or ""], 1)
    for family in FAMILIES:
        yield families[family.name]


def collector_for(registry: CollectorRegistry | None = None) -> ChainCollector:
    """The registry's collector of chains, created and registered the first time."""
    target = REGISTRY if registry is None else registry
    with _COLLECTORS_LOCK:
        collector = _COLLECTORS.get(target)
        if collector is None:
            collector = ChainCollector()
            target.register(collector)  # ValueError if another collector has our names
            _COLLECTORS[target] = collector
        return collector


def register(engine: Engine, registry: CollectorRegistry | None = None) -> ChainCollector:
    """Expose ``engine``'s metrics in ``registry`` (prometheus_client's default one when
    None) and return the registry's collector. Several engines share one collector;
    registering an engine twice, or two chains of one name, is a ValueError."""
    collector = collector_for(registry)
    collector.add(engine)
    return collector


def unregister(engine: Engine, registry: CollectorRegistry | None = None) -> None:
    """Stop exposing ``engine`` in ``registry``; KeyError when it was not registered."""
    collector_for(registry).remove(engine)
