"""Distributed batch scoring on Dask (extra ``dask``): the same chain on every worker.

``score_dataframe(ddf, "scoring.yaml")`` returns ``ddf`` with ``score``, ``scorer``,
``fallback_reason`` and ``reject_reason`` added (DESIGN.md "Distributed batch scoring").
The config and the files it names go to each worker once, inside a worker plugin; each
worker process unpacks them in its local directory and builds one engine, which scores
every partition it is given, as Arrow tables, through the code of ``scoring score``.
``diagnostics()`` gathers every worker's engine diagnostics into a
:class:`~scoring_core.distributed.summary.ClusterSummary`. ``score_files`` is the job
behind ``scoring score 'in/*.parquet' -o out/ --dask ...``.

Retries are Dask's own: a task whose worker died runs again elsewhere (a restarted worker
gets the plugin again from the scheduler).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import dask.dataframe  # noqa: F401 - map_partitions needs it, and the message is ours
    from distributed import Client, WorkerPlugin, get_client, get_worker
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        f"scoring_core.dask needs Dask ({exc}); install it with: pip install 'scoring-core[dask]'"
    ) from exc

from scoring_core.batch import Counts, check_columns, open_input, score_table
from scoring_core.batch.tables import OutputFiles
from scoring_core.distributed.bundle import (
    JobBundle,
    bundle_for,
    cached_engine,
    close_cached_engines,
)
from scoring_core.distributed.output import JobFolders, part_names
from scoring_core.distributed.partitions import (
    RESULT_COLUMNS,
    check_frame_columns,
    score_arrow,
    worker_name,
)
from scoring_core.distributed.summary import ClusterSummary, counts_as_dict, merged_counts

if TYPE_CHECKING:
    from scoring_core.engine import Engine

__all__ = [
    "EnginePlugin",
    "diagnostics",
    "local_client",
    "score_dataframe",
    "score_files",
    "start_engines",
]

_PREFIX = "scoring-core-"
_registered: dict[int, set[str]] = {}  # id(client) -> plugin names registered through it
_last: dict[int, str] = {}  # id(client) -> the plugin name of the latest job
_by_config: dict[Path, str] = {}  # a config's resolved path -> the plugin name of its latest job
_started: dict[tuple[int, Path], str] = {}  # (id(client), config) -> plugin of start_engines


class EnginePlugin(WorkerPlugin):
    """Unpacks a job's files on a worker and builds its engine there, once per process."""

    idempotent = True

    def __init__(self, bundle: JobBundle) -> None:
        self.bundle = bundle
        self.name = f"{_PREFIX}{bundle.key}"
        self.engine: Engine | None = None
        self.error: str | None = None

    def setup(self, worker: Any) -> None:
        try:
            config = self.bundle.unpack(Path(worker.local_directory))
            self.engine = cached_engine(self.bundle.key, config)
        except Exception as exc:  # reported by the tasks that need the engine
            self.error = f"{type(exc).__name__}: {exc}"
            raise

    def teardown(self, worker: Any) -> None:
        close_cached_engines(self.bundle.key)


def _engine_here(name: str) -> Engine:
    plugin = get_worker().plugins.get(name)
    engine: Engine | None = getattr(plugin, "engine", None)
    if engine is None:
        why = getattr(plugin, "error", None) or "the scoring-core worker plugin is not set up"
        raise RuntimeError(f"no engine on this worker: {why}")
    return engine


def _register(client: Any, bundle: JobBundle, config: str | Path) -> str:
    plugin = EnginePlugin(bundle)
    _by_config[Path(config).resolve()] = plugin.name
    names = _registered.setdefault(id(client), set())
    if plugin.name not in names:
        client.register_plugin(plugin)
        names.add(plugin.name)
    _last[id(client)] = plugin.name
    return plugin.name


def start_engines(config: str | Path, *, client: Any | None = None) -> None:
    """Ship ``config``'s files and build its engine on every worker now (a job does it at
    its start otherwise), so the first partition does not wait for it."""
    client = _client(client)
    bundle, engine = bundle_for(config)
    engine.close()
    _started[(id(client), Path(config).resolve())] = _register(client, bundle, config)


def _client(client: Any | None) -> Any:
    if client is not None:
        return client
    try:
        return get_client()
    except ValueError:
        raise RuntimeError(
            "scoring_core.dask needs a dask.distributed Client: create one first, e.g. "
            "`Client(LocalCluster(n_workers=2))`, or pass client=..."
        ) from None


def _string_dtype() -> Any:
    import pandas as pd

    return "str" if int(pd.__version__.split(".")[0]) >= 3 else "string[pyarrow]"


def _with_results(frame: Any, table: Any) -> Any:
    """``frame`` (pandas, its own index kept) with the result columns of ``table``."""
    import pandas as pd

    text = _string_dtype()
    added = {
        "score": pd.Series(table.column("score").to_numpy(), index=frame.index, dtype="float64")
    }
    for name in RESULT_COLUMNS[1:]:
        values = table.column(name).to_pylist()
        added[name] = pd.Series(values, index=frame.index, dtype=text)
    return frame.assign(**added)


def _score_partition(frame: Any, plugin_name: str) -> Any:
    import pyarrow as pa

    engine = _engine_here(plugin_name)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    out, _ = score_arrow(engine, table)
    return _with_results(frame, out)


