"""`scoring score`, run through the real command line on files the tests write.

The chain comes from a local plugin written into tmp_path (no built-in scorer involved):
``model`` (scorer ``flaky``: NaN for rows whose first feature is above 0.9) falls back to
``formula`` (scorer ``mean``: the mean of the features).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from cli_helpers import (
    FLAKY_CLASS,
    MEAN_CLASS,
    plugin_source,
    run_cli,
    run_process,
    write_project,
)
from click.testing import Result

from scoring_core.io import writers

FEATURES = ("a", "b", "c", "d", "e")
ALWAYS_NAN_CLASS = """
class AlwaysNan:
    def __init__(self, ctx):
        pass

    def score(self, X):
        return np.full(X.shape[0], np.nan)
"""
LOCAL_PLUGIN = plugin_source(
    MEAN_CLASS,
    FLAKY_CLASS,
    ALWAYS_NAN_CLASS,
    register={"mean": "Mean", "flaky": "Flaky", "always_nan": "AlwaysNan"},
)
CHAIN = "  - {name: model, scorer: flaky}\n  - {name: formula, scorer: mean}\n"


@pytest.fixture(autouse=True)
def _no_installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_LOAD_PLUGINS", "")


def write_config(
    folder: Path, chain: str = CHAIN, extra: str = "", d_default: bool = False
) -> Path:
    return write_project(
        folder,
        LOCAL_PLUGIN,
        FEATURES,
        chain,
        defaults={"d": 0.5} if d_default else None,
        output_range=(0, 1),
        extra=extra,
    )


def clean_rows(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 0.85, size=(n, len(FEATURES))).round(4)
    return [f"id-{i:03d}" for i in range(n)], X


def rows_table(ids: list[str], X: np.ndarray) -> pa.Table:
    columns = {"id": pa.array(ids), **{f: pa.array(X[:, j]) for j, f in enumerate(FEATURES)}}
    return pa.table(columns)


def score(config: Path, *args: str, stdin: bytes | None = None) -> Result:
    return run_cli("score", *args, "--config", str(config), stdin=stdin)


def read(path: Path) -> list[dict[str, object]]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    return pcsv.read_csv(
        path, convert_options=pcsv.ConvertOptions(strings_can_be_null=True)
    ).to_pylist()


BROKEN_CSV = (
    "id,a,b,c,d,e\n"
    "r1,0.1,0.2,0.3,0.4,0.5\n"
    "r2,abc,0.2,0.3,0.4,0.5\n"  # text in a number column
    "r3,NaN,0.2,0.3,0.4,0.5\n"  # NaN
    "r4,0.1,0.2,1.5,0.4,0.5\n"  # out of range
    "r5,0.1,,0.3,0.4,0.5\n"  # empty cell
    "r6,0.1,0.2\n"  # too few fields
    "r7,0.95,0.2,0.3,0.4,0.5\n"  # scored by the fallback
)


# -- formats ------------------------------------------------------------------------------------


def test_csv_to_csv_keeps_ids_and_input_order_and_adds_score_columns(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    ids, X = clean_rows(50)
    pcsv.write_csv(rows_table(ids, X), tmp_path / "in.csv")
    result = score(config, str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 0, result.output
    rows = read(tmp_path / "out.csv")
    assert list(rows[0]) == ["id", "score", "scorer", "fallback_reason"]
    assert [r["id"] for r in rows] == ids
    np.testing.assert_allclose([r["score"] for r in rows], X.mean(axis=1), atol=1e-6)
    assert {r["scorer"] for r in rows} == {"model"}


def test_parquet_output_gathers_chunks_into_row_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writers, "PARQUET_ROW_GROUP_ROWS", 100)
    config = write_config(tmp_path)
    ids, X = clean_rows(280)
    pq.write_table(rows_table(ids, X), tmp_path / "in.parquet")
    result = score(
        config, str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"),
        "--chunk-rows", "40",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metadata = pq.ParquetFile(tmp_path / "out.parquet").metadata
    # a row group is written once 100 rows are waiting (3 chunks), the rest at the end
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert sizes == [120, 120, 40]
    assert pq.read_table(tmp_path / "out.parquet").column("id").to_pylist() == ids


@pytest.mark.parametrize("suffix", ["parquet", "csv", "jsonl"])
def test_scorer_and_reason_are_categories_in_parquet_and_text_elsewhere(
    tmp_path: Path, suffix: str
) -> None:
    config = write_config(tmp_path)
    ids, X = clean_rows(30)
    X[[3, 7], 0] = 0.95  # the first step returns NaN for these rows
    pcsv.write_csv(rows_table(ids, X), tmp_path / "in.csv")
    out = tmp_path / f"out.{suffix}"
    result = score(config, str(tmp_path / "in.csv"), "-o", str(out))
    assert result.exit_code == 0, result.output
    rows = read(out)
    assert [r["scorer"] for r in rows].count("formula") == 2
    assert str(rows[3]["fallback_reason"]).startswith("model: ")
    assert rows[0]["fallback_reason"] in ("", None)
    if suffix == "parquet":
        schema = pq.read_schema(out)
        for column in ("scorer", "fallback_reason"):
            assert schema.field(column).type == pa.dictionary(pa.int32(), pa.string())
    elif suffix == "csv":
        assert out.read_text().splitlines()[4].split(",")[2].strip('"') == "formula"
    else:
        assert json.loads(out.read_text().splitlines()[3])["scorer"] == "formula"


def test_csv_to_parquet_writes_float_scores_and_text_ids(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    ids, X = clean_rows(20)
    pcsv.write_csv(rows_table(ids, X), tmp_path / "in.csv")
    result = score(config, str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.parquet"))
    assert result.exit_code == 0, result.output
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.schema.field("score").type == pa.float64()
    assert table.column("id").to_pylist() == ids


def test_parquet_to_parquet_scores_every_row_in_order(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    ids, X = clean_rows(300)
    pq.write_table(rows_table(ids, X), tmp_path / "in.parquet", row_group_size=64)
    result = score(
        config, str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"),
        "--chunk-rows", "50",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column("id").to_pylist() == ids
    np.testing.assert_allclose(table.column("score").to_numpy(), X.mean(axis=1), atol=1e-6)


def test_jsonl_to_jsonl_accepts_numbers_and_numeric_text(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    lines = [
        {"id": 1, "a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4, "e": 0.5},
        {"id": 2, "a": "0.5", "b": 0.5, "c": 0.5, "d": 0.5, "e": 0.5},
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    result = score(config, str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.output
    rows = read(tmp_path / "out.jsonl")
    assert [r["id"] for r in rows] == [1, 2]
    assert rows[1]["score"] == pytest.approx(0.5)


def test_stdin_to_stdout_needs_only_a_format(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    data = b"id,a,b,c,d,e\nx,0.2,0.2,0.2,0.2,0.2\ny,0.4,0.4,0.4,0.4,0.4\n"
    result = score(config, "-", "--format", "csv", stdin=data)
    assert result.exit_code == 0, result.stderr
    table = pcsv.read_csv(pa.BufferReader(result.stdout_bytes))
    assert table.column("id").to_pylist() == ["x", "y"]
    assert table.column("score").to_pylist() == pytest.approx([0.2, 0.4])
    assert "rows in" in result.stderr  # the summary goes to stderr, never into the data


def test_stdin_without_a_format_is_a_usage_error(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = score(config, "-", stdin=b"id,a\n")
    assert result.exit_code == 2
    assert "--input-format" in result.output


# -- fallbacks and rejects ----------------------------------------------------------------------


def test_fallback_reason_is_filled_only_for_rows_that_fell_back(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    ids, X = clean_rows(10)
    X[[2, 7], 0] = 0.95
    pq.write_table(rows_table(ids, X), tmp_path / "in.parquet")
    result = score(config, str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"))
    assert result.exit_code == 0, result.output
    rows = read(tmp_path / "out.parquet")
    fell_back = [i for i, r in enumerate(rows) if r["fallback_reason"]]
    assert fell_back == [2, 7]
    assert rows[2]["scorer"] == "formula"
    assert str(rows[2]["fallback_reason"]).startswith("model: returned a non-finite score")
    assert rows[0]["scorer"] == "model"
    assert rows[0]["fallback_reason"] == ""
    assert "step 'model': non_finite 2" in result.stderr


def test_bad_rows_go_to_the_rejects_file_with_row_column_and_reason(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "in.csv").write_text(BROKEN_CSV)
    result = score(config, str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 0, result.output
    scored = read(tmp_path / "out.csv")
    rejects = read(tmp_path / "out.rejects.csv")
    assert [r["id"] for r in scored] == ["r1", "r7"]
    assert [(r["row"], r["column"], r["id"]) for r in rejects] == [
        (2, "a", "r2"),
        (3, "a", "r3"),
        (4, "c", "r4"),
        (5, "b", "r5"),
        (6, None, None),  # unparsed: no column, no id
    ]
    messages = [str(r["error"]) for r in rejects]
    assert "'abc', not a number" in messages[0]
    assert "NaN" in messages[1]
    assert "outside [0.0, 1.0]" in messages[2]
    assert "empty" in messages[3]
    assert "has 3 fields, expected 6" in messages[4]
    assert len(scored) + len(rejects) == 7
    assert re.search(r"rows in +7 += 2 scored \+ 5 rejected \(the counts add up\)", result.stderr)


def test_rejects_keep_their_row_numbers_across_chunks(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    lines = ["id,a,b,c,d,e"]
    bad = {5, 17, 18, 40}
    short = {9, 33}
    for row in range(1, 51):
        if row in short:
            lines.append(f"r{row},0.1")
        elif row in bad:
            lines.append(f"r{row},x,0.1,0.1,0.1,0.1")
        else:
            lines.append(f"r{row},0.1,0.1,0.1,0.1,0.1")
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    result = score(
        config, str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.parquet"),
        "--chunk-rows", "7",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rejects = read(tmp_path / "out.rejects.parquet")
    assert [r["row"] for r in rejects] == sorted(bad | short)
    assert all(r["id"] == f"r{r['row']}" for r in rejects if r["row"] in bad)
    scored = read(tmp_path / "out.parquet")
    assert [r["id"] for r in scored] == [f"r{i}" for i in range(1, 51) if i not in bad | short]


def test_any_number_of_workers_writes_the_same_files(tmp_path: Path) -> None:
    # Chunks are scored on several threads; they must still come out in input order,
    # with the same rejects, whatever the number of workers.
    config = write_config(tmp_path)
    ids, X = clean_rows(500, seed=3)
    table = rows_table(ids, X)
    pcsv.write_csv(table, tmp_path / "in.csv")
    text = (tmp_path / "in.csv").read_text().splitlines()
    text[100] = text[100].replace(text[100].split(",")[2], "nope", 1)  # one bad cell
    (tmp_path / "in.csv").write_text("\n".join(text) + "\n")
    outputs = {}
    for workers in ("1", "3"):
        out = tmp_path / f"out{workers}.csv"
        result = score(
            config, str(tmp_path / "in.csv"), "-o", str(out), "--chunk-rows", "9",
            "--workers", workers,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        outputs[workers] = (out.read_text(), (tmp_path / f"out{workers}.rejects.csv").read_text())
    assert outputs["1"] == outputs["3"]
    scored = read(tmp_path / "out3.csv")
    assert [r["id"] for r in scored] == ids[:99] + ids[100:]
    assert [r["row"] for r in read(tmp_path / "out3.rejects.csv")] == [100]


def test_a_bad_cell_deep_in_a_big_csv_rejects_one_row_and_repeats_none(tmp_path: Path) -> None:
    # Past the first megabyte (pyarrow's block): the fast pass has delivered chunks
    # when it meets the bad cell, then reads on carefully from there.
    config = write_config(tmp_path)
    n = 40_000
    lines = ["id,a,b,c,d,e"] + [f"r{row},0.1,0.2,0.3,0.4,0.5" for row in range(1, n + 1)]
    lines[35_000] = "r35000,0.1,0.2,oops,0.4,0.5"
    lines[36_000] = "r36000,0.1"
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    assert (tmp_path / "in.csv").stat().st_size > 1 << 20
    out = tmp_path / "out.parquet"
    result = score(config, str(tmp_path / "in.csv"), "-o", str(out), "--chunk-rows", "1000")
    assert result.exit_code == 0, result.output
    ids = pq.read_table(out).column("id").to_pylist()
    assert len(ids) == n - 2
    assert ids == [f"r{row}" for row in range(1, n + 1) if row not in (35_000, 36_000)]
    rejects = read(tmp_path / "out.rejects.parquet")
    assert [(r["row"], r["column"]) for r in rejects] == [(35_000, "c"), (36_000, "")]


def test_text_in_a_parquet_number_column_rejects_only_that_row(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    table = pa.table(
        {
            "id": ["p", "q", "r"],
            "a": ["0.1", "oops", "0.3"],
            **{f: [0.5, 0.5, 0.5] for f in FEATURES[1:]},
        }
    )
    pq.write_table(table, tmp_path / "in.parquet")
    result = score(config, str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"))
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read(tmp_path / "out.parquet")] == ["p", "r"]
    rejects = read(tmp_path / "out.rejects.parquet")
    assert [(r["row"], r["column"], r["id"]) for r in rejects] == [(2, "a", "q")]


def test_a_line_that_is_not_json_is_rejected_not_fatal(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    good = json.dumps({"id": "j1", **dict.fromkeys(FEATURES, 0.2)})
    (tmp_path / "in.jsonl").write_text(f"{good}\n{{not json\n[1, 2]\n{good}\n")
    result = score(config, str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.output
    assert len(read(tmp_path / "out.jsonl")) == 2
    rejects = read(tmp_path / "out.rejects.jsonl")
    assert [r["row"] for r in rejects] == [2, 3]
    assert "not valid JSON" in str(rejects[0]["error"])


def test_jsonl_with_nested_values_and_mixed_types_keeps_every_row(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    features = dict.fromkeys(FEATURES, 0.5)
    lines = [
        json.dumps({"id": 1, "meta": {"k": [1, 2]}, **features}),
        "",
        json.dumps({"id": "two", **features, "a": "0.25"}),
        json.dumps({"id": 3, **features, "b": None}),
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    result = score(config, str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 0, result.output
    rows = read(tmp_path / "out.csv")
    assert [(r["id"], r["meta"]) for r in rows] == [("1", '{"k": [1, 2]}'), ("two", None)]
    assert rows[1]["score"] == pytest.approx((0.25 + 0.5 * 4) / 5)
    rejects = read(tmp_path / "out.rejects.csv")
    assert [(r["row"], r["column"]) for r in rejects] == [(3, "b")]  # the blank line is no row


def test_fail_on_reject_exits_1_and_still_writes_both_files(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "in.csv").write_text(BROKEN_CSV)
    out = tmp_path / "out.csv"
    result = score(config, str(tmp_path / "in.csv"), "-o", str(out), "--fail-on-reject")
    assert result.exit_code == 1
    assert "5 row(s) rejected (--fail-on-reject)" in result.stderr
    assert out.exists()
    assert (tmp_path / "out.rejects.csv").exists()


def test_fail_on_reject_exits_0_when_nothing_is_rejected(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    ids, X = clean_rows(5)
    pcsv.write_csv(rows_table(ids, X), tmp_path / "in.csv")
    result = score(
        config, str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"), "--fail-on-reject"
    )
    assert result.exit_code == 0, result.output
    assert read(tmp_path / "out.rejects.csv") == []  # written, empty: never a stale one


def test_rejects_option_chooses_the_rejects_file(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "in.csv").write_text(BROKEN_CSV)
    result = score(
        config, str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.parquet"),
        "--rejects", str(tmp_path / "bad.parquet"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(read(tmp_path / "bad.parquet")) == 5


# -- columns ------------------------------------------------------------------------------------


def test_keep_chooses_the_columns_copied_to_the_output(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    table = rows_table(*clean_rows(3)).append_column("segment", pa.array(["s", "t", "u"]))
    pq.write_table(table, tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = score(config, str(tmp_path / "in.parquet"), "-o", str(out), "--keep", "segment,a")
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).column_names == ["segment", "a", "score", "scorer", "fallback_reason"]


def test_keep_with_an_unknown_column_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    pq.write_table(rows_table(*clean_rows(3)), tmp_path / "in.parquet")
    result = score(
        config, str(tmp_path / "in.parquet"), "-o", str(tmp_path / "o.parquet"), "--keep", "idd"
    )
    assert result.exit_code == 2
    assert "did you mean 'id'" in result.output


def test_a_missing_feature_column_exits_2_naming_the_column(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "in.csv").write_text("id,a,b,cc,d,e\nr1,0.1,0.2,0.3,0.4,0.5\n")
    out = tmp_path / "out.csv"
    result = score(config, str(tmp_path / "in.csv"), "-o", str(out))
    assert result.exit_code == 2
    assert "has no column 'c' (feature 3 of 5)" in result.output
    assert "did you mean 'cc'" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_every_missing_feature_is_named_and_other_columns_are_called_other(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    (tmp_path / "in.csv").write_text("id,note,a,b,e\nr1,x,0.1,0.2,0.5\n")
    result = score(config, str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 2
    assert "has no column 'c' (feature 3 of 5), and the feature has no default" in result.output
    assert "its other columns: id, note; 1 more feature(s) missing too: 'd'" in result.output


def test_a_missing_column_of_a_feature_with_a_default_takes_the_default(tmp_path: Path) -> None:
    config = write_config(tmp_path, d_default=True)
    (tmp_path / "in.csv").write_text("id,a,b,c,e\nr1,0.1,0.1,0.1,0.1\nr2,0.3,0.3,0.3,\n")
    result = score(config, str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 0, result.output
    rows = read(tmp_path / "out.csv")
    assert rows[0]["score"] == pytest.approx((0.4 + 0.5) / 5)
    assert [r["row"] for r in read(tmp_path / "out.rejects.csv")] == [2]  # e is empty


# -- broken input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "is empty (0 bytes)"),
        ("empty.jsonl", b"", "is empty"),
        ("blank.jsonl", b"\n\n", "is empty"),
        ("mixed_endings.csv", b"id,a,b\rc,d,e\n", "carriage return (\\r) before its end"),
    ],
)
def test_an_empty_or_unreadable_file_exits_2_with_a_clear_message(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    config = write_config(tmp_path)
    (tmp_path / name).write_bytes(content)
    out = tmp_path / ("out" + Path(name).suffix)
    result = score(config, str(tmp_path / name), "-o", str(out))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert name in result.output
    assert not out.exists()


def test_a_feature_column_of_dates_exits_2_naming_the_file_and_column(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    table = rows_table(*clean_rows(3))
    dates = pa.array(np.array(["2026-01-01", "2026-01-02", "2026-01-03"], dtype="datetime64[us]"))
    table = table.set_column(table.schema.get_field_index("b"), "b", dates)
    pq.write_table(table, tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = score(config, str(tmp_path / "in.parquet"), "-o", str(out))
    assert result.exit_code == 2
    assert f"{tmp_path / 'in.parquet'}: column 'b' holds timestamp[us] values" in result.output
    assert not out.exists()


def test_a_parquet_file_without_rows_writes_an_empty_output_with_its_types(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    pq.write_table(rows_table(*clean_rows(0)), tmp_path / "in.parquet")
    result = score(config, str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"))
    assert result.exit_code == 0, result.output
    written = pq.read_table(tmp_path / "out.parquet")
    assert written.num_rows == 0
    assert written.schema.field("id").type == pa.string()
    assert written.schema.field("score").type == pa.float64()


def test_a_truncated_parquet_file_exits_2_without_a_traceback(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    pq.write_table(rows_table(*clean_rows(500)), tmp_path / "full.parquet")
    data = (tmp_path / "full.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    result = score(config, str(tmp_path / "cut.parquet"), "-o", str(tmp_path / "out.parquet"))
    assert result.exit_code == 2
    assert "cannot read" in result.output
    assert "cut.parquet" in result.output
    assert "truncated" in result.output
    assert "Traceback" not in result.output


def test_a_missing_input_file_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = score(config, str(tmp_path / "nope.csv"), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_an_unknown_extension_asks_for_a_format(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "in.txt").write_text("id,a\n")
    result = score(config, str(tmp_path / "in.txt"), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 2
    assert "--input-format" in result.output


def test_a_chain_that_fails_every_row_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path, chain="  - {name: only, scorer: always_nan}\n")
    pq.write_table(rows_table(*clean_rows(5)), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = score(config, str(tmp_path / "in.parquet"), "-o", str(out))
    assert result.exit_code == 1
    assert "every step of the chain failed for row 1" in result.output
    assert "no output was written" in result.output
    assert not out.exists()
    assert not list(tmp_path.glob(".out*"))  # no temporary file left behind


def test_on_exhausted_default_scores_are_marked_in_the_scorer_column(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        chain="  - {name: only, scorer: always_nan}\n",
        extra="on_exhausted: {score: 0.25}\n",
    )
    pq.write_table(rows_table(*clean_rows(3)), tmp_path / "in.parquet")
    result = score(config, str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"))
    assert result.exit_code == 0, result.output
    rows = read(tmp_path / "out.parquet")
    assert {(r["score"], r["scorer"]) for r in rows} == {(0.25, "on_exhausted")}


def test_rejects_from_a_run_to_stdout_are_written_where_rejects_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = score(config, "-", "--format", "csv", stdin=BROKEN_CSV.encode())
    assert result.exit_code == 0, result.stderr
    assert len(pcsv.read_csv(pa.BufferReader(result.stdout_bytes))) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["myplugin.py", "scoring.yaml"]
    assert "rejected             5  not written" in result.stderr
    result = score(
        config, "-", "--format", "csv", "--rejects", "bad.csv", stdin=BROKEN_CSV.encode()
    )
    assert len(read(tmp_path / "bad.csv")) == 5
    assert "-> bad.csv" in result.stderr


def test_an_input_column_named_like_an_output_column_must_be_left_out(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    table = rows_table(*clean_rows(2)).append_column("score", pa.array([1.0, 2.0]))
    pq.write_table(table, tmp_path / "in.parquet")
    out = str(tmp_path / "out.parquet")
    result = score(config, str(tmp_path / "in.parquet"), "-o", out)
    assert result.exit_code == 2
    assert "'score' would clash" in result.output
    assert score(config, str(tmp_path / "in.parquet"), "-o", out, "--keep", "id").exit_code == 0


def test_the_rejects_file_cannot_be_the_output(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    pq.write_table(rows_table(*clean_rows(2)), tmp_path / "in.parquet")
    out = str(tmp_path / "out.parquet")
    result = score(config, str(tmp_path / "in.parquet"), "-o", out, "--rejects", out)
    assert result.exit_code == 2
    assert "another file" in result.output


@pytest.mark.parametrize("option", ["-o", "--rejects"])
@pytest.mark.parametrize("link", [None, "symlink"])
def test_no_file_the_run_writes_can_be_the_input(
    tmp_path: Path, option: str, link: str | None
) -> None:
    config = write_config(tmp_path)
    source = tmp_path / "in.csv"
    source.write_text("id,a,b,c,d,e\nr1,0.1,0.2,0.3,0.4,0.5\n")
    target = source
    if link:
        target = tmp_path / "alias.csv"
        target.symlink_to(source)
    out = str(tmp_path / "out.csv")
    other = ["--rejects", str(tmp_path / "r.csv")] if option == "-o" else ["-o", out]
    result = score(config, str(source), option, str(target), *other)
    assert result.exit_code == 2
    assert f"to {target}: it is the input file" in result.output
    assert source.read_text() == "id,a,b,c,d,e\nr1,0.1,0.2,0.3,0.4,0.5\n"  # untouched


def test_standard_input_redirected_from_the_output_file_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    source = tmp_path / "in.csv"
    source.write_text("id,a,b,c,d,e\nr1,0.1,0.2,0.3,0.4,0.5\n")
    args = ("score", "-", "--format", "csv", "-o", str(source), "--config", str(config))
    with open(source, "rb") as stdin:  # `scoring score - -o in.csv < in.csv`
        done = run_process(tmp_path, *args, stdin=stdin)
    assert done.returncode == 2
    assert "it is the input file" in done.stderr
    assert source.read_text() == "id,a,b,c,d,e\nr1,0.1,0.2,0.3,0.4,0.5\n"


def test_an_output_path_the_system_cannot_follow_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    pq.write_table(rows_table(*clean_rows(2)), tmp_path / "in.parquet")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    result = score(config, str(tmp_path / "in.parquet"), "-o", str(loop / "out.csv"))
    assert result.exit_code == 2, result.output
    assert f"cannot write the output to {loop / 'out.csv'}" in result.output


def test_an_output_in_a_folder_that_cannot_take_it_exits_2_before_scoring(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    pq.write_table(rows_table(*clean_rows(2)), tmp_path / "in.parquet")
    source = str(tmp_path / "in.parquet")
    (tmp_path / "folder").mkdir()
    result = score(config, source, "-o", str(tmp_path / "folder"), "--output-format", "csv")
    assert result.exit_code == 2
    assert f"cannot write the output to {tmp_path / 'folder'}: it is a folder" in result.output
    result = score(config, source, "-o", str(tmp_path / "nowhere" / "out.csv"))
    assert result.exit_code == 2
    assert f"there is no folder {tmp_path / 'nowhere'}" in result.output
    assert "rows in" not in result.output  # refused before any work


def fill_the_disk_when_parquet_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", disk_full)


def test_a_disk_that_fills_at_the_end_leaves_neither_output_nor_rejects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path)
    ids, X = clean_rows(50)
    pq.write_table(rows_table(ids, X), tmp_path / "in.parquet")
    # the rows wait for their row group, so the output's last write fails as it closes
    fill_the_disk_when_parquet_writes(monkeypatch)
    result = score(config, str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"))
    assert result.exit_code != 0
    assert "No space left on device" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.parquet",
        "myplugin.py",
        "scoring.yaml",
    ]


def test_parquet_to_stdout_comes_out_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path)
    ids, X = clean_rows(40)
    pq.write_table(rows_table(ids, X), tmp_path / "in.parquet")
    result = score(config, str(tmp_path / "in.parquet"), "--format", "parquet")
    assert result.exit_code == 0, result.stderr
    assert pq.read_table(pa.BufferReader(result.stdout_bytes)).column("id").to_pylist() == ids

    # a run that fails while finishing writes nothing to stdout: no valid-looking file
    fill_the_disk_when_parquet_writes(monkeypatch)
    result = score(config, str(tmp_path / "in.parquet"), "--format", "parquet")
    assert result.exit_code != 0
    assert result.stdout_bytes == b""


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_reader_that_stops_early_ends_the_run_quietly(tmp_path: Path, fmt: str) -> None:
    config = write_config(tmp_path)
    ids, X = clean_rows(5_000)
    pq.write_table(rows_table(ids, X), tmp_path / "in.parquet")
    command = [sys.executable, "-m", "scoring_core", "score", "in.parquet"]
    command += ["--output-format", fmt, "--config", str(config)]
    env = {**os.environ, "SCORING_LOAD_PLUGINS": ""}
    # like `| head -c 100`: the output (over 200 KB, more than a pipe holds) is cut short
    with subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as run:
        assert run.stdout is not None
        assert run.stderr is not None
        assert len(run.stdout.read(100)) == 100
        run.stdout.close()
        stderr = run.stderr.read().decode()
    assert run.returncode == 141, stderr  # as a shell reports a command stopped by SIGPIPE
    assert "error" not in stderr


INTERRUPTING_CLASS = """
class Interrupting:
    def __init__(self, ctx):
        pass

    def score(self, X):
        import os, signal

        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C in the terminal would
        return X.mean(axis=1)
