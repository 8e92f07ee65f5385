"""The server's HTTP metrics expose what prometheus_client's Counter and Histogram would."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette")

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from scoring_core.server.http_metrics import _DURATION_BUCKETS, HttpMetrics


def _lines(registry: CollectorRegistry) -> set[str]:
    text = generate_latest(registry).decode()
    return {line for line in text.splitlines() if "_created" not in line}


def test_the_exposition_is_what_prometheus_client_metrics_give() -> None:
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = HttpMetrics(ours_registry)
    assert _lines(ours_registry) == {
        "# HELP scoring_http_requests_total HTTP requests answered, by route template, "
        "method and status code.",
        "# TYPE scoring_http_requests_total counter",
        "# HELP scoring_http_request_duration_seconds Seconds from a request's arrival at its "
        "route to its answer being ready.",
        "# TYPE scoring_http_request_duration_seconds histogram",
    }
    requests = Counter("scoring_http_requests", "HTTP requests answered, by route template, "
                       "method and status code.", ["route", "method", "status"],
                       registry=theirs_registry)  # fmt: skip
    durations = Histogram("scoring_http_request_duration_seconds", "Seconds from a request's "
                          "arrival at its route to its answer being ready.", ["route", "method"],
                          buckets=_DURATION_BUCKETS, registry=theirs_registry)  # fmt: skip
    seen = [("/v2/models/{name}/infer", "POST", 200, 0.0001),  # on a bound: that bucket
            ("/v2/models/{name}/infer", "POST", 400, 0.003),
            ("/v2/models/{name}/infer", "POST", 200, 0.00031),
            ("/metrics", "GET", 200, 42.0)]  # fmt: skip
    for route, method, status, seconds in seen:
        ours.observe(route, method, status, seconds)
        requests.labels(route, method, str(status)).inc()
        durations.labels(route, method).observe(seconds)
    assert _lines(ours_registry) == _lines(theirs_registry)
    assert (
        'scoring_http_request_duration_seconds_bucket{le="0.0001",method="POST",'
        'route="/v2/models/{name}/infer"} 1.0' in _lines(ours_registry)
    )
