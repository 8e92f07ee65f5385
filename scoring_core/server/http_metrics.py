"""The server's Prometheus metrics: the chains' (``scoring_core.metrics``) plus HTTP
request counts and durations, and how ``--workers N`` reports the whole server.

Each worker process has its own registry. With several workers, the worker a scrape
reaches asks every other worker for its samples (over the control sockets of
:mod:`scoring_core.server.workers`) and adds them up: counters and histograms are summed;
``scoring_step_ready`` is the lowest of the workers (a step is ready on the server when it
is ready in every worker); ``scoring_model_info`` is the union of the workers' models (two
during a reload that has reached some workers only). prometheus_client's own
multiprocess mode cannot do this: it aggregates only its own Counter and Histogram
objects, not a collector that reads the engines' counters when scraped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

__all__ = ["HttpMetrics", "families_of_registry", "merged_text"]

# requests are fast: 100 us to 10 s
_DURATION_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
)  # fmt: skip
_LOWEST_WINS = frozenset({"scoring_step_ready"})


class HttpMetrics:
    """``scoring_http_requests_total{route,method,status}`` and
    ``scoring_http_request_duration_seconds{route,method}`` in ``registry``; ``route`` is
    the route's template (``/v2/models/{name}/infer``), never a path with a name in it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "scoring_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "scoring_http_request_duration_seconds",
            "Seconds from a request's arrival at its route to its answer being ready.",
            ["route", "method"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )

        # the labelled children, kept: labels() takes a lock and builds a key per call
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        children = self._children.get((route, method, status))
        if children is None:
            children = self._children[(route, method, status)] = (
                self.requests.labels(route, method, str(status)),
                self.duration.labels(route, method),
            )
        children[0].inc()
        children[1].observe(seconds)


def families_of_registry(registry: CollectorRegistry) -> list[dict[str, Any]]:
    """The registry's families as JSON-serialisable dicts (to send to another worker)."""
    return [
        {
            "name": family.name,
            "documentation": family.documentation,
            "type": family.type,
            "samples": [
                [s.name, s.labels, s.value]
                for s in family.samples
                if not s.name.endswith("_created")
            ],
        }
        for family in registry.collect()
    ]


class _Families:
    """A registry-like object holding fixed families (what generate_latest reads)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def merged_text(workers: Iterable[list[dict[str, Any]]]) -> bytes:
    """The Prometheus text of several workers' families, added up (see the module)."""
    order: list[str] = []
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for worker in workers:
        for raw in worker:
            name = raw["name"]
            if name not in families:
                order.append(name)
                families[name] = Metric(name, raw["documentation"], raw["type"])
                values[name] = {}
            samples = values[name]
            lowest = name in _LOWEST_WINS
            highest = raw["type"] in ("gauge", "info", "stateset") and not lowest
            for sample_name, labels, value in raw["samples"]:
                key = (sample_name, tuple(sorted(labels.items())))
                if key not in samples:
                    samples[key] = value
                elif lowest:
                    samples[key] = min(samples[key], value)
                elif highest:
                    samples[key] = max(samples[key], value)
                else:
                    samples[key] = samples[key] + value
    out = []
    for name in order:
        family = families[name]
        family.samples = [
            Sample(sample_name, dict(labels), value)
            for (sample_name, labels), value in values[name].items()
        ]
        out.append(family)
    return generate_latest(_Families(out))  # type: ignore[arg-type,unused-ignore]
