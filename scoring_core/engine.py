"""The engine: builds the chain from a config, scores rows through it, closes it."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from scoring_core.chain.build import (
    ChainSource,
    build_steps,
    features_from_steps,
    refuse_misconfigured,
    refuse_without_required,
    resolve_features,
    row_dtype,
)
from scoring_core.chain.walk import Chain, StepRun
from scoring_core.config import (
    EngineConfig,
    ExhaustedDefault,
    parse_config,
)
from scoring_core.config.yaml import LoadedYaml, load_yaml_file
from scoring_core.errors import (
    EngineClosedError,
    InputError,
    UnknownStepError,
    exception_text,
)
from scoring_core.features.schema import FeatureSchema, PreparedBatch
from scoring_core.observe.counters import ChainCounters
from scoring_core.observe.snapshot import ChainSnapshot
from scoring_core.plugins import PluginHost
from scoring_core.resilience.watch import FileWatcher
from scoring_core.results import BatchResult, ScoreResult
from scoring_core.scorer import WatchesFiles

__all__ = ["DEFAULT_CHAIN_NAME", "Engine", "StepRun"]

logger = logging.getLogger("scoring_core")
CLOSE_WAIT_S = 5.0
#: The name of a chain built by ``from_config`` from a mapping without ``name:``.
DEFAULT_CHAIN_NAME = "default"


class Engine:
    """A fallback chain of scorers, built from YAML or a mapping.

    Use :meth:`from_yaml` or :meth:`from_config`; close it with :meth:`close` or a
    ``with`` block. Safe to call from many threads at once.
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
        base_dir: Path,
        source: LoadedYaml | None = None,
        plugins: Sequence[Any] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._closed = False
        self._close_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._counters = ChainCounters()
        self._config = config
        where = ChainSource(
            config, source if source is not None else LoadedYaml(data=None), base_dir
        )
        self.base_dir = base_dir
        self.config_file = where.config_file
        self._name = where.chain_name
        self._config_sha256 = where.config_sha256
        self._host = PluginHost(
            config_plugins=config.plugins,
            disabled=config.disable_plugins,
            code_plugins=plugins,
            base_dir=base_dir,
        )
        specs = resolve_features(where)
        if specs is None:
            specs = features_from_steps(where, self._host)
        self._schema = FeatureSchema(specs)
        steps = build_steps(where, self._host, self._schema.names, clock=clock)
        self._chain = Chain(
            steps,
            output_range=config.output_range,
            default=(
                float(config.on_exhausted.score)
                if isinstance(config.on_exhausted, ExhaustedDefault)
                else None
            ),
            deadline_ms=config.deadline_ms,
            clock=clock,
            is_closed=lambda: self._closed,
            counters=self._counters,
            name=self._name,
            config_sha256=self._config_sha256,
        )
        self._watcher: FileWatcher | None = None
        try:
            for step in steps:
                step.load()
            refuse_misconfigured(where, steps)
            refuse_without_required(where, steps)
            # Rows are checked in the precision of the widest model input of the chain.
            dtype = row_dtype(steps)
            if dtype != self._schema.dtype:
                self._schema = FeatureSchema(specs, dtype)
            if config.watch is not None:
                self._watcher = FileWatcher(
                    steps,
                    _reloader(self),
                    config.watch.interval_s,
                    on_reload=lambda: self._counters.count("watch_reloads"),
                )
        except BaseException as exc:
            for error in self._shut_down(CLOSE_WAIT_S):
                exc.add_note(f"also, while closing the loaded steps: {exception_text(error)}")
            raise
        for error in self._host.call_each("scoring_engine_started", engine=self):
            logger.error("scoring_engine_started failed: %s", error)

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_yaml(
        cls,
        path: str | Path,
        *,
        plugins: Sequence[Any] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> Engine:
        """Build an engine from a YAML file; relative paths resolve against its folder.

        ``plugins`` are plugin objects to register besides the entry points; ``clock``
        (seconds, monotonic) drives circuit breakers and deadlines, and tests move it.
        """
        source = load_yaml_file(path)
        config = parse_config(source)
        return cls(
            config,
            base_dir=Path(path).resolve().parent,
            source=source,
            plugins=plugins,
            clock=clock,
        )

    @classmethod
    def from_config(
        cls,
        mapping: Mapping[str, Any],
        base_dir: str | Path = ".",
        *,
        plugins: Sequence[Any] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> Engine:
        """Build an engine from a mapping with the same schema as the YAML file."""
        source = LoadedYaml(data=mapping)
        config = parse_config(source)
        return cls(
            config, base_dir=Path(base_dir).resolve(), source=source, plugins=plugins, clock=clock
        )

    # -- public attributes ------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The chain's name: the config's ``name:``, else the config file's stem
        (``scoring.yaml`` -> ``scoring``), else ``default``. It is the ``chain`` label of
        every metric and the model name served over HTTP."""
        return self._name

    @property
    def config_sha256(self) -> str:
        """The sha256 of the config file (of the mapping's canonical JSON for from_config)."""
        return self._config_sha256

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features, in model input order."""
        return self._schema.names

    @property
    def row_dtype(self) -> np.dtype[Any]:
        """The element type rows are checked in and ``prepare_batch(...).X`` has: float32,
        or float64 when a model of the chain takes doubles."""
        return self._schema.dtype

    @property
    def feature_defaults(self) -> dict[str, float]:
        """The features that have a ``default:`` (and so may be left out), with it."""
        return dict(self._schema.defaults)

    @property
    def step_names(self) -> tuple[str, ...]:
        """The chain's step names, in the order they are tried."""
        return self._chain.names

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def output_range(self) -> tuple[float, float] | None:
        return self._config.output_range

    # -- scoring ----------------------------------------------------------------------------

    def score(self, row: Any) -> ScoreResult:
        """Score one row: a mapping or a pandas Series by feature name, or a sequence / 1-D
        array in feature order (docs/python.md lists every kind)."""
        if self._closed:
            raise EngineClosedError()
        try:
            X, defaults_used = self._schema.row(row)
        except InputError:
            self.count_rejected(1)
            raise
        return self._chain.score_row(X, defaults_used)

    def score_batch(self, rows: Any) -> BatchResult:
        """Score many rows: a 2-D array, a sequence of rows, a pandas or polars DataFrame, or
        a pyarrow Table or RecordBatch (docs/python.md).

        Raises :class:`InputError` naming the first bad row; then no scorer is called. To
        score the good rows and get the bad ones with their reasons, use
        :meth:`prepare_batch` then :meth:`score_prepared`. Frame columns that are not
        features are ignored, unless their name looks like a feature's.
        """
        if self._closed:
            raise EngineClosedError()
        prepared = self._schema.batch(rows)
        if prepared.errors:
            self.count_rejected(len(prepared.errors))
            first = prepared.errors[0]
            if len(prepared.errors) > 1:
                others = [e.row for e in prepared.errors[1:] if e.row is not None]
                listed = ", ".join(str(r) for r in others[:10]) + (
                    ", ..." if len(others) > 10 else ""
                )
                rows_text = f": row(s) {listed}" if others else ""
                more = (
                    f" ({len(prepared.errors) - 1} more bad row(s){rows_text}; nothing was "
                    "scored; engine.prepare_batch(rows).errors lists each one)"
                )
                if first.row is None:
                    raise InputError(f"{first}{more}", feature=first.feature)
                raise InputError.for_row(first.row, first.reason + more, feature=first.feature)
            raise first
        return self.score_prepared(prepared)

    def prepare_batch(self, rows: Any) -> PreparedBatch:
        """Check rows without scoring: good rows in ``.X``, one InputError per bad row."""
        return self._schema.batch(rows)

    def score_prepared(self, prepared: PreparedBatch) -> BatchResult:
        """Score the good rows of a :meth:`prepare_batch` result, in their order.

        ``result.rows`` (and the index of ``result.to_pandas()``) holds each score's row
        number in the input; ``prepared.errors`` has one InputError per bad row.
        """
        if self._closed:
            raise EngineClosedError()
        return self._chain.score_rows(prepared.X, prepared.rows, prepared.defaults_used)

    def score_step(self, name: str, X: npt.NDArray[np.floating[Any]]) -> StepRun:
        """Score checked rows (``prepare_batch(...).X``) with one step alone, no fallback.

        Rows the step fails get NaN in ``scores`` and ``True`` in ``failed``; nothing
        raises for a failing step. For comparing steps, as ``scoring compare`` does.
        """
        if self._closed:
            raise EngineClosedError()
        if X.dtype != self._schema.dtype or X.ndim != 2 or X.shape[1] != self._schema.width:
            raise InputError(
                f"score_step takes prepare_batch(...).X: {self._schema.dtype} of shape (n, "
                f"{self._schema.width}); got {X.dtype} of shape {X.shape}"
            )
        return self._chain.score_step(name, X)

    def count_rejected(self, rows: int) -> None:
        """Count ``rows`` refused as bad input where the engine did not see them refused:
        ``scoring score`` and ``scoring compare`` sort rows with :meth:`prepare_batch` (which
        counts nothing) and a reader's unreadable rows into their rejects file, and count
        them here, so ``rows_rejected`` in diagnostics and metrics matches the summary."""
        if rows:
            self._counters.count("rows_rejected", rows)

    # -- reload, diagnostics, close ---------------------------------------------------------

    def reload(self, step: str | None = None) -> dict[str, str]:
        """Reload every step (or the one named); a step whose new load fails keeps its old scorer.

        The new scorer is built and checked (and self-tested) beside the old one, then
        swapped in; calls already running finish on the scorer they started with,
        which is closed after them. Returns, per step, ``"reloaded"`` (followed by
        ``", serving version N; newer version(s) failed: ..."`` when ``latest`` passed
        over newer versions that failed their checks), ``"kept old: <reason>"``, or
        ``"unavailable: <reason>"`` when there was no old scorer.
        """
        if step is not None and step not in self._chain.names:
            raise UnknownStepError(step, self._chain.names)
        outcome: dict[str, str] = {}
        with self._reload_lock:
            if self._closed:
                raise EngineClosedError()
            for candidate in self._chain.steps:
                if step is not None and candidate.name != step:
                    continue
                had_scorer = candidate.slot is not None
                if candidate.reload():
                    outcome[candidate.name] = _reloaded(candidate)
                elif had_scorer:
                    outcome[candidate.name] = f"kept old: {candidate.reload_error}"
                else:
                    outcome[candidate.name] = f"unavailable: {candidate.reload_error}"
        return outcome

    def loaded_files(self) -> tuple[Path, ...]:
        """The files the loaded steps read (each scorer's ``watched_files()``: a model and
        its external data), so a distributed job can ship them with its config."""
        files: list[Path] = []
        for step in self._chain.steps:
            if isinstance(step.scorer, WatchesFiles):
                files.extend(Path(path) for path in step.scorer.watched_files())
        return tuple(dict.fromkeys(files))

    def diagnostics(self) -> dict[str, Any]:
        """A JSON-serialisable picture of the engine, its steps and plugins."""
        steps = [step.describe() for step in self._chain.steps]
        counters = self._counters.snapshot()
        output_range = self._config.output_range
        return {
            "engine": {
                "name": self._name,
                "config_file": self.config_file,
                "config_sha256": self._config_sha256,
                "closed": self._closed,
                "features": len(self._schema.names),
                "output_range": list(output_range) if output_range else None,
                "on_exhausted": "raise"
                if self._chain.default is None
                else {"score": self._chain.default},
                "require": list(self._config.require),
                "deadline_ms": self._config.deadline_ms,
                "watch": None
                if self._watcher is None
                else {
                    "interval_s": self._watcher.interval_s,
                    "reloads": counters.get("watch_reloads", 0),
                },
                "rows_scored": sum(step["rows_served"] for step in steps),
                "rows_exhausted": counters.get("rows_exhausted", 0),
                "rows_rejected": counters.get("rows_rejected", 0),
                "timeouts_cancelled": counters.get("timeouts_cancelled", 0),
            },
            "steps": steps,
            "plugins": [plugin.as_dict() for plugin in self._host.plugins],
        }

    def snapshot(self) -> ChainSnapshot:
        """The chain's name, each step's status, counters and model, and the chain's own
        counters, read now (what ``scoring_core.metrics`` exposes; the same counters as
        :meth:`diagnostics`)."""
        return ChainSnapshot(
            name=self._name,
            closed=self._closed,
            steps=tuple(step.view() for step in self._chain.steps),
            counters=self._counters.snapshot(),
        )

    def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Close every scorer (reverse chain order), then run ``scoring_engine_closed`` once.

        New calls raise :class:`EngineClosedError` at once; calls already running
        finish first (up to ``wait_s`` seconds per step). Idempotent. Errors from
        scorers and hooks are raised together afterwards, as an ExceptionGroup.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            with self._reload_lock:  # a reload in progress finishes first
                errors = self._shut_down(wait_s)
            errors.extend(self._host.call_each("scoring_engine_closed", engine=self))
        if errors:
            raise ExceptionGroup(f"{len(errors)} error(s) while closing the engine", errors)

    def _shut_down(self, wait_s: float) -> list[Exception]:
        """Stop the threads and close every step; return the close errors."""
        self._closed = True
        self._chain.watchdog.stop()
        if self._watcher is not None:
            self._watcher.stop()
        errors: list[Exception] = []
        for step in reversed(self._chain.steps):
            error = step.close(wait_s)
            if error is not None:
                errors.append(error)
        return errors

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._closed:
            return "<Engine closed>"
        return "<Engine " + ", ".join(f"{s.name}={s.status}" for s in self._chain.steps) + ">"


def _reloader(engine: Engine) -> Callable[[str], str]:
    """A reload callback that does not keep the engine alive (for the watch thread)."""
    ref = weakref.ref(engine)

    def reload(name: str) -> str:
        target = ref()
        if target is None or target.closed:
            return "closed"
        return target.reload(name)[name]

    return reload


def _reloaded(step: Any) -> str:
    """A reload's outcome: ``"reloaded"``, and when the version served is not the newest
    (``latest`` passed over newer versions that failed their checks), which and why."""
    details = step.describe().get("details") or {}
    failed = details.get("version_failures") or ()
    if not failed:
        return "reloaded"
    why = "; ".join(f"version {f['version']}: {f['reason']}" for f in failed)
    return f"reloaded, serving version {details.get('version')}; newer version(s) failed: {why}"
