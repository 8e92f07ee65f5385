"""Batch scoring on Spark (extra ``spark``): ``mapInArrow`` with one engine per Python worker.

``score_dataframe(df, "scoring.yaml")`` returns ``df`` with ``score``, ``scorer``,
``fallback_reason`` and ``reject_reason`` added (DESIGN.md "Distributed batch scoring").
The config and the files it names are packed into one archive and shipped with
``SparkContext.addFile``; each Python worker process unpacks it once into its SparkFiles
folder and caches one engine (as MLflow's ``spark_udf`` caches its model), which scores
the Arrow batches of every task it runs, through the code of ``scoring score``.

Each task adds its partition's counts and its engine's step statuses to an accumulator;
``diagnostics()`` reads it on the driver as a
:class:`~scoring_core.distributed.summary.ClusterSummary`, per worker process. Spark adds
the updates of successful tasks only, so a retried task counts once; a partition scored
again (a second action on a DataFrame that is not cached) replaces its earlier counts, so
the summary is that of one scoring of the DataFrame.

Retries are Spark's own (``spark.task.maxFailures``; in local mode, ``local[N,F]``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    from pyspark import SparkFiles, TaskContext
    from pyspark.accumulators import AccumulatorParam
    from pyspark.sql import types as spark_types
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        f"scoring_core.spark needs pyspark ({exc}); install it with: "
        "pip install 'scoring-core[spark]'"
    ) from exc

from scoring_core.distributed.bundle import JobBundle, bundle_for, cached_engine
from scoring_core.distributed.partitions import (
    RESULT_COLUMNS,
    check_frame_columns,
    score_arrow,
    worker_name,
)
from scoring_core.distributed.summary import ClusterSummary, counts_as_dict, merged_counts
from scoring_core.results import EXHAUSTED_SCORER

if TYPE_CHECKING:
    from scoring_core.batch import Counts
    from scoring_core.engine import Engine

__all__ = ["diagnostics", "score_dataframe"]

_shipped: dict[tuple[int, str], str] = {}  # (id(SparkContext), bundle key) -> file name
_accumulators: dict[Path, Any] = {}  # a config's resolved path -> its latest job's accumulator
_latest: list[Path] = []
_archives: list[str] = []  # the driver's folder of archives to ship, made at the first job


class _WorkerReports(AccumulatorParam[dict[str, Any]]):
    """``parts``: per partition, the worker process that scored it last and its counts;
    ``steps``: per worker process, its steps' statuses."""

    def zero(self, value: dict[str, Any]) -> dict[str, Any]:
        return {"parts": {}, "steps": {}}

    def addInPlace(self, mine: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        if not mine:
            mine = self.zero(mine)
        mine["parts"].update(other.get("parts", {}))  # a partition scored again replaces
        mine["steps"].update(other.get("steps", {}))
        return mine


def _by_worker(value: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each worker process's counts (over the partitions it scored last) and statuses."""
    parts: dict[str, list[Counts]] = {worker: [] for worker in value.get("steps") or {}}
    for worker, counts in (value.get("parts") or {}).values():
        parts.setdefault(worker, []).append(_counts(counts))
    return {
        worker: {"counts": counts_as_dict(merged_counts(counts)), "steps": value["steps"][worker]}
        for worker, counts in parts.items()
    }


def _counts(data: dict[str, Any]) -> Counts:
    from scoring_core.batch import Counts

    return Counts(
        rows_in=data["rows_in"],
        scored=data["scored"],
        rejected=data["rejected"],
        by_scorer=dict(data["by_scorer"]),
        fallbacks={step: dict(kinds) for step, kinds in data["fallbacks"].items()},
    )


def _engine_here(file_name: str, config_name: str, digest: str) -> Engine:
    bundle_key = digest[:16]
    folder = Path(SparkFiles.getRootDirectory())
    config = folder / f"scoring-job-{bundle_key}" / config_name
    if not config.exists():
        bundle = JobBundle.from_archive(SparkFiles.get(file_name), config_name, digest)
        config = bundle.unpack(folder)
    return cached_engine(bundle_key, config)


def _statuses(engine: Engine) -> list[dict[str, Any]]:
    return [
        {"name": step["name"], "status": step["status"], "reason": step["reason"]}
        for step in engine.diagnostics()["steps"]
    ]


def _result_schema(schema: Any) -> Any:
    kinds = (
        spark_types.DoubleType(),
        spark_types.StringType(),
        spark_types.StringType(),
        spark_types.StringType(),
    )
    fields = [
        spark_types.StructField(n, k, True) for n, k in zip(RESULT_COLUMNS, kinds, strict=True)
    ]
    return spark_types.StructType([*schema.fields, *fields])


def _ship(spark_context: Any, bundle: JobBundle) -> str:
    key = (id(spark_context), bundle.key)
    if key not in _shipped:
        if not _archives:
            _archives.append(tempfile.mkdtemp(prefix="scoring-core-spark-"))
        path = bundle.write_archive(_archives[0])
        spark_context.addFile(str(path))
        _shipped[key] = path.name
    return _shipped[key]


def score_dataframe(df: Any, config: str | Path) -> Any:
    """``df`` with ``score``, ``scorer``, ``fallback_reason`` and ``reject_reason`` added.

    Lazy, like any Spark DataFrame; ``config`` is a YAML path on the driver (it and its
    files are shipped to the executors with ``addFile``).
    """
    bundle, engine = bundle_for(config)
    with engine:
        check_frame_columns(engine, df.columns)
    spark_context = df.sparkSession.sparkContext
    file_name = _ship(spark_context, bundle)
    reports = spark_context.accumulator({"parts": {}, "steps": {}}, _WorkerReports())
    _accumulators[Path(config).resolve()] = reports
    _latest[:] = [Path(config).resolve()]
    config_name, digest = bundle.config_name, bundle.digest

    def score_batches(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        engine = _engine_here(file_name, config_name, digest)
        parts: list[Counts] = []
        for batch in batches:
            out, counts = score_arrow(engine, pa.Table.from_batches([batch]))
            parts.append(counts)
            yield from out.to_batches()
        total = counts_as_dict(merged_counts(parts))
        worker = worker_name()
        partition = TaskContext.get().partitionId()  # type: ignore[union-attr]
        reports.add({"parts": {partition: (worker, total)}, "steps": {worker: _statuses(engine)}})

    return df.mapInArrow(score_batches, _result_schema(df.schema))


def _as_diagnostics(report: dict[str, Any]) -> dict[str, Any]:
    counts = report["counts"]
    steps = [
        {
            **status,
            "rows_served": counts["by_scorer"].get(status["name"], 0),
            "rows_failed": counts["fallbacks"].get(status["name"], {}),
        }
        for status in report["steps"]
    ]
    engine = {
        "rows_rejected": counts["rejected"],
        "rows_exhausted": counts["by_scorer"].get(EXHAUSTED_SCORER, 0),
    }
    return {"engine": engine, "steps": steps, "counts": counts}


def diagnostics(config: str | Path | None = None) -> ClusterSummary:
    """What the executors' engines did in the latest job of ``config`` (else the latest
    job): rows each step served across the cluster and per worker process, fallbacks by
    kind, rejected rows, and each step unavailable on some worker. Read it after an action
    (``.write``, ``.count()``, ``.collect()``) has run the job."""
    if config is None and not _latest:
        raise RuntimeError("no scoring job has run yet; call score_dataframe first")
    accumulator = _accumulators.get(Path(config).resolve() if config is not None else _latest[0])
    if accumulator is None:
        raise RuntimeError(f"no scoring job of {config} has run yet; call score_dataframe first")
    return ClusterSummary.from_diagnostics(
        {
            worker: _as_diagnostics(report)
            for worker, report in _by_worker(accumulator.value).items()
        }
    )
