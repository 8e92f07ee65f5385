"""A chain step at run time: its scorer, its status, and its counters."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from scoring_core.chain.slot import CLOSE_ERROR_RECORD, ScorerSlot, close_scorer, input_dtype_of
from scoring_core.config.schema import StepConfig
from scoring_core.errors import ConfigError, exception_text
from scoring_core.observe.counters import StepCounters, load_failure_reason
from scoring_core.observe.snapshot import ModelIdentity, StepView
from scoring_core.plugins import ScorerRegistration
from scoring_core.resilience.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from scoring_core.resilience.timeouts import ThreadedRunner, join_at_exit
from scoring_core.results import Provenance
from scoring_core.scorer import (
    DescribesModel,
    Scorer,
    ScorerContext,
    SupportsDescribe,
)

__all__ = ["CLOSE_ERROR_RECORD", "READY", "UNAVAILABLE", "ScorerSlot", "Step", "close_scorer"]

READY = "ready"
UNAVAILABLE = "unavailable"
logger = logging.getLogger("scoring_core")
# The attribute that marks the log record of a step that could not load (the CLI
# reports those in its own words and drops the record).
UNAVAILABLE_RECORD = "scoring_unavailable_step"


@dataclass
class LoadOutcome:
    scorer: Any | None
    reason: str | None
    seconds: float
    config_error: ConfigError | None = None
    # (version, reason) of each model version that failed, from a versioned scorer
    version_failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)


class _PendingLoad:
    """One load running on its own thread; whoever comes second (the loader finishing,
    or the step giving up at its load timeout) decides what happens to the scorer."""

    __slots__ = ("abandoned", "done", "lock", "outcome")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.abandoned = False
        self.outcome: LoadOutcome | None = None


class Step:
    """One configured step: loads its scorer and keeps its status and counters."""

    def __init__(
        self,
        config: StepConfig,
        registration: ScorerRegistration,
        context: ScorerContext,
        *,
        required: bool = False,
        clock: Callable[[], float] = time.monotonic,
        chain_deadline: bool = False,
        chain: str = "default",
        config_sha256: str | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.registration = registration
        # A scorer choosing among candidates (model versions) checks each with the step's
        # self-test, so it serves one that passes.
        self.context = (
            context
            if config.self_test is None
            else dataclasses.replace(context, self_test=self._self_test)
        )
        self.chain = chain
        self.config_sha256 = config_sha256
        self.required = required
        self.counters = StepCounters()
        self.slot: ScorerSlot | None = None
        self.reason: str | None = None
        self.load_seconds = 0.0
        self.reload_error: str | None = None
        # A ConfigError the scorer raised at the first load: the engine refuses to start.
        self.config_error: ConfigError | None = None
        self.closed = False
        self.timeout_s = None if config.timeout_ms is None else config.timeout_ms / 1e3
        # strict: even a cancellable scorer runs on a worker thread, abandoned at the deadline
        self.strict = self.timeout_s is not None and config.timeout_mode == "strict"
        self.load_timeout_s = config.load_timeout_s
        breaker = config.circuit_breaker
        self.breaker = (
            None
            if breaker is None
            else CircuitBreaker(
                failure_rate=breaker.failure_rate,
                minimum_calls=breaker.minimum_calls,
                window=breaker.window,
                open_seconds=breaker.open_seconds,
                half_open_calls=breaker.half_open_calls,
                clock=clock,
                on_event=self.counters.count,
            )
        )
        self.guarded = self.timeout_s is not None or self.breaker is not None or chain_deadline
        # created with timeout_ms; it starts threads only for a call that needs one
        self.runner = (
            ThreadedRunner(self.name, on_abandoned=lambda: self.counters.count("abandoned_calls"))
            if self.timeout_s is not None
            else None
        )
        self._retired: list[ScorerSlot] = []

    @property
    def scorer(self) -> Any | None:
        slot = self.slot
        return None if slot is None else slot.scorer

    @property
    def status(self) -> str:
        return READY if self.slot is not None else UNAVAILABLE

    def _load_new(self) -> LoadOutcome:
        """Load a scorer on a thread of its own, waiting at most ``load_timeout_s``.

        Nothing can stop Python code (or a native call) running in another thread, so a
        load past its bound is abandoned: the step reports why, and the scorer the load
        builds, if it ever finishes, is closed at once.
        """
        pending = _PendingLoad()
        started = time.perf_counter()
        loader = threading.Thread(
            target=self._load_on_thread,
            args=(pending,),
            name=f"load-step-{self.name}",
            daemon=True,
        )
        loader.start()
        finished = pending.done.wait(self.load_timeout_s)
        with pending.lock:
            outcome = pending.outcome
            if not finished and outcome is None:
                pending.abandoned = True
        if outcome is not None:
            return outcome
        self.counters.count("abandoned_loads")
        join_at_exit(loader)
        return LoadOutcome(
            None,
            f"loading took longer than load_timeout_s ({self.load_timeout_s:g} s), so it "
            "was abandoned: its thread cannot be stopped and runs on until the scorer's "
            "code returns (the scorer is closed then). Set the step's load_timeout_s if "
            "this model needs longer to load",
            time.perf_counter() - started,
        )

    def _load_on_thread(self, pending: _PendingLoad) -> None:
        try:
            outcome = self._load_and_test()
        except BaseException as exc:  # never lose the load's end: the step waits for it
            outcome = LoadOutcome(None, exception_text(exc), 0.0)
        with pending.lock:
            abandoned = pending.abandoned
            if not abandoned:
                pending.outcome = outcome
        if abandoned and outcome.scorer is not None:
            logger.warning(
                "step %r: an abandoned load finished after %.1f s; closing its scorer",
                self.name,
                outcome.seconds,
            )
            close_scorer(outcome.scorer, self.name)
        pending.done.set()

    def _load_and_test(self) -> LoadOutcome:
        started = time.perf_counter()
        try:
            scorer = self.registration.factory(self.context)
        except Exception as exc:
            reason = exception_text(exc)
            error = exc if isinstance(exc, ConfigError) else None
            outcome = LoadOutcome(None, reason, time.perf_counter() - started, error)
            # a scorer of model versions says which versions failed (the onnx scorer)
            failed = getattr(exc, "version_failures", None)
            if failed:
                outcome.version_failures = [(str(v), str(why)) for v, why in failed]
            return outcome
        if isinstance(scorer, type) or not isinstance(scorer, Scorer) or not callable(scorer.score):
            close_scorer(scorer, self.name)
            return LoadOutcome(
                None,
                f"scorer {self.registration.name!r}: its factory returned "
                f"{type(scorer).__name__ if not isinstance(scorer, type) else 'a class'}, not "
                "an object with a score(X) method; register a factory that builds the scorer",
                time.perf_counter() - started,
            )
        problem = self._self_test(scorer)
        if problem is not None:
            close_scorer(scorer, self.name)
            return LoadOutcome(None, problem, time.perf_counter() - started)
        return LoadOutcome(scorer, None, time.perf_counter() - started)

    def _self_test(self, scorer: Any) -> str | None:
        """Score the configured golden rows; describe the misses, or None when all pass."""
        test = self.config.self_test
        if test is None:
            return None
        width = len(self.context.feature_names)
        rows = np.asarray(test.rows, dtype=input_dtype_of(scorer))
        if rows.ndim != 2 or rows.shape[1] != width:
            return f"self_test rows must each have {width} values (the features, in order)"
        try:
            got = np.asarray(scorer.score(np.ascontiguousarray(rows)), dtype=np.float64)
            got = got.reshape(rows.shape[0])
        except Exception as exc:
            return f"self_test: scoring the golden rows raised {exception_text(exc)}"
        expected = np.asarray(test.expected, dtype=np.float64)
        misses = np.flatnonzero(~(np.abs(got - expected) <= test.tolerance))
        if misses.size == 0:
            return None
        shown = ", ".join(
            f"row {i}: expected {expected[i]:.6g}, got {got[i]:.6g}" for i in misses[:5]
        )
        more = f" and {misses.size - 5} more" if misses.size > 5 else ""
        return (
            f"self_test failed for {misses.size} of {rows.shape[0]} golden rows "
            f"(tolerance {test.tolerance:g}): {shown}{more}"
        )

    def _count_load_failures(self, outcome: LoadOutcome) -> None:
        """Count the failed loads of this load: each failed model version (those a loaded
        scorer skipped too, from its describe()), or the load itself when it failed."""
        failed = list(outcome.version_failures)
        if outcome.scorer is not None and isinstance(outcome.scorer, SupportsDescribe):
            try:
                details = outcome.scorer.describe()
            except Exception:
                details = {}
            for entry in details.get("version_failures") or ():
                if isinstance(entry, Mapping):
                    failed.append((str(entry.get("version", "")), str(entry.get("reason", ""))))
        elif outcome.scorer is None and not failed:
            failed.append(("", outcome.reason or ""))
        for version, why in failed:
            self.counters.record_load_failure(version, load_failure_reason(why))

    def load(self) -> None:
        """Load the scorer; a failure leaves the step unavailable with its reason."""
        outcome = self._load_new()
        self._count_load_failures(outcome)
        self.reason = outcome.reason
        self.load_seconds = outcome.seconds
        self.config_error = outcome.config_error
        if outcome.scorer is None:
            if outcome.config_error is not None:
                return  # the engine raises it
            logger.warning(
                "step %r (scorer %r) is unavailable: %s",
                self.name,
                self.registration.name,
                outcome.reason,
                extra={UNAVAILABLE_RECORD: self.name},
            )
            return
        self.slot = self._slot_for(outcome.scorer)
        logger.info(
            "step %r (scorer %r) loaded in %.1f ms",
            self.name,
            self.registration.name,
            outcome.seconds * 1e3,
        )

    def reload(self) -> bool:
        """Load a fresh scorer beside the old one and swap it in; True when swapped.

        A failed reload keeps the old scorer serving and records why. The old scorer
        is closed once the calls already using it have finished.
        """
        outcome = self._load_new()
        self._count_load_failures(outcome)
        self.counters.count("reloads" if outcome.scorer is not None else "reload_failures")
        if outcome.scorer is None:
            self.reload_error = outcome.reason
            if self.slot is None:
                self.reason = outcome.reason
            logger.warning(
                "step %r: reload failed, %s: %s",
                self.name,
                "keeping the old scorer" if self.slot is not None else "still unavailable",
                outcome.reason,
            )
            return False
        if self.closed:  # the engine closed while the new scorer was loading
            close_scorer(outcome.scorer, self.name)
            return False
        old, self.slot = self.slot, self._slot_for(outcome.scorer)
        self.reason, self.load_seconds, self.reload_error = None, outcome.seconds, None
        if old is not None:
            old.retire()
            # keep slots still closing, and closed ones whose close() failed: close() reports them
            self._retired = [s for s in self._retired if not s.done.is_set() or s.error]
            self._retired.append(old)
        return True

    def _slot_for(self, scorer: Any) -> ScorerSlot:
        return ScorerSlot(scorer, self.name, self.provenance_of(scorer))

    def provenance_of(self, scorer: Any) -> Provenance:
        """What ``scorer`` stamps on its scores: the chain, this step, the model it serves."""
        identity: Any = {}
        if isinstance(scorer, DescribesModel):
            try:
                identity = scorer.model_identity()
            except Exception as exc:
                logger.warning(
                    "step %r: model_identity() raised %s; its scores carry no model version",
                    self.name,
                    exception_text(exc),
                )
        version = identity.get("model_version")
        sha256 = identity.get("model_sha256")
        return Provenance(
            chain=self.chain,
            step=self.name,
            scorer=self.registration.name,
            model_version=None if version is None else str(version),
            model_sha256=None if sha256 is None else str(sha256),
            config_sha256=self.config_sha256,
        )

    def close(self, wait_s: float = 5.0) -> Exception | None:
        """Close the scorer once, after the calls in flight (at most ``wait_s``)."""
        if self.closed:
            return None
        self.closed = True
        slot, self.slot = self.slot, None
        if slot is not None and self.reason is None:
            self.reason = "closed"
        errors = [s.close_after(wait_s) for s in (*self._retired, slot) if s is not None]
        if self.runner is not None:
            # strict mode's abandoned calls were told to stop: give them the time to (a
            # process exiting while onnxruntime runs in a thread can abort); calls that
            # cannot be stopped are not waited for
            self.runner.shutdown(wait_s if self.strict else 0.0)
        found = [e for e in errors if e is not None]
        if len(found) > 1:
            return ExceptionGroup(f"closing step {self.name!r}", found)
        return found[0] if found else None

    def describe(self) -> dict[str, Any]:
        reg = self.registration
        slot = self.slot
        counters = self.counters.snapshot()
        data: dict[str, Any] = {
            "name": self.name,
            "scorer": reg.name,
            "plugin": reg.plugin,
            "distribution": reg.distribution,
            "version": reg.version,
            "status": self.status,
            "reason": self.reason if slot is None else None,
            "required": self.required,
            "optional": self.config.optional,
            "timeout_ms": self.config.timeout_ms,
            "load_ms": round(self.load_seconds * 1e3, 3),
        }
        data["reloads"] = counters.event("reloads")
        data["reload_failures"] = counters.event("reload_failures")
        if self.reload_error:
            data["last_reload_error"] = self.reload_error
        if self.timeout_s is not None:
            data["timeout_ms"] = self.timeout_s * 1e3
            data["timeout_mode"] = self.config.timeout_mode
            data["cancellable"] = slot.cancellable if slot is not None else None
        data["load_timeout_s"] = self.load_timeout_s
        if counters.event("abandoned_loads"):
            data["abandoned_loads"] = counters.event("abandoned_loads")
        if self.runner is not None:
            data["abandoned_calls"] = counters.event("abandoned_calls")
        if self.breaker is not None:
            data["circuit_breaker"] = {
                **self.breaker.snapshot(),
                "skipped": counters.event("breaker_skipped"),
                "transitions": sum(
                    counters.event(f"breaker_{state}") for state in (OPEN, HALF_OPEN, CLOSED)
                ),
            }
        if slot is not None and slot.provenance is not None:
            data["provenance"] = slot.provenance.as_dict()
        if slot is not None and isinstance(slot.scorer, SupportsDescribe):
            try:
                data["details"] = slot.scorer.describe()
            except Exception as exc:
                data["details"] = {"error": f"describe() raised {exception_text(exc)}"}
        data.update(counters.as_dict())
        return data

    def view(self) -> StepView:
        """Status, counters and model identity, for metrics (see :class:`StepView`)."""
        slot = self.slot
        return StepView(
            name=self.name,
            scorer=self.registration.name,
            ready=slot is not None,
            counters=self.counters.snapshot(),
            model=None if slot is None else model_identity(slot.scorer),
        )


def model_identity(scorer: Any) -> ModelIdentity | None:
    """``model_version`` and ``sha256`` from the scorer's ``describe()``; None when it
    has no describe(), it raised, or it names neither."""
    if not isinstance(scorer, SupportsDescribe):
        return None
    try:
        details = scorer.describe()
    except Exception:
        return None
    if not isinstance(details, dict):
        return None
    version, sha256 = details.get("model_version"), details.get("sha256")
    if version is None and sha256 is None:
        return None
    return ModelIdentity(
        None if version is None else str(version), None if sha256 is None else str(sha256)
    )
