"""scoring_core.dask on a real cluster: a LocalCluster of 2 worker processes, 1 thread each.

Scores equal ``engine.score_batch`` on the same rows exactly; bad rows keep their place
with their reason; the config and its files reach the workers with the job; a step that
cannot load on one worker is reported for that worker; ``scoring score --dask`` writes a
partitioned output and rejects, committed only when the whole job succeeded, even when a
worker process is killed mid-job.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_helpers import run_cli
from distributed_helpers import (
    fault_project,
    fault_rows,
    no_temporary_files,
    sample_with_bad_rows,
    shipped_project,
    write_parts,
)

dd = pytest.importorskip("dask.dataframe")  # the dask extra is part of `.[test]`
distributed = pytest.importorskip("distributed")

import scoring_core  # noqa: E402
import scoring_core.dask as scoring_dask  # noqa: E402

ENV = {"SCORING_LOAD_PLUGINS": "onnx,rules"}


@pytest.fixture(scope="session")
def client() -> Iterator[Any]:
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # any free port for the HTTP server; no dashboard
        scheduler_kwargs={"dashboard": False},
        env=ENV,
    )
    with cluster, distributed.Client(cluster) as dask_client:
        yield dask_client


def worker_pids(client: Any) -> dict[str, int]:
    return client.run(os.getpid)


def test_scores_equal_score_batch_and_bad_rows_keep_their_place_with_a_reason(
    client: Any, tmp_path: Path
) -> None:
    table, bad = sample_with_bad_rows()
    frame = table.to_pandas()
    ddf = dd.from_pandas(frame, npartitions=4)
    scored = scoring_dask.score_dataframe(ddf, shipped_project(tmp_path / "project")).compute()

    assert list(scored.columns) == [
        *frame.columns,
        "score",
        "scorer",
        "fallback_reason",
        "reject_reason",
    ]
    assert list(scored.index) == list(frame.index)
    assert scored["id"].tolist() == frame["id"].tolist()
    good = [i for i in range(len(frame)) if i not in bad]
    with scoring_core.Engine.from_yaml(tmp_path / "project" / "scoring.yaml") as engine:
        expected = engine.score_batch(frame.iloc[good][list(engine.feature_names)])
    np.testing.assert_array_equal(scored["score"].to_numpy()[good], expected.scores)
    assert scored["scorer"].iloc[good].tolist() == list(expected.scorers)
    assert set(scored["fallback_reason"].iloc[good]) == {""}
    assert scored["reject_reason"].iloc[good].isna().all()
    for position, feature in bad.items():
        row = scored.iloc[position]
        assert np.isnan(row["score"])
        assert feature in row["reject_reason"]
    assert "outside" in scored.iloc[3]["reject_reason"]


def test_the_workers_score_with_the_files_shipped_with_the_job(client: Any, tmp_path: Path) -> None:
    """The driver's copy of the config and model is gone before the job runs."""
    config = shipped_project(tmp_path / "gone")
    text = config.read_text().replace(
        "model: models/calling_score", f"model: {tmp_path / 'gone/models/calling_score'}"
    )
    config.write_text(text)  # an absolute path travels too
    frame = sample_with_bad_rows()[0].to_pandas().iloc[:500]
    lazy = scoring_dask.score_dataframe(dd.from_pandas(frame, npartitions=2), config)
    shutil.rmtree(tmp_path / "gone")

    scored = lazy.compute()

    assert set(scored["scorer"].dropna()) == {"neural"}
    summary = scoring_dask.diagnostics(client=client)
    assert summary.unavailable == []
    assert sum(summary.rows_served.values()) == scored["score"].notna().sum()


