"""scoring_core.spark on a real Spark: a ``local[2,2]`` session (2 cores, a failed task is
tried twice), Python workers running this interpreter.

Scores equal ``engine.score_batch`` on the same rows exactly; bad rows keep their place
with their reason; the executors' counts and step statuses reach the driver; a task that
kills its Python worker is run again and the written output is complete, with no partial
files.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from distributed_helpers import (
    fault_project,
    fault_rows,
    sample_with_bad_rows,
    shipped_project,
)

pyspark_sql = pytest.importorskip("pyspark.sql")  # the spark extra is part of `.[test]`

import scoring_core  # noqa: E402
import scoring_core.spark as scoring_spark  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    # pyspark's own notice about pandas 3; scoring_core.spark hands Spark Arrow, not pandas
    "ignore:PySpark does not yet fully support pandas:FutureWarning"
)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    saved = {k: os.environ.get(k) for k in ("PYSPARK_PYTHON", "SCORING_LOAD_PLUGINS")}
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["SCORING_LOAD_PLUGINS"] = "onnx,rules"  # the Python workers inherit it
    session = (
        pyspark_sql.SparkSession.builder.master("local[2,2]")
        .appName("scoring-core-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def frame_of(spark: Any, table: Any, folder: Path, partitions: int) -> Any:
    """``table`` as a Spark DataFrame of ``partitions`` partitions, in the table's order."""
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-table.num_rows // partitions)
    for index in range(partitions):
        pq.write_table(table.slice(index * size, size), folder / f"part-{index:02d}.parquet")
    return spark.read.parquet(str(folder))


def test_scores_equal_score_batch_and_bad_rows_keep_their_place_with_a_reason(
    spark: Any, tmp_path: Path
) -> None:
    table, bad = sample_with_bad_rows()
    config = shipped_project(tmp_path / "project")
    df = frame_of(spark, table, tmp_path / "in", 4)

    scored = scoring_spark.score_dataframe(df, config).toArrow().to_pandas()

    assert list(scored.columns) == [
        *table.column_names,
        "score",
        "scorer",
        "fallback_reason",
        "reject_reason",
    ]
    scored = scored.set_index("id").loc[table.column("id").to_pylist()]
    frame = table.to_pandas()
    good = [i for i in range(len(frame)) if i not in bad]
    with scoring_core.Engine.from_yaml(config) as engine:
        expected = engine.score_batch(frame.iloc[good][list(engine.feature_names)])
    np.testing.assert_array_equal(scored["score"].to_numpy()[good], expected.scores)
    assert scored["scorer"].iloc[good].tolist() == list(expected.scorers)
    assert scored["reject_reason"].iloc[good].isna().all()
    for position, feature in bad.items():
        row = scored.iloc[position]
        assert np.isnan(row["score"])
        assert row["scorer"] is None or row["scorer"] != row["scorer"]  # null
        assert feature in row["reject_reason"]

    summary = scoring_spark.diagnostics(config)
    assert summary.rows_served == {"neural": len(good), "formula": 0}
    assert summary.rows_rejected == len(bad)
    assert summary.unavailable == []
    assert 1 <= len(summary.workers) <= 2  # one engine per Python worker process
    assert sum(sum(rows.values()) for rows in summary.rows_by_worker.values()) == len(good)


def test_two_actions_on_an_uncached_frame_count_its_rows_once(spark: Any, tmp_path: Path) -> None:
    table, bad = sample_with_bad_rows()
    config = shipped_project(tmp_path / "project")
    scored = scoring_spark.score_dataframe(frame_of(spark, table, tmp_path / "in", 4), config)
    scored.write.parquet(str(tmp_path / "out"))
    assert scored.filter("reject_reason IS NOT NULL").count() == len(bad)  # scores it again
    summary = scoring_spark.diagnostics(config)
    assert summary.rows_served == {"neural": table.num_rows - len(bad), "formula": 0}
    assert summary.rows_rejected == len(bad)


def test_a_task_that_kills_its_python_worker_is_retried_and_the_output_is_complete(
    spark: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "killed"
    step = {"name": "model", "scorer": "kill_once", "options": {"marker": str(marker)}}
    config = fault_project(tmp_path / "project", step)
    table = fault_rows(4000)
    df = frame_of(spark, table, tmp_path / "in", 4)
    # small Arrow batches: the second batch of the first task kills its Python worker
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "200")
    try:
        scoring_spark.score_dataframe(df, config).write.parquet(str(tmp_path / "out"))
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")

    assert marker.exists()  # a Python worker did kill itself mid-task
    written = sorted(os.listdir(tmp_path / "out"))
    assert "_SUCCESS" in written
    assert all(name.endswith(".parquet") or name.startswith(("_", ".")) for name in written)
    assert not any(name.startswith("_temporary") for name in written)
    output = pq.read_table(tmp_path / "out")
    assert sorted(output.column("id").to_pylist()) == table.column("id").to_pylist()
    assert set(output.column("scorer").to_pylist()) == {"model"}
    summary = scoring_spark.diagnostics(config)
    assert summary.rows_served["model"] == table.num_rows  # the killed attempt counts 0


def test_a_frame_without_a_feature_column_fails_before_any_task(spark: Any, tmp_path: Path) -> None:
    table = sample_with_bad_rows()[0].drop(["energy_match"])
    df = frame_of(spark, table, tmp_path / "in", 1)
    with pytest.raises(scoring_core.DataFileError, match="no column 'energy_match'"):
        scoring_spark.score_dataframe(df, "scoring.yaml")