def score_dataframe(ddf: Any, config: str | Path, *, client: Any | None = None) -> Any:
    """``ddf`` with ``score``, ``scorer``, ``fallback_reason`` and ``reject_reason`` added.

    Lazy, like any Dask frame; ``config`` is a YAML path on this machine (it and its files
    are shipped to the workers). ``client`` defaults to the current distributed Client.
    """
    client = _client(client)
    bundle, engine = bundle_for(config)
    with engine:
        check_frame_columns(engine, ddf.columns)
    name = _register(client, bundle, config)
    meta = _with_results(ddf._meta, _empty_results())
    return ddf.map_partitions(_score_partition, name, meta=meta)


def _empty_results() -> Any:
    import pyarrow as pa

    kinds = (pa.float64(), pa.string(), pa.string(), pa.string())
    return pa.table({n: pa.array([], k) for n, k in zip(RESULT_COLUMNS, kinds, strict=True)})


def _diagnostics_here(dask_worker: Any, plugin_name: str) -> dict[str, Any] | None:
    plugin = dask_worker.plugins.get(plugin_name)
    engine = getattr(plugin, "engine", None)
    if engine is None:
        error = getattr(plugin, "error", None) or "the scoring-core plugin is not set up"
        return {"engine": {}, "steps": [], "error": error, "process": worker_name()}
    return {**engine.diagnostics(), "process": worker_name()}


def diagnostics(config: str | Path | None = None, *, client: Any | None = None) -> ClusterSummary:
    """Every worker's engine diagnostics (of ``config``'s job, else the latest job's), added
    up and kept apart: rows each step served across the cluster and per worker, and each
    step unavailable on some worker."""
    client = _client(client)
    if config is not None:
        name = _by_config.get(Path(config).resolve(), "")
        if not name:
            raise RuntimeError(f"no scoring job of {config} has run on this client yet")
    elif id(client) in _last:
        name = _last[id(client)]
    else:
        raise RuntimeError("no scoring job has run on this client yet; pass the config")
    found = client.run(_diagnostics_here, plugin_name=name)
    return ClusterSummary.from_diagnostics(
        {worker: value for worker, value in found.items() if value is not None}
    )


def local_client(workers: int) -> Any:
    """A Client of a new LocalCluster: ``workers`` processes of one thread, no dashboard."""
    from distributed import LocalCluster

    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # any free port for the HTTP server; no dashboard
        scheduler_kwargs={"dashboard": False},
        silence_logs=logging.WARNING,
    )
    return Client(cluster)  # type: ignore[no-untyped-call]


def _score_file(
    plugin_name: str, path: str, output: str, rejects: str, kept: Sequence[str] | None, rows: int
) -> dict[str, Any]:
    engine = _engine_here(plugin_name)
    with open_input(path, "parquet") as reader:
        check_columns(reader, engine)
        keep = (
            tuple(kept)
            if kept is not None
            else tuple(c for c in reader.columns if c not in engine.feature_names)
        )
        target = OutputFiles(output=output, fmt="parquet", rejects=rejects, rejects_always=False)
        counts = score_table(engine, reader, target, kept=keep, chunk_rows=rows, workers=1)
    return {**counts_as_dict(counts), "worker": worker_name()}


def score_files(
    client: Any,
    config: str | Path,
    inputs: Sequence[str],
    output: str | Path,
    *,
    rejects: str | Path | None = None,
    kept: Sequence[str] | None = None,
    chunk_rows: int = 65_536,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Counts, ClusterSummary, JobFolders]:
    """Score Parquet ``inputs`` into the folder ``output`` (one part per input) and the
    rejects folder, committed only when every task succeeded.

    The engines :func:`start_engines` built for ``config`` on this client serve the job
    (their files were packed then); otherwise the files are packed and shipped now.
    ``progress(files_done, rows_read)`` is called as each file's task finishes.
    """
    name = _started.get((id(client), Path(config).resolve()), "")
    if not name or _by_config.get(Path(config).resolve()) != name:
        bundle, engine = bundle_for(config)
        engine.close()
        name = _register(client, bundle, config)
    folders = JobFolders.create(output, rejects)
    parts = part_names(list(inputs))
    try:
        futures = [
            client.submit(
                _score_file,
                name,
                path,
                folders.staged_output(part),
                folders.staged_rejects(part),
                kept,
                chunk_rows,
                pure=False,
                key=f"scoring-file-{index:05d}-{part}-{name}-{folders.staging.name}",
            )
            for index, (path, part) in enumerate(zip(inputs, parts, strict=True))
        ]
        results = _results(futures, progress)
        counts = merged_counts(_counts_of(result) for result in results)
        summary = diagnostics(client=client)
        folders.commit(parts, {**counts_as_dict(counts), "inputs": list(inputs)})
    except BaseException:
        folders.discard()
        raise
    return counts, summary, folders


def _results(
    futures: list[Any], progress: Callable[[int, int], None] | None
) -> list[dict[str, Any]]:
    """The tasks' results in input order, taken as they finish; the first failure raises."""
    from distributed import as_completed

    position = {future.key: index for index, future in enumerate(futures)}
    results: list[dict[str, Any]] = [{}] * len(futures)
    rows = 0
    for done, future in enumerate(as_completed(futures), 1):  # type: ignore[no-untyped-call]
        result = future.result()
        results[position[future.key]] = result
        rows += result["rows_in"]
        if progress is not None:
            progress(done, rows)
    return results


def _counts_of(result: dict[str, Any]) -> Counts:
    return Counts(
        rows_in=result["rows_in"],
        scored=result["scored"],
        rejected=result["rejected"],
        by_scorer=dict(result["by_scorer"]),
        fallbacks={step: dict(kinds) for step, kinds in result["fallbacks"].items()},
    )
