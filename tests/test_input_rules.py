"""One rule on every path: missing values, what a number is, columns that are not features.

The same row, given as a mapping, a sequence, a pandas frame or row, an Arrow table or a
line of a file given to ``scoring score``, is scored the same or refused with the same
reason (issue 14 points 6 and 11, issue 20 point 6).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from cli_helpers import MEAN_CLASS, plugin_source, run_cli, write_project

from scoring_core import Engine, InputError

CONFIG_FEATURES = [
    {"name": "tenure", "min": 0, "max": 1},
    {"name": "activity", "min": 0, "max": 1, "default": 0.5},
]
CHAIN = "  - {name: formula, scorer: mean}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A config whose one step scores the row mean; `activity` has a default of 0.5."""
    return write_project(
        tmp_path,
        plugin_source(MEAN_CLASS, register={"mean": "Mean"}),
        ["tenure", "activity"],
        CHAIN,
        defaults={"activity": 0.5},
    )


@pytest.fixture
def engine(project: Path) -> Any:
    with Engine.from_yaml(project) as built:
        yield built


def score_file(project: Path, name: str, text: str) -> tuple[list[Any], list[dict[str, Any]]]:
    """Run `scoring score` on a JSON Lines or CSV file; the output rows and the rejects."""
    source = project.parent / name
    source.write_text(text)
    out = project.parent / "out.jsonl"
    result = run_cli("score", str(source), "-o", str(out), "--config", str(project))
    assert result.exit_code == 0, result.output
    scores = [json.loads(line)["score"] for line in out.read_text().splitlines()]
    rejects_file = project.parent / "out.rejects.jsonl"
    rejects = (
        [json.loads(line) for line in rejects_file.read_text().splitlines()]
        if rejects_file.exists()
        else []
    )
    return scores, rejects


# -- missing values (issue 14 point 6) ------------------------------------------------------


def test_a_missing_value_takes_the_default_on_every_path(engine: Engine, project: Path) -> None:
    expected = pytest.approx((0.25 + 0.5) / 2)
    results = {
        "dict None": engine.score({"tenure": 0.25, "activity": None}),
        "dict key left out": engine.score({"tenure": 0.25}),
        "sequence None": engine.score([0.25, None]),
        "pandas Series NaN": engine.score(pd.Series({"tenure": 0.25, "activity": np.nan})),
    }
    for kind, result in results.items():
        assert (result.score, result.defaults_used) == (expected, ("activity",)), kind
    batches = {
        "dicts with None": engine.score_batch([{"tenure": 0.25, "activity": None}]),
        "pandas NaN": engine.score_batch(pd.DataFrame({"tenure": [0.25], "activity": [np.nan]})),
        "pandas None": engine.score_batch(
            pd.DataFrame({"tenure": [0.25], "activity": pd.Series([None], dtype=object)})
        ),
        "Arrow null": engine.score_batch(pa.table({"tenure": [0.25], "activity": [None]})),
    }
    for kind, batch in batches.items():
        assert batch.scores.tolist() == [expected], kind
        assert batch.defaults_used == (("activity",),), kind
    scores, rejects = score_file(project, "in.jsonl", '{"tenure": 0.25, "activity": null}\n')
    assert (scores, rejects) == ([expected], [])


def test_a_missing_value_without_a_default_is_refused_naming_the_feature(
    engine: Engine, project: Path
) -> None:
    for row in (
        {"tenure": None, "activity": 0.5},
        [None, 0.5],
        pd.Series({"tenure": np.nan, "activity": 0.5}),
        pd.DataFrame({"tenure": [np.nan], "activity": [0.5]}),
        pa.table({"tenure": pa.array([None], pa.float64()), "activity": [0.5]}),
    ):
        with pytest.raises(InputError, match=r"^row 0: feature 'tenure' is .*missing.*no default"):
            engine.score(row)
    scores, rejects = score_file(project, "in.jsonl", '{"tenure": null, "activity": 0.5}\n')
    assert scores == []
    assert rejects[0]["column"] == "tenure"
    assert "'tenure' is missing (a null or an empty cell) and has no default" in rejects[0]["error"]


def test_a_nan_in_an_array_is_refused_even_with_a_default(engine: Engine) -> None:
    with pytest.raises(InputError, match=r"'activity' is NaN.*pass None.*default \(0.5\)"):
        engine.score(np.array([0.25, np.nan]))


# -- what a number is (issue 20 point 6) ----------------------------------------------------


@pytest.mark.parametrize(
    "row",
    [
        {"tenure": True, "activity": 0.5},
        [True, 0.5],
        np.array([True, False]),
        pd.DataFrame({"tenure": [True], "activity": [0.5]}),
        pd.DataFrame({"tenure": pd.array([True], dtype="boolean"), "activity": [0.5]}),
        pa.table({"tenure": [True], "activity": [0.5]}),
    ],
    ids=["dict", "list", "numpy bool", "pandas bool", "pandas boolean", "Arrow bool"],
)
def test_a_boolean_is_not_a_number_on_any_path(engine: Engine, row: Any) -> None:
    with pytest.raises(InputError, match=r"feature 'tenure' is (True|true) \(a boolean\)") as info:
        engine.score(row)
    assert info.value.feature == "tenure"