def test_a_step_that_cannot_load_on_one_worker_is_reported_for_that_worker(
    client: Any, tmp_path: Path
) -> None:
    step = {
        "name": "model",
        "scorer": "broken_on_one_worker",
        "options": {"claim": str(tmp_path / "claimed"), "driver_pid": os.getpid()},
    }
    config = fault_project(tmp_path / "project", step)
    frame = fault_rows(2000).to_pandas()

    scored = scoring_dask.score_dataframe(dd.from_pandas(frame, npartitions=8), config).compute()
    summary = scoring_dask.diagnostics(config, client=client)

    assert len(summary.unavailable) == 1
    broken = summary.unavailable[0]
    assert broken.step == "model"
    assert "cannot read the model file on this worker" in broken.reason
    pids = worker_pids(client)
    assert broken.worker in pids
    assert f"pid {pids[broken.worker]}" in broken.reason
    assert summary.rows_served["model"] + summary.rows_served["fallback"] == len(frame)
    assert summary.rows_by_worker[broken.worker]["model"] == 0
    assert summary.rows_failed["model"] == {"unavailable": summary.rows_served["fallback"]}
    fell_back = scored[scored["scorer"] == "fallback"]
    assert set(fell_back["fallback_reason"]) == {"model: unavailable"}
    assert any(
        f"step 'model' is unavailable on worker {broken.worker}" in line for line in summary.lines()
    )


def test_a_frame_without_a_feature_column_fails_before_any_task(
    client: Any, tmp_path: Path
) -> None:
    frame = sample_with_bad_rows()[0].to_pandas().drop(columns=["energy_match"])
    with pytest.raises(scoring_core.DataFileError, match="no column 'energy_match'"):
        scoring_dask.score_dataframe(dd.from_pandas(frame, npartitions=2), "scoring.yaml")


# -- scoring score --dask -----------------------------------------------------------------


def local_run_lines(tmp_path: Path, table: pa.Table, config: Path) -> list[str]:
    pq.write_table(table, tmp_path / "all.parquet")
    result = run_cli(
        *[
            "score",
            str(tmp_path / "all.parquet"),
            "-o",
            str(tmp_path / "all.out.parquet"),
            "-c",
            str(config),
        ]
    )
    assert result.exit_code == 0, result.output
    return result.stderr.splitlines()


def test_the_cli_writes_a_partitioned_output_and_rejects_with_the_local_summary(
    tmp_path: Path,
) -> None:
    table, bad = sample_with_bad_rows()
    inputs = write_parts(table, tmp_path / "in", 4)
    config = shipped_project(tmp_path / "project")

    result = run_cli(
        *[
            "score",
            str(tmp_path / "in" / "*.parquet"),
            "-o",
            str(tmp_path / "out"),
            "--dask",
            "local:2",
            "-c",
            str(config),
        ]
    )

    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    local = local_run_lines(tmp_path, table, config)
    assert lines[:3] == local[:3]  # rows in = scored + rejected; by scorer; fallbacks
    assert lines[0].split() == [
        "rows",
        "in",
        "3,000",
        "=",
        "2,997",
        "scored",
        "+",
        "3",
        "rejected",
        "(the",
        "counts",
        "add",
        "up)",
    ]
    assert lines[3] == f"rejected  {3:>12,}  -> {tmp_path / 'out.rejects'}"
    assert "to start the cluster and load the chain on every worker" in lines[4]
    assert any(line.startswith("workers              2") for line in lines)

    parts = sorted(os.listdir(tmp_path / "out"))
    assert parts == ["_scoring.json", *(Path(name).name for name in inputs)]
    output = pq.read_table(tmp_path / "out")
    assert output.column_names == ["id", "score", "scorer", "fallback_reason"]
    expected_ids = [v for i, v in enumerate(table.column("id").to_pylist()) if i not in bad]
    assert sorted(output.column("id").to_pylist()) == expected_ids
    rejects = pq.read_table(tmp_path / "out.rejects")
    assert rejects.column_names == ["row", "column", "error", "id"]
    assert sorted(rejects.column("column").to_pylist()) == sorted(bad.values())
    assert json.loads((tmp_path / "out" / "_scoring.json").read_text())["rows_in"] == 3000


