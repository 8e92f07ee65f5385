"""The one place where calls are observed: counters and latency histograms.

Every step call goes through :mod:`scoring_core.chain.attempt`, which records it here;
``engine.diagnostics()`` and the Prometheus collector (``scoring_core.metrics``) both read
these counters, and neither adds anything to the scoring path.

Each :class:`StepCounters` guards its numbers with its own lock (no reliance on the GIL's
atomicity of list and dict operations). A call costs one lock round trip and a bisect
over the 15 bucket bounds: about 0.3 us, measured in ``benchmarks/bench_chain.py``.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FAILURE_KINDS",
    "LATENCY_BUCKETS_S",
    "LOAD_FAILURE_REASONS",
    "ChainCounters",
    "Histogram",
    "StepCounters",
    "StepSnapshot",
    "load_failure_reason",
]

# Upper bounds of the latency buckets, in seconds (Prometheus' ``le``), 25 us to 1 s; a
# last bucket (+Inf) takes the slower calls.
LATENCY_BUCKETS_S = (
    25e-6,
    50e-6,
    100e-6,
    250e-6,
    500e-6,
    1e-3,
    2.5e-3,
    5e-3,
    10e-3,
    25e-3,
    50e-3,
    100e-3,
    250e-3,
    500e-3,
    1.0,
)
_BUCKETS_NS = tuple(round(bound * 1e9) for bound in LATENCY_BUCKETS_S)

# Why a step failed for its rows: a bounded set, so a metric label never explodes.
FAILURE_KINDS = (
    "unavailable",
    "error",
    "timeout",
    "bad_shape",
    "non_finite",
    "out_of_range",
    "circuit_open",
    "deadline",
)


@dataclass(frozen=True)
class Histogram:
    """A latency histogram at one moment: per-bucket counts (the last is +Inf), their
    sum in seconds, and the fastest and slowest call seen."""

    bounds_s: tuple[float, ...]
    counts: tuple[int, ...]
    sum_s: float
    min_s: float | None
    max_s: float | None

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(le, calls at or under le)`` pairs, +Inf last, as Prometheus exposes them."""
        pairs = []
        running = 0
        for bound, count in zip((*self.bounds_s, float("inf")), self.counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile in seconds, interpolated inside its bucket (as Prometheus'
        ``histogram_quantile``) and kept within the fastest and slowest call seen."""
        total = self.count
        if total == 0 or self.min_s is None or self.max_s is None:
            return None
        rank = q * total
        running = 0
        lower = 0.0
        estimate = self.max_s
        for bound, count in zip((*self.bounds_s, float("inf")), self.counts, strict=True):
            if count and running + count >= rank:
                upper = bound if bound != float("inf") else self.max_s
                estimate = lower + (upper - lower) * (rank - running) / count
                break
            running += count
            lower = bound
        return min(max(estimate, self.min_s), self.max_s)


#: The bounded ``reason`` of a failed model load (``scoring_model_load_failures_total``).
LOAD_FAILURE_REASONS = (
    "missing",
    "sha256",
    "invalid",
    "signature",
    "self_test",
    "timeout",
    "other",
)
_LOAD_REASON_WORDS = (
    ("timeout", ("load_timeout_s", "did not finish within", "took longer")),
    ("sha256", ("sha256",)),
    ("self_test", ("self-test", "self_test", "golden rows")),
    ("missing", ("not found", "does not exist", "not a regular file", "cannot be read")),
    ("invalid", ("not a valid onnx", "could not load model file", "parsing failed", "empty")),
    ("signature", ("input", "output", "feature", "features", "class")),
)


def load_failure_reason(text: str) -> str:
    """The bounded kind of a load failure's reason text (``other`` when none fits)."""
    lowered = text.lower()
    for reason, words in _LOAD_REASON_WORDS:
        if any(word in lowered for word in words):
            return reason
    return "other"


class StepCounters:
    """What one step did: calls, rows in and served, failed rows by kind, call latency,
    and named events (abandoned calls, breaker moves, reloads)."""

    __slots__ = (
        "_buckets",
        "_calls",
        "_events",
        "_failed",
        "_load_failed",
        "_lock",
        "_max_ns",
        "_min_ns",
        "_rows_in",
        "_rows_served",
        "_sum_ns",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls = 0
        self._rows_in = 0
        self._rows_served = 0
        self._failed: dict[str, int] = {}
        self._buckets = [0] * (len(_BUCKETS_NS) + 1)
        self._sum_ns = 0
        self._min_ns = -1
        self._max_ns = 0
        self._events: dict[str, int] = {}
        self._load_failed: dict[tuple[str, str], int] = {}

    def record_call(self, rows_in: int, rows_served: int, elapsed_ns: int) -> None:
        """One call of the step's scorer: ``rows_in`` given, ``rows_served`` accepted."""
        bucket = bisect_left(_BUCKETS_NS, elapsed_ns)
        with self._lock:
            self._calls += 1
            self._rows_in += rows_in
            self._rows_served += rows_served
            self._buckets[bucket] += 1
            self._sum_ns += elapsed_ns
            if elapsed_ns > self._max_ns:
                self._max_ns = elapsed_ns
            if self._min_ns < 0 or elapsed_ns < self._min_ns:
                self._min_ns = elapsed_ns

    def record_failed(self, kind: str, rows: int) -> None:
        """``rows`` the step failed, for a reason of ``kind`` (one of FAILURE_KINDS)."""
        with self._lock:
            self._failed[kind] = self._failed.get(kind, 0) + rows

    def record_load_failure(self, version: str, reason: str) -> None:
        """A load (or reload) of the step that failed: of model ``version`` ("" when the
        step has no versions), for a reason of kind ``reason`` (LOAD_FAILURE_REASONS)."""
        key = (version, reason if reason in LOAD_FAILURE_REASONS else "other")
        with self._lock:
            self._load_failed[key] = self._load_failed.get(key, 0) + 1

    def count(self, event: str, n: int = 1) -> None:
        """Count a named event of the step (``abandoned_calls``, ``reloads``, ...)."""
        with self._lock:
            self._events[event] = self._events.get(event, 0) + n

    def snapshot(self) -> StepSnapshot:
        with self._lock:
            return StepSnapshot(
                calls=self._calls,
                rows_in=self._rows_in,
                rows_served=self._rows_served,
                rows_failed=dict(self._failed),
                latency=Histogram(
                    LATENCY_BUCKETS_S,
                    tuple(self._buckets),
                    self._sum_ns / 1e9,
                    None if self._min_ns < 0 else self._min_ns / 1e9,
                    None if self._min_ns < 0 else self._max_ns / 1e9,
                ),
                events=dict(self._events),
                load_failures=dict(self._load_failed),
            )


@dataclass(frozen=True)
class StepSnapshot:
    """A step's counters at one moment (see :class:`StepCounters`)."""

    calls: int
    rows_in: int
    rows_served: int
    rows_failed: Mapping[str, int]
    latency: Histogram
    events: Mapping[str, int] = field(default_factory=dict)
    # (model version, reason kind) -> failed loads of that version
    load_failures: Mapping[tuple[str, str], int] = field(default_factory=dict)

    def event(self, name: str) -> int:
        return self.events.get(name, 0)

    def as_dict(self) -> dict[str, Any]:
        """The keys ``engine.diagnostics()`` shows for a step."""
        p50, p99 = self.latency.quantile(0.5), self.latency.quantile(0.99)
        return {
            "calls": self.calls,
            "rows_in": self.rows_in,
            "rows_served": self.rows_served,
            "rows_failed": dict(self.rows_failed),
            "latency_ms": None
            if p50 is None or p99 is None
            else {
                "p50": round(p50 * 1e3, 4),
                "p99": round(p99 * 1e3, 4),
                "samples": self.latency.count,
            },
        }


class ChainCounters:
    """What the chain as a whole did: rows rejected (bad input), rows no step could score,
    calls the watchdog cancelled, reloads by the file watcher."""

    __slots__ = ("_counts", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def count(self, event: str, n: int = 1) -> None:
        with self._lock:
            self._counts[event] = self._counts.get(event, 0) + n

    def get(self, event: str) -> int:
        with self._lock:
            return self._counts.get(event, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
