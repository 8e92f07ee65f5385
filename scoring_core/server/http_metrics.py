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

import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

__all__ = ["HttpMetrics", "families_of_registry", "merged_text"]

# requests are fast: 100 us to 10 s
_DURATION_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
)  # fmt: skip
# each bucket's `le` label, as prometheus_client writes it
_LE = tuple(floatToGoString(b) for b in (*_DURATION_BUCKETS, float("inf")))  # type: ignore[no-untyped-call]
_LOWEST_WINS = frozenset({"scoring_step_ready"})


class HttpMetrics:
    """``scoring_http_requests_total{route,method,status}`` and
    ``scoring_http_request_duration_seconds{route,method}`` in ``registry``; ``route`` is
    the route's template (``/v2/models/{name}/infer``), never a path with a name in it.

    A collector of plain counts, read when scraped: a request adds to a few integers under
    one lock (measured 0.7 us, against 3.2 us for a prometheus_client Counter and Histogram
    with their three locks).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = {}
        # (route, method) -> [count per bucket (the last: above every bound)..., sum]
        self._durations: dict[tuple[str, str], list[float]] = {}
        registry.register(self)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        bucket = bisect_left(_DURATION_BUCKETS, seconds)  # the first bound >= seconds
        key = (route, method)
        with self._lock:
            counts = self._requests
            counts[(route, method, status)] = counts.get((route, method, status), 0) + 1
            duration = self._durations.get(key)
            if duration is None:
                duration = self._durations[key] = [0] * (len(_DURATION_BUCKETS) + 2)
            duration[bucket] += 1
            duration[-1] += seconds

    def describe(self) -> list[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            requests = dict(self._requests)
            durations = {key: list(value) for key, value in self._durations.items()}
        yield from self._families(requests, durations)

    @staticmethod
    def _families(
        requests: dict[tuple[str, str, int], int] | None = None,
        durations: dict[tuple[str, str], list[float]] | None = None,
    ) -> list[Metric]:
        total = CounterMetricFamily(
            "scoring_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            labels=["route", "method", "status"],
        )
        for (route, method, status), count in sorted((requests or {}).items()):
            total.add_metric([route, method, str(status)], count)
        histogram = HistogramMetricFamily(
            "scoring_http_request_duration_seconds",
            "Seconds from a request's arrival at its route to its answer being ready.",
            labels=["route", "method"],
        )
        for labels, values in sorted((durations or {}).items()):
            cumulative = list(accumulate(values[:-1]))
            buckets = list(zip(_LE, cumulative, strict=True))
            histogram.add_metric(list(labels), buckets, sum_value=values[-1])
        return [total, histogram]


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