def test_a_worker_killed_mid_job_leaves_no_partial_output_and_the_job_completes(
    client: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "killed"
    step = {"name": "model", "scorer": "kill_once", "options": {"marker": str(marker)}}
    config = fault_project(tmp_path / "project", step)
    table = fault_rows(4000)
    write_parts(table, tmp_path / "in", 4)
    pids_before = set(worker_pids(client).values())
    address = client.scheduler.address

    result = run_cli(
        *[
            "score",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
            "--dask",
            address,
            "-c",
            str(config),
            "--chunk-rows",
            "100",
        ]
    )

    assert result.exit_code == 0, result.output
    assert int(marker.read_text()) in pids_before  # a worker did kill itself mid-job
    assert result.stderr.splitlines()[0].split()[:6] == [
        "rows",
        "in",
        "4,000",
        "=",
        "4,000",
        "scored",
    ]
    output = pq.read_table(tmp_path / "out")
    assert sorted(output.column("id").to_pylist()) == table.column("id").to_pylist()
    assert set(output.column("scorer").to_pylist()) == {"model"}
    np.testing.assert_allclose(
        output.sort_by("id").column("score").to_numpy(),
        np.mean([table.column(n).to_numpy() for n in ("a", "b", "c")], axis=0),
        rtol=1e-6,
    )
    assert no_temporary_files(tmp_path / "out") == []
    assert os.listdir(tmp_path / "out.rejects") == []
    client.wait_for_workers(2, timeout=120)  # the killed worker's nanny restarts it


def test_a_failed_job_leaves_no_output_folder(client: Any, tmp_path: Path) -> None:
    config = fault_project(tmp_path / "project", {"name": "model", "scorer": "mean"})
    write_parts(fault_rows(1000), tmp_path / "in", 2)
    pq.write_table(fault_rows(10).drop(["c"]), tmp_path / "in" / "part-02.parquet")

    result = run_cli(
        *[
            "score",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
            "--dask",
            client.scheduler.address,
            "-c",
            str(config),
        ]
    )

    assert result.exit_code == 2, result.output
    assert "part-02.parquet has no column 'c'" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["in", "project"]


def test_the_cli_refuses_what_a_dask_run_cannot_do(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("a,b,c\n0.1,0.2,0.3\n")
    result = run_cli(
        *["score", str(tmp_path / "rows.csv"), "-o", str(tmp_path / "out"), "--dask", "local:2"]
    )
    assert result.exit_code == 2
    assert "--dask reads Parquet files" in result.stderr
    result = run_cli(*["score", str(tmp_path / "*.parquet"), "-o", "out", "--dask", "local:2"])
    assert result.exit_code == 2
    assert "no files match" in result.stderr
    for option in (["--metrics", str(tmp_path / "m.prom")], ["--provenance"], ["--fail-on-empty"]):
        args = ["score", str(tmp_path / "rows.csv"), "-o", str(tmp_path / "out"), *option]
        result = run_cli(*args, "--dask", "local:2")
        assert result.exit_code == 2, result.output
        assert f"{option[0]} is not available with --dask" in result.stderr
        assert not (tmp_path / "m.prom").exists()


def test_progress_with_dask_counts_the_files_as_their_tasks_finish(tmp_path: Path) -> None:
    table, _ = sample_with_bad_rows()
    write_parts(table, tmp_path / "in", 4)
    config = shipped_project(tmp_path / "project")
    args = ["score", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-c", str(config)]
    result = run_cli(*args, "--dask", "local:2", "--progress")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    # not a terminal: plain lines, the last one when every file is done, before the summary
    progress = [line for line in lines if line.startswith("progress: 4 file(s): ")]
    assert progress
    assert progress[-1].startswith("progress: 4 file(s): 3,000 rows, done in ")
    assert lines.index(progress[-1]) < next(
        i for i, x in enumerate(lines) if x.startswith("rows in")
    )


def test_the_cli_names_the_worker_that_could_not_load_a_step_and_exits_1(
    client: Any, tmp_path: Path
) -> None:
    step = {
        "name": "model",
        "scorer": "broken_on_one_worker",
        "options": {"claim": str(tmp_path / "claimed"), "driver_pid": os.getpid()},
    }
    config = fault_project(tmp_path / "project", step)
    write_parts(fault_rows(2000), tmp_path / "in", 4)
    client.wait_for_workers(2, timeout=120)

    result = run_cli(
        *["score", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--dask",
          client.scheduler.address, "-c", str(config)]
    )  # fmt: skip

    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("step 'model' was unavailable on 1 of 2 worker(s) (tcp://")
    assert "cannot read the model file on this worker" in lines[0]
    assert lines[1].split()[:6] == ["rows", "in", "2,000", "=", "2,000", "scored"]
    assert (tmp_path / "out" / "_scoring.json").exists()  # the output is written all the same
