"""The bad day: circuit breakers, timeouts that cost nothing on the normal path, and
watching a step's files to reload it."""

from scoring_core.resilience.breaker import CircuitBreaker
from scoring_core.resilience.timeouts import ThreadedRunner, Watchdog
from scoring_core.resilience.watch import FileWatcher

__all__ = ["CircuitBreaker", "FileWatcher", "ThreadedRunner", "Watchdog"]
