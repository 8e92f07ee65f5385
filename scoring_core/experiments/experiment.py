"""An A/B experiment between chains: each unit gets a variant (GrowthBook's assignment),
its rows are scored by that variant's chain, its first exposure is logged off the
scoring path, and a shadow chain may score a share of the rows beside them.

Served as one model: :attr:`Experiment.name`, :attr:`Experiment.feature_names` (every
variant's chain has the same features) and :meth:`Experiment.score_batch` with
``units=...``, whose result also carries ``variants``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from scoring_core.engine import Engine
from scoring_core.errors import ConfigError, EngineClosedError, InputError
from scoring_core.experiments.assignment import Assigner
from scoring_core.experiments.config import ExperimentConfig, load_experiment_file
from scoring_core.experiments.exposures import ExposureLog
from scoring_core.experiments.results import (
    ExperimentBatchResult,
    ExperimentScoreResult,
    merge_batches,
)
from scoring_core.experiments.shadow import ShadowRunner
from scoring_core.experiments.variants import variant_engine
from scoring_core.features.schema import PreparedBatch
from scoring_core.plugins import PluginHost

__all__ = ["Experiment"]

logger = logging.getLogger("scoring_core")


class Experiment:
    """Variants of a chain, tried on units: build it with :meth:`from_yaml`.

    Safe to call from many threads at once. Close it (or use ``with``) to flush the
    exposure log and close every chain.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        engines: Sequence[Engine],
        *,
        shadow: Engine | None = None,
        plugins: Sequence[Any] = (),
    ) -> None:
        self.config = config
        self._engines = tuple(engines)
        self._names = tuple(v.name for v in config.variants)
        # index -1 (outside coverage) is served by the control, the first variant
        self._by_index = (*self._engines, self._engines[0])
        self._assigner = Assigner(
            config.seed, [v.weight for v in config.variants], config.coverage, config.hash_version
        )
        self._shadow_sampler = (
            None
            if config.shadow is None
            else Assigner(f"{config.seed}/shadow", [1.0], config.shadow.percent / 100, 2)
        )
        self._seen: dict[str, tuple[int, float, bool]] = {}
        self._remember = config.remember_units
        self._closed = False
        self._close_lock = threading.Lock()
        self._background_errors: list[Exception] | None = None  # set once they are stopped
        self._host = PluginHost(
            config_plugins=config.plugins, code_plugins=plugins, base_dir=config.base_dir
        )
        self._exposures = ExposureLog(
            experiment=config.key,
            hash_version=config.hash_version,
            variants=self._names,
            weights=config.weights,
            chains=[e.name for e in self._engines],
            path=config.exposures,
            send=self._send if self._host.pm.hook.scoring_exposures.get_hookimpls() else None,
        )
        self._shadow: ShadowRunner | None = None
        if shadow is not None:
            log = None
            if config.shadow is not None:
                log = config.shadow.log
                if log is None and config.exposures is not None:
                    log = config.exposures.with_name(f"{config.exposures.stem}.shadow.jsonl")
            self._shadow = ShadowRunner(shadow, experiment=config.key, log=log)

    @classmethod
    def from_yaml(cls, path: str | Path, *, plugins: Sequence[Any] = ()) -> Experiment:
        """Build an experiment from its file: every variant's chain (and the shadow's) is
        built from its YAML, relative to the experiment file. ``plugins`` are plugin objects
        given to every chain and to the ``scoring_exposures`` hook."""
        config = load_experiment_file(path)
        engines: list[Engine] = []
        shadow = None
        try:
            for variant in config.variants:
                engines.append(variant_engine(config, variant, plugins))
            if config.shadow is not None:
                shadow = Engine.from_yaml(config.shadow.config, plugins=plugins)
            _same_features(config, engines, shadow)
            return cls(config, engines, shadow=shadow, plugins=plugins)
        except BaseException:
            for engine in [*engines, *([shadow] if shadow is not None else [])]:
                engine.close()
            raise

    # -- what it is ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The experiment's key (``experiment:``): its name as a served model."""
        return self.config.key

    @property
    def unit_field(self) -> str:
        """The field (column, or mapping key) that carries the unit id (``unit:``)."""
        return self.config.unit

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self._engines[0].feature_names

    @property
    def variant_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def engines(self) -> dict[str, Engine]:
        """Each variant's chain, by variant name (the first is the control)."""
        return dict(zip(self._names, self._engines, strict=True))

    @property
    def control(self) -> Engine:
        return self._engines[0]

    @property
    def shadow_engine(self) -> Engine | None:
        return None if self._shadow is None else self._shadow.engine

    @property
    def closed(self) -> bool:
        return self._closed

    # -- assignment ---------------------------------------------------------------------

    def assign(self, unit: Any) -> str | None:
        """The unit's variant, or None when it is outside coverage. Logs nothing."""
        index = self._assigner.assign(_unit_text(unit))[0]
        return self._names[index] if index >= 0 else None

    def bucket(self, unit: Any) -> float:
        """The unit's hash bucket in [0, 1) (GrowthBook's ``gbhash``)."""
        return self._assigner.bucket(_unit_text(unit))

    def _entry(self, unit: str) -> tuple[tuple[int, float, bool], bool]:
        """(variant index, bucket, shadowed) of ``unit``, and whether this is its first sight."""
        entry = self._seen.get(unit)
        if entry is not None:
            return entry, False
        index, bucket = self._assigner.assign(unit)
        sampler = self._shadow_sampler
        entry = (index, bucket, sampler is not None and sampler.assign(unit)[0] == 0)
        seen = self._seen
        if len(seen) >= self._remember:
            seen.clear()  # a new generation: bounded memory (docs/experiments.md)
        return entry, seen.setdefault(unit, entry) is entry

    # -- scoring ------------------------------------------------------------------------

    def score(self, row: Any, unit: Any = None) -> ExperimentScoreResult:
        """Score one row with the chain of ``unit``'s variant (the unit may also be the
        row's ``unit:`` field, taken out of it). The result's ``variant`` is the variant's
        name, or None outside coverage (then the control scores it, and nothing is logged).
        """
        if self._closed:
            raise EngineClosedError("the experiment is closed; build a new one to score again")
        if unit is None:
            row, unit = self._unit_from_row(row)
        if type(unit) is not str:
            unit = _unit_text(unit)
        elif not unit:
            raise InputError(f"an empty unit id ({self.config.unit!r})", feature=self.config.unit)
        entry, first = self._entry(unit)
        index = entry[0]
        try:
            result = self._by_index[index].score(row)
        except BaseException:
            if first:  # not exposed after all
                self._seen.pop(unit, None)
            raise
        variant = self._names[index] if index >= 0 else None
        if first and index >= 0:
            self._exposures.add(
                time.time(),
                unit,
                index,
                entry[1],
                result.scorer,
                result.provenance,
            )
        if entry[2] and self._shadow is not None:
            # the caller may reuse its row once the score is back
            copied = dict(row) if isinstance(row, Mapping) else np.array(row, copy=True)
            self._shadow.submit(time.time(), copied, unit, variant, result, batch=False)
        return ExperimentScoreResult.of(result, variant)

    def score_batch(self, rows: Any, units: Any = None) -> ExperimentBatchResult:
        """Score many rows, each with the chain of its unit's variant. ``units`` holds one
        unit id per row; without it they come from the rows' ``unit:`` column (a pandas
        DataFrame's column, or each mapping's key). Raises InputError naming the first bad
        row, as ``Engine.score_batch`` does; then nothing is scored or logged."""
        if self._closed:
            raise EngineClosedError("the experiment is closed; build a new one to score again")
        if units is None:
            rows, units = self._units_from_rows(rows)
        control = self._engines[0]
        prepared = control.prepare_batch(rows)
        if prepared.errors:
            control.score_batch(rows)  # raises the engine's InputError, counted as rejected
        unit_list = list(units)
        if len(unit_list) != prepared.X.shape[0]:
            raise InputError(
                f"{len(unit_list)} unit id(s) for {prepared.X.shape[0]} row(s); give one per row"
            )
        return self.score_prepared(prepared, unit_list)

    def prepare_batch(self, rows: Any) -> PreparedBatch:
        """Check rows with the control's chain, as ``Engine.prepare_batch`` does."""
        return self._engines[0].prepare_batch(rows)

    def score_prepared(
        self, prepared: PreparedBatch, units: Sequence[Any]
    ) -> ExperimentBatchResult:
        """Score the good rows of :meth:`prepare_batch`; ``units`` has one id per good row."""
        if self._closed:
            raise EngineClosedError("the experiment is closed; build a new one to score again")
        n = prepared.X.shape[0]
        texts = [_unit_text(u, row=int(prepared.rows[i])) for i, u in enumerate(units)]
        entries = [self._entry(u) for u in texts]
        index = np.fromiter((e[0][0] for e in entries), dtype=np.intp, count=n)
        parts: list[tuple[npt.NDArray[np.intp], Any]] = []
        engine_of_row = np.where(index < 0, 0, index)
        try:
            for number, engine in enumerate(self._engines):
                positions = np.flatnonzero(engine_of_row == number)
                if positions.size:
                    parts.append((positions, self._score_part(engine, prepared, positions)))
        except BaseException:
            for unit, (_, first) in zip(texts, entries, strict=True):
                if first:
                    self._seen.pop(unit, None)
            raise
        names = np.array([*self._names, None], dtype=object)
        variants = names[index]  # -1 picks None
        out = merge_batches(n, parts, variants)
        self._log_batch(texts, entries, out, prepared.X)
        return out

    def _score_part(self, engine: Engine, prepared: PreparedBatch, positions: Any) -> Any:
        X = prepared.X[positions]
        if engine is self._engines[0] or (
            engine.row_dtype == prepared.X.dtype and engine.feature_defaults == {}
        ):
            defaults = prepared.defaults_used
            part = PreparedBatch(
                X=X,
                rows=prepared.rows[positions],
                errors=(),
                defaults_used=None if defaults is None else tuple(defaults[i] for i in positions),
            )
        else:
            part = engine.prepare_batch(X)
            if part.errors:
                first = part.errors[0]
                row = int(prepared.rows[positions[first.row or 0]])
                raise InputError.for_row(row, first.reason, feature=first.feature)
            part = PreparedBatch(part.X, prepared.rows[positions], (), part.defaults_used)
        return engine.score_prepared(part)

    def _log_batch(
        self,
        units: list[str],
        entries: list[tuple[tuple[int, float, bool], bool]],
        out: ExperimentBatchResult,
        X: Any,
    ) -> None:
        now = time.time()
        scorers = out.scorers
        for position, (unit, ((index, bucket, _), first)) in enumerate(
            zip(units, entries, strict=True)
        ):
            if first and index >= 0:
                self._exposures.add(
                    now, unit, index, bucket, scorers[position], out.provenance_of(position)
                )
        if self._shadow is None:
            return
        shadowed = np.fromiter((e[0][2] for e in entries), dtype=bool, count=len(entries))
        if shadowed.any():
            picked = np.flatnonzero(shadowed)
            self._shadow.submit(
                now,
                X[picked],
                [units[i] for i in picked],
                out.variants[picked].tolist(),
                (out.scores[picked], scorers[picked].tolist()),
                batch=True,
            )

    # -- rows and their units -----------------------------------------------------------

    def _unit_from_row(self, row: Any) -> tuple[Any, Any]:
        field = self.config.unit
        if isinstance(row, Mapping) and field in row:
            rest = {k: v for k, v in row.items() if k != field}
            return rest, row[field]
        raise InputError(
            f"no unit id: pass unit=... or give the row a {field!r} field", feature=field
        )

    def _units_from_rows(self, rows: Any) -> tuple[Any, Any]:
        field = self.config.unit
        columns = getattr(rows, "columns", None)
        if columns is not None and field in list(columns) and hasattr(rows, "drop"):
            return rows.drop(columns=[field]), list(rows[field])
        if isinstance(rows, Sequence) and rows and all(isinstance(r, Mapping) for r in rows):
            pairs = [self._unit_from_row(r) for r in rows]
            return [p[0] for p in pairs], [p[1] for p in pairs]
        raise InputError(
            f"no unit ids: pass units=... (one per row) or give the rows a {field!r} column",
            feature=field,
        )

    # -- diagnostics, metrics, close ----------------------------------------------------

    def diagnostics(self) -> dict[str, Any]:
        """A JSON-serialisable picture: the experiment's settings and counts, and each
        variant's chain (``Engine.diagnostics()``)."""
        exposures = self._exposures.counts()
        return {
            "experiment": {
                "name": self.name,
                "file": self.config.file,
                "unit": self.config.unit,
                "seed": self.config.seed,
                "hash_version": self.config.hash_version,
                "coverage": self.config.coverage,
                "closed": self._closed,
                "variants": [
                    {
                        "name": v.name,
                        "weight": v.weight,
                        "chain": e.name,
                        "exposures": exposures["written"][v.name],
                    }
                    for v, e in zip(self.config.variants, self._engines, strict=True)
                ],
                "exposures": exposures,
                "shadow": None if self._shadow is None else self._shadow.counts(),
            },
            "chains": {name: e.diagnostics() for name, e in self.engines.items()},
        }

    def metric_counts(self) -> dict[str, Any]:
        """What ``scoring_core.metrics`` exposes: exposures per variant, shadow rows per
        outcome (None without a shadow)."""
        return {
            "exposures": dict(zip(self._names, self._exposures.written, strict=True)),
            "shadow": None if self._shadow is None else self._shadow.counts()["rows"],
        }

    def flush(self) -> None:
        """Ask the exposure writer to write what is waiting now."""
        self._exposures.flush()

    def _send(self, records: list[dict[str, Any]]) -> None:
        for error in self._host.call_each(
            "scoring_exposures", experiment=self.name, records=records
        ):
            logger.error("scoring_exposures failed: %s", error)

    def finish_background(self) -> None:
        """Once the scoring is over: write every exposure still waiting and let the shadow
        score the rows it holds, then stop both; the chains stay open until :meth:`close`.
        The final counts are then in :meth:`metric_counts` (what ``--metrics`` writes).
        Idempotent; :meth:`close` does it first."""
        with self._close_lock:
            if self._background_errors is not None:
                return
            self._background_errors = []
        if self._shadow is not None:
            self._background_errors.extend(self._shadow.close())
        self._exposures.close()

    def close(self) -> None:
        """Flush and close the exposure log, stop the shadow, close every chain. Idempotent;
        errors are raised together afterwards, as an ExceptionGroup."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self.finish_background()
        errors: list[Exception] = list(self._background_errors or ())
        for engine in reversed(self._engines):
            try:
                engine.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise ExceptionGroup(f"{len(errors)} error(s) while closing the experiment", errors)

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
        state = "closed" if self._closed else ", ".join(self._names)
        return f"<Experiment {self.name}: {state}>"


def _unit_text(unit: Any, row: int | None = None) -> str:
    """A unit id as the string that is hashed: ``str`` of a string or an integer."""
    if isinstance(unit, str):
        text = unit
    elif isinstance(unit, int | np.integer) and not isinstance(unit, bool):
        text = str(int(unit))
    else:
        why = f"a unit id is a string or an integer, not {type(unit).__name__} {unit!r}"
        raise InputError(why) if row is None else InputError.for_row(row, why)
    if not text:
        raise (
            InputError("an empty unit id")
            if row is None
            else InputError.for_row(row, "an empty unit id")
        )
    return text


def _same_features(
    config: ExperimentConfig, engines: Sequence[Engine], shadow: Engine | None
) -> None:
    """Every variant (and the shadow) takes the control's features, in its order."""
    expected = engines[0].feature_names
    others = [(f"variants[{i}].config", e) for i, e in enumerate(engines)]
    if shadow is not None:
        others.append(("shadow.config", shadow))
    for key, engine in others[1:]:
        if engine.feature_names != expected:
            missing = [n for n in expected if n not in engine.feature_names]
            detail = f"lacks {missing[:3]}" if missing else "orders them differently"
            raise ConfigError(
                f"{engine.config_file} takes other features than the control "
                f"({config.variants[0].config.name}): it {detail}; every variant scores the "
                "same rows",
                key_path=key,
                file=config.file,
                line=None if config.source is None else config.source.line_of(_key_path(key)),
            )


def _key_path(key: str) -> tuple[str | int, ...]:
    """``variants[1].config`` -> ``("variants", 1, "config")``."""
    parts: list[str | int] = []
    for piece in key.replace("]", "").replace("[", ".").split("."):
        parts.append(int(piece) if piece.isdigit() else piece)
    return tuple(parts)