def test_booleans_in_a_batch_are_refused_not_stacked_into_ones(engine: Engine) -> None:
    with pytest.raises(InputError, match=r"'tenure' is True \(a boolean\)"):
        engine.score_batch([[True, 0.5], [0.25, 0.5]])
    with pytest.raises(InputError, match="booleans, which are not numbers"):
        engine.score_batch(np.array([[True, False]]))


@pytest.mark.parametrize("order", ["true first", "float first"])
def test_a_json_boolean_is_rejected_whatever_the_row_order(project: Path, order: str) -> None:
    lines = ['{"tenure": true, "activity": 0.5}', '{"tenure": 0.25, "activity": 0.5}']
    if order == "float first":
        lines.reverse()
    scores, rejects = score_file(project, "in.jsonl", "\n".join(lines) + "\n")
    assert scores == [pytest.approx(0.375)]
    assert [(r["column"], "not a number" in r["error"]) for r in rejects] == [("tenure", True)]


def test_a_chunk_of_json_booleans_is_rejected_row_by_row(project: Path) -> None:
    scores, rejects = score_file(project, "in.jsonl", '{"tenure": false, "activity": 0.5}\n')
    assert scores == []
    assert "is false (a boolean), not a number" in rejects[0]["error"]


def test_csv_cells_only_python_reads_as_numbers_are_rejected(project: Path) -> None:
    text = "tenure,activity\n1e-1,0.5\n1_0,0.5\n\uff10.\uff15,0.5\n\u0660.\u0665,0.5\n .5 ,0.5\n"
    scores, rejects = score_file(project, "in.csv", text)
    assert scores == [pytest.approx(0.3), pytest.approx(0.5)]
    assert [r["row"] for r in rejects] == [2, 3, 4]
    assert all("not a number" in r["error"] for r in rejects)


# -- columns that are not features, and good rows beside bad ones (issue 14 point 11) ---------


def test_a_column_that_is_not_a_feature_is_ignored(engine: Engine) -> None:
    frame = pd.DataFrame({"id": [7, 8], "tenure": [0.25, 0.75], "activity": [0.5, 0.5]})
    assert engine.score_batch(frame).scores.tolist() == [0.375, 0.625]
    table = pa.table({"user_id": ["u7"], "tenure": [0.25], "label": [1]})
    assert engine.score_batch(table).scores.tolist() == [0.375]


def test_a_column_that_looks_like_a_feature_is_still_a_typo(engine: Engine) -> None:
    frame = pd.DataFrame({"tenure": [0.25], "activty": [0.9]})  # `activity` has a default
    with pytest.raises(
        InputError, match=r"column 'activty' is not a feature but looks like one; did you mean "
    ):
        engine.score_batch(frame)
    with pytest.raises(InputError, match=r"unknown feature 'id'"):
        engine.score({"id": 7, "tenure": 0.25})  # a mapping stays strict: every key counts


def test_good_rows_are_scored_and_bad_rows_come_back_with_reasons(engine: Engine) -> None:
    frame = pd.DataFrame({"id": [1, 2, 3], "tenure": [0.25, "oops", 0.75]})
    prepared = engine.prepare_batch(frame)
    result = engine.score_prepared(prepared)
    assert [(e.row, e.feature) for e in prepared.errors] == [(1, "tenure")]
    out = result.to_pandas()
    assert list(out.columns) == ["score", "scorer", "fallback_reason"]
    assert out.index.name == "row"
    assert out.index.tolist() == [0, 2]
    assert out["score"].tolist() == [0.375, 0.625]
    assert out["scorer"].tolist() == ["formula", "formula"]
    assert frame.loc[out.index, "id"].tolist() == [1, 3]
    table = result.to_arrow()
    assert table.column_names == ["row", "score", "scorer", "fallback_reason"]
    assert table.column("row").to_pylist() == [0, 2]
    assert table.column("fallback_reason").to_pylist() == ["", ""]


def test_the_good_rows_example_in_python_md_runs_as_documented(engine: Engine) -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "python.md").read_text()
    section = text.split("## Good rows scored, bad rows with reasons", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    df = pd.DataFrame({"id": [1, 2, 3], "tenure": [0.25, None, 2.0]})
    names: dict[str, Any] = {"engine": engine, "df": df}
    exec(block, names)
    assert [(row, feature) for row, feature, _ in names["rejects"]] == [
        (1, "tenure"),
        (2, "tenure"),
    ]
    assert names["scored"].index.tolist() == [0]
    assert names["df"].iloc[names["scored"].index]["id"].tolist() == [1]
