"""The benchmarks still run: each one, in a subprocess, on tiny inputs.

Only that they run and print their table is checked here; their figures are read by
people (the issue notes), never asserted: speed is not measured in tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(script: str, *args: str) -> str:
    env = {**os.environ, "SCORING_LOAD_PLUGINS": "onnx,rules"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_bench_engine_prints_the_overhead_of_each_call() -> None:
    out = run_benchmark("bench_engine.py", "--number", "200", "--repeat", "1")
    assert "engine.score(array)" in out
    assert "engine.score_batch(1k)" in out


def test_bench_chain_prints_every_ratio_and_target() -> None:
    out = run_benchmark("bench_chain.py", "--number", "50", "--repeat", "1")
    for line in (
        "one row (array) vs raw ORT",
        "one row, median of paired blocks",
        "100k rows throughput vs raw ORT",
        "rules alone",
        "fallback over rules alone",
        "with metrics scraped every 100 ms",
    ):
        assert line in out


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_bench_cli_scores_files_and_reports_memory(tmp_path: Path, fmt: str) -> None:
    out = run_benchmark(
        "bench_cli.py", "--rows", "500", "1000", "--repeat", "1", "--formats", fmt,
        "--workdir", str(tmp_path),
    )  # fmt: skip
    rows = [line.split() for line in out.splitlines()]
    assert [r[:3] for r in rows if r[:1] == ["scoring.yaml"]] == [
        ["scoring.yaml", fmt, "500"],
        ["scoring.yaml", fmt, "1,000"],
    ]
    assert any(r[:2] == [fmt, "peak"] for r in rows)


def test_bench_serve_prints_each_server_and_the_ratios() -> None:
    out = run_benchmark("bench_serve.py", "--seconds", "0.3", "--concurrency", "1", "2")
    assert "(a) scoring serve" in out
    assert "(b) Starlette + ORT" in out
    assert "1,000-row requests" in out
    assert "x (b) in req/s" in out


def test_bench_experiment_prints_what_an_experiment_adds_per_row() -> None:
    out = run_benchmark("bench_experiment.py", "--number", "20", "--blocks", "1")
    assert "returning units" in out
    assert "new units" in out
    assert "added us (paired median)" in out


def test_bench_distributed_prints_the_dask_ratio_and_the_time_to_first_row(
    tmp_path: Path,
) -> None:
    """The Dask half only: the Spark half starts a session of its own (tests/test_spark.py
    runs Spark already)."""
    out = run_benchmark(
        "bench_distributed.py", "--rows", "4000", "--files", "2", "--repeat", "1",
        "--engines", "dask", "--workdir", str(tmp_path),
    )  # fmt: skip
    lines = out.splitlines()
    assert lines[0].startswith("4,000 rows in 2 Parquet files")
    assert any(line.startswith("scoring score, file by file") for line in lines)
    dask_line = next(line for line in lines if line.startswith("--dask local:2"))
    assert dask_line.split()[-2:][1] == "s"  # the time to first row, in seconds