"""


def test_ctrl_c_exits_130_and_leaves_no_output_behind(tmp_path: Path) -> None:
    plugin = plugin_source(INTERRUPTING_CLASS, register={"interrupting": "Interrupting"})
    config = write_project(tmp_path, plugin, FEATURES, "  - {name: only, scorer: interrupting}\n")
    pq.write_table(rows_table(*clean_rows(50)), tmp_path / "in.parquet")
    args = ("score", "in.parquet", "-o", "out.parquet", "--workers", "1")
    done = run_process(tmp_path, *args, "--config", str(config))
    assert done.returncode == 130, done.stderr
    assert "interrupted (Ctrl-C): files it was writing are removed" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.parquet",
        "myplugin.py",
        "scoring.yaml",
    ]


SLOW_MEAN_CLASS = """
class SlowMean:
    def __init__(self, ctx):
        pass

    def score(self, X):
        import time

        time.sleep(0.005)  # a run long enough for the bar to redraw a few times
        return X.mean(axis=1)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal (pty)")
def test_a_terminal_gets_a_progress_bar_with_rate_and_eta_and_a_pipe_does_not(
    tmp_path: Path,
) -> None:
    import pty

    plugin = plugin_source(SLOW_MEAN_CLASS, register={"slow": "SlowMean"})
    config = write_project(tmp_path, plugin, FEATURES, "  - {name: only, scorer: slow}\n")
    name = "calling_scores_for_the_week_of_2026_11_23.parquet"  # longer than a bar leaves room
    pq.write_table(rows_table(*clean_rows(100_000)), tmp_path / name)
    args = ["score", name, "-o", "out.parquet", "--chunk-rows", "1000", "--workers", "1"]
    args += ["--config", str(config)]
    leader, follower = pty.openpty()  # stderr is a terminal, 80 columns wide
    env = {**os.environ, "SCORING_LOAD_PLUGINS": "", "COLUMNS": "80", "TERM": "xterm"}
    with subprocess.Popen(
        [sys.executable, "-m", "scoring_core", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=follower,
    ) as run:
        os.close(follower)
        shown = b""
        while True:
            try:
                data = os.read(leader, 1 << 16)
            except OSError:  # the terminal is gone with the process
                break
            if not data:
                break
            shown += data
    os.close(leader)
    text = shown.decode(errors="replace")
    assert run.returncode == 0, text
    # at 80 columns the name gives way (its end kept); the counts, rate and ETA are whole
    bar = r"…[a-z_0-9]*_2026_11_23\.parquet .* \d[\d,]* rows  [\d,]+ rows/s .*\d:\d\d:\d\d"
    assert re.search(bar, text), text
    piped = run_process(tmp_path, *args)  # stderr is a pipe: the summary alone
    assert piped.returncode == 0
    assert piped.stderr.startswith("rows in")
    assert "\x1b[" not in piped.stderr


# -- a step that never loaded --------------------------------------------------------------------


def broken_model_config(folder: Path, step_keys: str = "") -> Path:
    """A chain whose first step is the real onnx scorer on a truncated model file."""
    from onnx_models import write_linear_model

    model = write_linear_model(folder / "model.onnx", len(FEATURES))
    model.write_bytes(model.read_bytes()[:40])  # cut short on disk
    chain = (
        f"  - {{name: neural, scorer: onnx, options: {{model: model.onnx}}{step_keys}}}\n"
        "  - {name: formula, scorer: mean}\n"
    )
    return write_config(folder, chain=chain)


def summary_after_warnings(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if not line.startswith("warning:")]


@pytest.fixture
def onnx_plugin_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_LOAD_PLUGINS", "onnx")


@pytest.mark.usefixtures("onnx_plugin_too")
def test_a_run_whose_model_never_loaded_writes_everything_then_exits_1_saying_so_first(
    tmp_path: Path,
) -> None:
    config = broken_model_config(tmp_path)
    ids, X = clean_rows(5)
    pq.write_table(rows_table(ids, X), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = score(config, str(tmp_path / "in.parquet"), "-o", str(out))
    assert result.exit_code == 1, result.output
    assert [r["scorer"] for r in read(out)] == ["formula"] * 5  # the output, whole
    assert "warning: step 'neural' is unavailable (" in result.stderr
    first = summary_after_warnings(result)[0]
    assert first.startswith("step 'neural' was unavailable for the whole run: OnnxLoadError")
    assert "; all 5 rows were scored by 'formula'. Mark the step `optional: true` or pass " in (
        first
    )
    assert first.endswith("--allow-unavailable if that is expected.")
    assert summary_after_warnings(result)[1].startswith("rows in")


@pytest.mark.usefixtures("onnx_plugin_too")
def test_allow_unavailable_exits_0_and_keeps_the_warning(tmp_path: Path) -> None:
    config = broken_model_config(tmp_path)
    pq.write_table(rows_table(*clean_rows(5)), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = score(config, str(tmp_path / "in.parquet"), "-o", str(out), "--allow-unavailable")
    assert result.exit_code == 0, result.output
    assert "warning: step 'neural' is unavailable (" in result.stderr
    first = summary_after_warnings(result)[0]
    assert first.startswith("step 'neural' was unavailable for the whole run: ")
    assert first.endswith("all 5 rows were scored by 'formula'. Allowed by --allow-unavailable.")
    assert len(read(out)) == 5


@pytest.mark.usefixtures("onnx_plugin_too")
def test_an_optional_step_that_never_loaded_does_not_fail_the_run(tmp_path: Path) -> None:
    config = broken_model_config(tmp_path, step_keys=", optional: true")
    pq.write_table(rows_table(*clean_rows(3)), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = score(config, str(tmp_path / "in.parquet"), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "warning: optional step 'neural' is unavailable (" in result.stderr
    first = summary_after_warnings(result)[0]
    assert first.startswith("optional step 'neural' was unavailable for the whole run: ")
    assert first.endswith("all 3 rows were scored by 'formula'.")


def test_a_step_that_loaded_but_failed_rows_is_not_an_unavailable_step(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    ids, X = clean_rows(4)
    X[0, 0] = 0.95  # the flaky model fails this row
    pq.write_table(rows_table(ids, X), tmp_path / "in.parquet")
    result = score(config, str(tmp_path / "in.parquet"), "-o", str(tmp_path / "out.parquet"))
    assert result.exit_code == 0, result.output
    assert "unavailable" not in result.stderr
    assert result.stderr.splitlines()[0].startswith("rows in")
