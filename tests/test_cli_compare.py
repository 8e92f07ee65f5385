"""`scoring compare`, through the real command line, and its metrics against numpy."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_helpers import FLAKY_CLASS, MEAN_CLASS, plugin_source, run_cli, write_project
from click.testing import Result

from scoring_core.cli import cli
from scoring_core.stats import DEFAULT_THRESHOLD, auc, average_ranks, pearson, spearman

FEATURES = ("a", "b", "c")
FIRST_CLASS = """
class First:
    def __init__(self, ctx):
        pass

    def score(self, X):
        return X[:, 0]
"""
# Scores of a regressor: the mean of the features times 100, far outside [0, 1].
HUNDRED_CLASS = """
class Hundred:
    def __init__(self, ctx):
        pass

    def score(self, X):
        return X.mean(axis=1) * 100.0
"""
LOCAL_PLUGIN = plugin_source(
    MEAN_CLASS,
    FIRST_CLASS,
    FLAKY_CLASS,
    HUNDRED_CLASS,
    register={"mean": "Mean", "first": "First", "flaky": "Flaky", "hundred": "Hundred"},
)


@pytest.fixture(autouse=True)
def _no_installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_LOAD_PLUGINS", "")


def write_config(
    folder: Path,
    scorers: tuple[str, str],
    output_range: tuple[float, float] | None = (0, 1),
) -> Path:
    names = [f"{s}_step" if s not in scorers[:i] else f"{s}_step{i}" for i, s in enumerate(scorers)]
    chain = "".join(
        f"  - {{name: {n}, scorer: {s}}}\n" for n, s in zip(names, scorers, strict=True)
    )
    return write_project(folder, LOCAL_PLUGIN, FEATURES, chain, output_range=output_range)


def write_rows(folder: Path, X: np.ndarray, label: np.ndarray | None = None) -> Path:
    columns = {f: pa.array(X[:, j]) for j, f in enumerate(FEATURES)}
    if label is not None:
        columns["outcome"] = pa.array(label)
    path = folder / "rows.parquet"
    pq.write_table(pa.table({"id": pa.array(range(len(X))), **columns}), path)
    return path


def compare(config: Path, path: Path, *args: str) -> Result:
    return run_cli("compare", str(path), "--config", str(config), *args)


def compare_json(config: Path, path: Path, *args: str) -> dict[str, object]:
    result = compare(config, path, "--json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def data(n: int = 400, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 0.85, size=(n, len(FEATURES)))


# -- through the command line -------------------------------------------------------------------


def test_the_command_has_no_fixed_default_threshold_it_chooses_one_from_the_scores() -> None:
    # was: the option's default was 0.70, applied silently to scores of any range
    command = cli.get_command(click.Context(cli), "compare")
    assert command is not None
    option = next(p for p in command.params if p.name == "threshold")
    assert option.default is None
    assert DEFAULT_THRESHOLD == 0.70


def test_scores_in_0_1_keep_the_default_threshold_and_the_report_says_so(tmp_path: Path) -> None:
    X = data()
    for output_range in [(0, 1), None]:
        config = write_config(tmp_path, ("mean", "first"), output_range=output_range)
        report = compare_json(config, write_rows(tmp_path, X))
        assert report["threshold"] == 0.7
        assert report["threshold_source"] == "default"
        assert report["threshold_note"] == "threshold 0.7 (default; --threshold to change)"
        a, b = X.astype(np.float32).mean(axis=1), X.astype(np.float32)[:, 0]
        (pair,) = report["pairs"]  # type: ignore[misc]
        assert pair["agreement"] == pytest.approx(np.mean((a >= 0.7) == (b >= 0.7)), abs=1e-6)
    result = compare(config, write_rows(tmp_path, X))
    assert result.stdout.splitlines()[0] == "threshold 0.7 (default; --threshold to change)"


def test_an_output_range_other_than_0_1_puts_the_threshold_in_its_middle(tmp_path: Path) -> None:
    X = data()
    config = write_config(tmp_path, ("hundred", "mean"), output_range=(0, 200))
    report = compare_json(config, write_rows(tmp_path, X))
    assert report["threshold"] == 100.0
    assert report["threshold_source"] == "output_range"
    assert report["threshold_note"] == (
        "threshold 100 (the middle of output_range [0, 200]; --threshold to change)"
    )
    hundred = report["steps"][0]  # type: ignore[index]
    assert hundred["share_at_or_above_threshold"] == 0.0  # the means are below 0.85 * 100


def test_scores_outside_0_1_without_output_range_leave_the_threshold_metrics_out(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, ("hundred", "mean"), output_range=None)
    rows = write_rows(tmp_path, data())
    result = compare(config, rows, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["threshold"] is None
    assert report["threshold_source"] is None
    note = report["threshold_note"]
    assert "outside [0, 1]" in note
    assert "pass --threshold" in note
    assert [s["share_at_or_above_threshold"] for s in report["steps"]] == [None, None]
    (pair,) = report["pairs"]
    assert "agreement" in pair
    assert pair["agreement"] is None
    assert pair["pearson"] == pytest.approx(1.0)  # the other metrics stay
    assert f"note: {note}" in result.stderr
    table = compare(config, rows)
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[0] == note
    assert "pairs (agreement: n/a)" in table.stdout


def test_a_given_threshold_is_used_whatever_the_scores(tmp_path: Path) -> None:
    X = data()
    config = write_config(tmp_path, ("hundred", "mean"), output_range=None)
    report = compare_json(config, write_rows(tmp_path, X), "--threshold", "40")
    assert (report["threshold"], report["threshold_source"]) == (40.0, "given")
    assert report["threshold_note"] == "threshold 40 (--threshold)"
    scores = X.astype(np.float32).mean(axis=1) * np.float32(100)
    hundred = report["steps"][0]  # type: ignore[index]
    assert hundred["share_at_or_above_threshold"] == pytest.approx(np.mean(scores >= 40), abs=1e-6)


def test_identical_steps_agree_completely(tmp_path: Path) -> None:
    config = write_config(tmp_path, ("mean", "mean"))
    report = compare_json(config, write_rows(tmp_path, data()))
    (pair,) = report["pairs"]  # type: ignore[misc]
    assert pair["pearson"] == pytest.approx(1.0)
    assert pair["spearman"] == pytest.approx(1.0)
    assert pair["mean_abs_diff"] == 0.0
    assert pair["agreement"] == 1.0


def test_pair_metrics_match_numpy_on_known_data(tmp_path: Path) -> None:
    X = data()
    config = write_config(tmp_path, ("mean", "first"))
    report = compare_json(config, write_rows(tmp_path, X), "--threshold", "0.4")
    a, b = X.astype(np.float32).mean(axis=1), X.astype(np.float32)[:, 0]
    a, b = a.astype(np.float64), b.astype(np.float64)
    (pair,) = report["pairs"]  # type: ignore[misc]
    assert (pair["a"], pair["b"], pair["rows"]) == ("mean_step", "first_step", 400)
    assert pair["pearson"] == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-6)
    ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))  # no ties here
    assert pair["spearman"] == pytest.approx(np.corrcoef(ranks_a, ranks_b)[0, 1], abs=1e-6)
    assert pair["mean_abs_diff"] == pytest.approx(np.mean(np.abs(a - b)), abs=1e-6)
    assert pair["agreement"] == pytest.approx(np.mean((a >= 0.4) == (b >= 0.4)), abs=1e-6)


def test_each_step_reports_its_latency_and_failed_rows(tmp_path: Path) -> None:
    X = data()
    X[:7, 0] = 0.95
    config = write_config(tmp_path, ("flaky", "mean"))
    report = compare_json(config, write_rows(tmp_path, X))
    flaky, mean = report["steps"]  # type: ignore[misc]
    assert (flaky["name"], flaky["rows"], flaky["rows_failed"]) == ("flaky_step", 400, 7)
    ((reason, rows),) = flaky["failure_reasons"].items()
    assert "non-finite" in reason
    assert rows == 7
    assert mean["rows_failed"] == 0
    assert mean["us_per_row"] > 0
    assert report["pairs"][0]["rows"] == 393  # type: ignore[index]


def test_a_numeric_label_gives_mse_and_mae_per_step(tmp_path: Path) -> None:
    X = data()
    label = np.linspace(0.0, 1.0, len(X))
    config = write_config(tmp_path, ("mean", "first"))
    report = compare_json(config, write_rows(tmp_path, X, label), "--label", "outcome")
    mean, first = report["steps"]  # type: ignore[misc]
    expected = X.astype(np.float32).mean(axis=1).astype(np.float64)
    assert mean["mse"] == pytest.approx(np.mean((expected - label) ** 2), abs=1e-6)
    assert mean["mae"] == pytest.approx(np.mean(np.abs(expected - label)), abs=1e-6)
    assert mean["auc"] is None  # the label is not 0/1
    assert first["mse"] is not None


def test_a_binary_label_gives_the_auc(tmp_path: Path) -> None:
    X = data(300)
    first = X.astype(np.float32)[:, 0].astype(np.float64)
    label = (first + np.random.default_rng(3).normal(0, 0.2, len(X)) > 0.45).astype(np.int64)
    config = write_config(tmp_path, ("first", "mean"))
    report = compare_json(config, write_rows(tmp_path, X, label), "--label", "outcome")
    positive, negative = first[label == 1], first[label == 0]
    pairs = positive[:, None] - negative[None, :]
    expected = (np.sum(pairs > 0) + 0.5 * np.sum(pairs == 0)) / pairs.size
    assert report["label_binary"] is True
    assert report["steps"][0]["auc"] == pytest.approx(expected, abs=1e-6)  # type: ignore[index]


def test_the_terminal_table_names_the_metrics(tmp_path: Path) -> None:
    config = write_config(tmp_path, ("mean", "first"))
    result = compare(config, write_rows(tmp_path, data()))
    assert result.exit_code == 0, result.output
    for word in ("mean_step", "first_step", "pearson", "spearman", "agreement", "us/row"):
        assert word in result.stdout


def test_plot_writes_a_png(tmp_path: Path) -> None:
    config = write_config(tmp_path, ("mean", "first"))
    plot = tmp_path / "steps.png"
    result = compare(config, write_rows(tmp_path, data()), "--plot", str(plot))
    assert result.exit_code == 0, result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_plot_that_cannot_be_written_is_refused_before_comparing(tmp_path: Path) -> None:
    config = write_config(tmp_path, ("mean", "first"))
    plot = tmp_path / "nowhere" / "steps.png"
    result = compare(config, write_rows(tmp_path, data()), "--plot", str(plot), "--json")
    assert result.exit_code == 2
    assert f"cannot write the plot to {plot}: there is no folder" in result.output
    assert "{" not in result.output  # no half report


def test_rejected_rows_are_counted_not_compared(tmp_path: Path) -> None:
    config = write_config(tmp_path, ("mean", "first"))
    (tmp_path / "rows.csv").write_text("id,a,b,c\n1,0.1,0.2,0.3\n2,x,0.2,0.3\n3,0.5,0.5,2\n")
    report = compare_json(config, tmp_path / "rows.csv")
    assert report["rows"] == {"in": 3, "compared": 1, "rejected": 2}


def test_a_missing_label_column_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, ("mean", "first"))
    result = compare(config, write_rows(tmp_path, data()), "--label", "outcom")
    assert result.exit_code == 2
    assert "no label column 'outcom'" in result.output


def test_a_label_column_without_numbers_exits_2_with_an_example(tmp_path: Path) -> None:
    config = write_config(tmp_path, ("mean", "first"))
    X = data()
    rows = write_rows(tmp_path, X, np.array(["yes", "no"] * (len(X) // 2), dtype=object))
    result = compare(config, rows, "--label", "outcome")
    assert result.exit_code == 2
    assert "the label column 'outcome' holds no numbers (such as 'yes')" in result.output


def test_a_label_whose_numbers_are_all_on_rejected_rows_is_not_called_empty(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, ("mean", "first"))
    # row 1 is fine but has no label; rows 2 and 3 (out of range, not a number) are rejected
    (tmp_path / "rows.csv").write_text("id,a,b,c,y\n1,0.1,0.2,0.3,\n2,5,0.2,0.3,1\n3,x,0.2,0.3,0\n")
    report = compare_json(config, tmp_path / "rows.csv", "--label", "y")
    assert report["rows"] == {"in": 3, "compared": 1, "rejected": 2}
    assert report["steps"][0]["label_rows"] == 0


def test_the_report_with_a_label_fits_80_columns_uncut(tmp_path: Path) -> None:
    config = write_config(tmp_path, ("mean", "first"))
    X = data()
    label = (X[:, 0] > 0.5).astype(np.int64)
    result = compare(config, write_rows(tmp_path, X, label), "--label", "outcome")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout  # no cell cut short
    assert "label 'outcome'" in result.stdout
    for word in ("mse", "mae", "auc", "mean_step", "first_step"):
        assert word in result.stdout


# -- the metrics themselves ---------------------------------------------------------------------


def test_average_ranks_share_ranks_between_ties() -> None:
    ranks = average_ranks(np.array([10.0, 20.0, 20.0, 5.0, 20.0]))
    np.testing.assert_array_equal(ranks, [2.0, 4.0, 4.0, 1.0, 4.0])


def test_spearman_is_one_for_any_increasing_transform() -> None:
    x = np.random.default_rng(0).normal(size=200)
    assert spearman(x, np.exp(3 * x)) == pytest.approx(1.0)
    assert pearson(x, np.exp(3 * x)) < 0.9


def test_correlations_of_a_constant_are_undefined_not_nan() -> None:
    assert pearson(np.ones(5), np.arange(5.0)) is None
    assert spearman(np.ones(5), np.arange(5.0)) is None


def test_auc_counts_ties_as_half_and_needs_both_classes() -> None:
    assert auc(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == 0.5
    assert auc(np.array([0.2, 0.8]), np.array([0.0, 1.0])) == 1.0
    assert auc(np.array([0.2, 0.8]), np.array([1.0, 1.0])) is None
