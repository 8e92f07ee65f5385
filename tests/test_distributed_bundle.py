"""What a distributed job ships and how one partition is scored, without a cluster.

The archive holds the config and every file it names, in the same layout, so the config's
relative paths resolve on a worker; absolute paths are rewritten; a partition keeps every
row, bad ones with their reason; a missing extra says what to install.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from distributed_helpers import ROOT, sample_with_bad_rows, shipped_project

import scoring_core
from scoring_core.distributed.bundle import JobBundle, bundle_for
from scoring_core.distributed.output import JobFolders, part_names
from scoring_core.distributed.partitions import score_arrow


def members(bundle: JobBundle) -> list[str]:
    return sorted(zipfile.ZipFile(BytesIO(bundle.archive)).namelist())


def test_the_bundle_holds_the_config_its_feature_file_and_model(tmp_path: Path) -> None:
    config = shipped_project(tmp_path / "project")
    bundle, engine = bundle_for(config)
    engine.close()
    assert members(bundle) == [
        "models/calling_score/1/model.card.json",
        "models/calling_score/1/model.onnx",
        "models/calling_score/labels.yaml",
        "models/calling_score_features.yaml",
        "scoring.yaml",
    ]
    assert bundle.config_name == "scoring.yaml"


def test_an_unpacked_bundle_builds_the_same_engine_elsewhere(tmp_path: Path) -> None:
    bundle, engine = bundle_for(shipped_project(tmp_path / "project"))
    rows = sample_with_bad_rows()[0].to_pandas().iloc[10:200]
    with engine:
        expected = engine.score_batch(rows[list(engine.feature_names)])
    config = bundle.unpack(tmp_path / "worker")
    assert bundle.unpack(tmp_path / "worker") == config  # unpacked once, then reused
    with scoring_core.Engine.from_yaml(config) as copy:
        assert copy.diagnostics()["steps"][0]["status"] == "ready"
        got = copy.score_batch(rows[list(copy.feature_names)])
    np.testing.assert_array_equal(got.scores, expected.scores)


def test_absolute_paths_in_the_config_are_rewritten_into_the_archive(tmp_path: Path) -> None:
    config = shipped_project(tmp_path / "a" / "project")
    (tmp_path / "b").mkdir()
    model = (tmp_path / "a" / "project" / "models" / "calling_score").rename(
        tmp_path / "b" / "calling_score"
    )
    config.write_text(config.read_text().replace("model: models/calling_score", f"model: {model}"))
    bundle, engine = bundle_for(config)
    engine.close()
    assert members(bundle) == [
        "a/project/models/calling_score_features.yaml",
        "a/project/scoring.yaml",
        "b/calling_score/1/model.card.json",
        "b/calling_score/1/model.onnx",
        "b/calling_score/labels.yaml",
    ]
    unpacked = bundle.unpack(tmp_path / "worker")
    assert "model: ../../b/calling_score" in unpacked.read_text()
    shutil.rmtree(model)  # only the shipped copy is left
    with scoring_core.Engine.from_yaml(unpacked) as copy:
        assert copy.diagnostics()["steps"][0]["status"] == "ready"


def test_a_partition_keeps_every_row_and_bad_ones_have_their_reason() -> None:
    table, bad = sample_with_bad_rows()
    with scoring_core.Engine.from_yaml(ROOT / "scoring.yaml") as engine:
        out, counts = score_arrow(engine, table)
    assert out.num_rows == table.num_rows
    assert out.column_names[-4:] == ["score", "scorer", "fallback_reason", "reject_reason"]
    assert (counts.rows_in, counts.scored, counts.rejected) == (3000, 2997, 3)
    reasons = out.column("reject_reason").to_pylist()
    assert [i for i, r in enumerate(reasons) if r is not None] == sorted(bad)
    assert reasons[1200].startswith("feature 'spot_crowd_tolerance' is NaN (missing?)")
    assert out.column("score").null_count == 3


def test_an_empty_partition_has_the_result_columns() -> None:
    with scoring_core.Engine.from_yaml(ROOT / "scoring.yaml") as engine:
        empty = sample_with_bad_rows()[0].slice(0, 0)
        out, counts = score_arrow(engine, empty)
    assert (out.num_rows, counts.rows_in) == (0, 0)
    assert out.schema.field("score").type == pa.float64()


def test_output_parts_are_named_after_their_inputs() -> None:
    assert part_names(["in/a.parquet", "in/b.parquet"]) == ["a.parquet", "b.parquet"]
    assert part_names(["x/a.parquet", "y/a.parquet"]) == ["a-00000.parquet", "a-00001.parquet"]


def test_a_folder_that_is_not_an_earlier_output_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(scoring_core.DataFileError, match="not empty and was not written"):
        JobFolders.create(tmp_path / "out")


@pytest.mark.parametrize(("module", "extra"), [("dask", "dask"), ("spark", "spark")])
def test_a_missing_extra_names_the_pip_command(module: str, extra: str) -> None:
    blocked = {"dask": "distributed", "spark": "pyspark"}[module]
    code = f"import sys; sys.modules[{blocked!r}] = None; import scoring_core.{module}"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert f"pip install 'scoring-core[{extra}]'" in done.stderr
