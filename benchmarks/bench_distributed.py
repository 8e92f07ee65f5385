"""Benchmark distributed scoring: Dask and Spark against the local paths they should match.

Writes ``--rows`` rows (default 4,000,000) of the chain's 39 features (drawn as the model
was trained: Beta(2, 2), spots near users) into ``--files`` Parquet files (default 16),
then, in the same run, on the same files, with the project's ``scoring.yaml``:

* local: ``scoring score`` on each file in turn (in this process, ``--workers 2``), the
  baseline the Dask path is held to (goal: Dask >= 0.8x; on 2 cores a cluster cannot beat
  a local run, so the ratio measures the cluster's overhead);
* dask: ``scoring score 'in/*.parquet' -o out/ --dask local:2``'s job, a LocalCluster of 2
  worker processes of one thread; rows/s counts the job from its first task to the
  committed output; the time to first row is the cluster's start plus building the engine
  on every worker;
* spark bare: a ``local[2]`` session, ``mapInArrow`` calling ONNX Runtime directly on the
  model (no checks, no fallback, no provenance), written as Parquet: the floor the Spark
  path is held to (goal: >= 0.8x);
* spark: ``scoring_core.spark.score_dataframe`` on the same frame, written as Parquet;
  the time to first row is the session's start plus the first scored row (the first
  task's Python worker building its engine).

The machine may be shared: each throughput is the best of ``--repeat`` runs.

    python benchmarks/bench_distributed.py                       # 4M rows, 16 files
    python benchmarks/bench_distributed.py --rows 200000 --files 4 --engines dask
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "scoring.yaml"
MODEL = ROOT / "models" / "calling_score" / "1" / "model.onnx"


def write_inputs(folder: Path, rows: int, files: int, features: tuple[str, ...]) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(7)
    per_file = -(-rows // files)
    names = []
    for index in range(files):
        n = min(per_file, rows - index * per_file)
        user = generator.beta(2, 2, size=(n, 12))
        spot = np.clip(user + generator.normal(0, 0.2, size=(n, 12)), 0, 1)
        rest = generator.beta(2, 2, size=(n, 15))
        X = np.hstack([user, spot, rest]).astype(np.float32)
        columns = {"id": pa.array(np.arange(index * per_file, index * per_file + n))}
        columns.update({name: pa.array(X[:, j]) for j, name in enumerate(features)})
        name = str(folder / f"part-{index:02d}.parquet")
        pq.write_table(pa.table(columns), name, row_group_size=65_536)
        names.append(name)
    return names


def best_of(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


@contextlib.contextmanager
def quiet_stderr() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        yield buffer


def bench_local(inputs: list[str], out: Path) -> float:
    """Seconds for `scoring score` on each file in turn, as the command runs it."""
    from scoring_core.cli.score import score_command

    started = time.perf_counter()
    for name in inputs:
        with quiet_stderr():
            code = score_command(
                input_path=name,
                output=str(out / Path(name).name),
                config=CONFIG,
                fmt=None,
                input_format=None,
                output_format=None,
                keep=None,
                rejects_path=None,
                fail_on_reject=False,
                allow_unavailable=False,
                chunk_rows=65_536,
                workers=2,
                progress=False,
            )
        assert code == 0, code
    return time.perf_counter() - started


def bench_dask(inputs: list[str], work: Path, repeat: int) -> tuple[float, float]:
    """(best seconds for the job, seconds to first row: cluster start + engines)."""
    import logging

    import scoring_core.dask as scoring_dask

    logging.getLogger("distributed").setLevel(logging.ERROR)
    started = time.perf_counter()
    client = scoring_dask.local_client(2)
    scoring_dask.start_engines(CONFIG, client=client)
    first = time.perf_counter() - started
    try:

        def run() -> float:
            shutil.rmtree(work / "dask-out", ignore_errors=True)
            shutil.rmtree(work / "dask-out.rejects", ignore_errors=True)
            began = time.perf_counter()
            counts, _, _ = scoring_dask.score_files(
                client, CONFIG, inputs, work / "dask-out", chunk_rows=65_536
            )
            assert counts.rows_in == counts.scored
            return time.perf_counter() - began

        seconds = best_of(repeat, run)
        NOTES.append(
            f"Dask workers' resident memory after the job: {_mb(client.run(_resident_mb).values())}"
        )
        return seconds, first
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()


def _resident_mb() -> float:
    import psutil  # a dependency of distributed

    return float(psutil.Process().memory_info().rss) / 2**20


def _mb(values: Any) -> str:
    return ", ".join(f"{value:,.0f} MB" for value in sorted(values))


NOTES: list[str] = []
_session: Any = None


def _bare_batches(batches: Iterator[Any]) -> Iterator[Any]:
    """ONNX Runtime on each Arrow batch, nothing else: the floor for the Spark path."""
    import onnxruntime
    import pyarrow as pa

    global _session
    if _session is None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        _session = onnxruntime.InferenceSession(str(MODEL), options)
    name = _session.get_inputs()[0].name
    for batch in batches:
        X = np.column_stack(
            [batch.column(i).to_numpy() for i in range(1, batch.num_columns)]
        ).astype(np.float32)
        scores = _session.run(None, {name: X})[0].reshape(-1).astype(np.float64)
        yield batch.append_column("score", pa.array(scores))


def bench_spark(folder: Path, work: Path, repeat: int) -> tuple[float, float, float]:
    """(best seconds bare, best seconds scoring_core.spark, seconds to first row)."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    started = time.perf_counter()
    from pyspark.sql import SparkSession

    import scoring_core.spark as scoring_spark

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "65536")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        df = spark.read.parquet(str(folder))
        scoring_spark.score_dataframe(df.limit(1), CONFIG).collect()
        first = time.perf_counter() - started
        from pyspark.sql import types

        score = types.StructField("score", types.DoubleType())
        schema = types.StructType([*df.schema.fields, score])  # .add() would change df's

        def bare() -> float:
            began = time.perf_counter()
            df.mapInArrow(_bare_batches, schema).write.mode("overwrite").parquet(
                str(work / "spark-bare")
            )
            return time.perf_counter() - began

        def ours() -> float:
            began = time.perf_counter()
            scoring_spark.score_dataframe(df, CONFIG).write.mode("overwrite").parquet(
                str(work / "spark-out")
            )
            return time.perf_counter() - began

        return best_of(repeat, bare), best_of(repeat, ours), first
    finally:
        spark.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--engines", nargs="+", default=["dask", "spark"])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("SCORING_LOAD_PLUGINS", "onnx,rules")

    import scoring_core

    with scoring_core.Engine.from_yaml(CONFIG) as engine:
        features = engine.feature_names
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-distributed-"))
    inputs = write_inputs(work / "in", args.rows, args.files, features)
    (work / "local-out").mkdir(exist_ok=True)
    rows = args.rows
    print(f"{rows:,} rows in {len(inputs)} Parquet files, chain {CONFIG.name}, 2 cores")
    print(f"{'path':<34} {'seconds':>8} {'rows/s':>12} {'ratio':>7}  {'first row':>9}")

    def line(path: str, seconds: float, base: float | None, first: float | None = None) -> None:
        ratio = f"{base / seconds:.2f}x" if base else "-"
        shown = f"{first:.2f} s" if first is not None else "-"
        print(f"{path:<34} {seconds:>8.2f} {rows / seconds:>12,.0f} {ratio:>7}  {shown:>9}")

    local = best_of(args.repeat, lambda: bench_local(inputs, work / "local-out"))
    line("scoring score, file by file", local, None)
    if "dask" in args.engines:
        seconds, first = bench_dask(inputs, work, args.repeat)
        line("--dask local:2 (goal >= 0.8x)", seconds, local, first)
    if "spark" in args.engines:
        bare, ours, first = bench_spark(work / "in", work, args.repeat)
        line("spark mapInArrow + bare ORT", bare, None)
        line("scoring_core.spark (goal >= 0.8x)", ours, bare, first)
    for note in NOTES:
        print(f"note: {note}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
