"""`scoring models annotate`, through the real command line, on real exported models.

The round trip: a scikit-learn model exported by skl2onnx, annotated with its feature
names and a self-test, then loaded by the onnx scorer in a chain, which checks the names
and runs the self-test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from cli_helpers import run_cli
from onnx import TensorProto, helper, numpy_helper
from onnx_models import IR_VERSION, OPSET, write_linear_model
from scoring_onnx.metadata import FEATURE_NAMES_KEY, SELF_TEST_KEY, golden_rows

NAMES = ("tenure", "spend", "visits")
RULES_LAST = "  - {name: formula, scorer: rules, options: {terms: [{feature: tenure}]}}\n"


@pytest.fixture(autouse=True)
def _first_party_plugins_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_LOAD_PLUGINS", "onnx,rules")


def training_rows(n: int = 300, seed: int = 0) -> np.ndarray:
    """Rows of a practitioner's data: not in [0, 1]."""
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [rng.uniform(0, 120, n), rng.gamma(2.0, 50.0, n), rng.poisson(6, n).astype(float)]
    ).astype(np.float32)


def sklearn_model(folder: Path, kind: str = "regression", **options: Any) -> Path:
    """A scikit-learn model exported by skl2onnx as practitioners do (one [N, 3] input)."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression, LogisticRegression

    X = training_rows()
    if kind == "regression":
        y = 2.0 * X[:, 0] + 0.5 * X[:, 1] - 3.0 * X[:, 2] + 7.0
        estimator: Any = LinearRegression().fit(X, y)
    else:
        estimator = LogisticRegression(max_iter=1_000).fit(X, (X[:, 1] > 100).astype(int))
    path = folder / f"{kind}.onnx"
    path.write_bytes(to_onnx(estimator, X[:1], options=options or None).SerializeToString())
    return path


def write_rows(folder: Path, X: np.ndarray, name: str = "rows.csv") -> Path:
    table = pa.table({n: pa.array(X[:, j].astype(np.float64)) for j, n in enumerate(NAMES)})
    path = folder / name
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        pcsv.write_csv(table, path)
    return path


def write_names(folder: Path, names: tuple[str, ...] = NAMES, name: str = "names.txt") -> Path:
    path = folder / name
    path.write_text("# the model's columns, in order\n" + "\n".join(names) + "\n")
    return path


def chain_config(folder: Path, model: Path, step_options: str = "") -> Path:
    features = "".join(f"  - {{name: {n}}}\n" for n in NAMES)
    config = folder / "scoring.yaml"
    config.write_text(
        f"features:\n{features}chain:\n"
        f"  - {{name: neural, scorer: onnx, options: {{model: {model.name}{step_options}}}}}\n"
        + RULES_LAST
    )
    return config


def metadata(model: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(model)).metadata_props}


def ort_run(model: Path, X: np.ndarray, output: str | None = None) -> Any:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run([output] if output else None, {session.get_inputs()[0].name: X})[0]


def annotate(*args: str) -> Any:
    return run_cli("models", "annotate", *args)


def neural_step(config: Path) -> dict[str, Any]:
    result = run_cli("check", str(config), "--json")
    step: dict[str, Any] = json.loads(result.stdout)["steps"][0]
    return step


# -- the round trip ------------------------------------------------------------------------------


def test_an_annotated_skl2onnx_regression_loads_with_names_checked_and_self_test_passed(
    tmp_path: Path,
) -> None:
    model = sklearn_model(tmp_path)
    X = training_rows(8, seed=1)
    out = tmp_path / "annotated.onnx"
    result = annotate(
        str(model),
        "--features",
        str(write_names(tmp_path)),
        "-o",
        str(out),
        "--self-test",
        str(write_rows(tmp_path, X)),
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    assert f"{FEATURE_NAMES_KEY}: 3 names (tenure, spend, visits)" in result.output
    assert f"{SELF_TEST_KEY}: 8 rows from " in result.output
    written = metadata(out)
    assert json.loads(written[FEATURE_NAMES_KEY]) == list(NAMES)
    rows, expected, tolerance = golden_rows(written, 3, out) or ([], [], 0.0)  # the exact format
    assert np.array_equal(np.asarray(rows, np.float32), X)
    assert expected == pytest.approx(ort_run(model, X).reshape(-1).tolist(), abs=0)
    assert 1e-5 <= tolerance < 1e-2  # scaled to scores in the hundreds
    assert metadata(model) == {}  # the model itself is untouched

    step = neural_step(chain_config(tmp_path, out))
    assert step["status"] == "ready", step["reason"]
    assert step["details"]["feature_names_checked"] is True
    assert step["details"]["self_test"] == f"passed (8 rows, tolerance {tolerance:g})"


def test_the_annotated_model_scores_as_onnxruntime_does_through_scoring_score(
    tmp_path: Path,
) -> None:
    model = sklearn_model(tmp_path)
    out = tmp_path / "annotated.onnx"
    rows = write_rows(tmp_path, training_rows(5, seed=2))
    assert (
        annotate(str(model), "--features", str(write_names(tmp_path)), "-o", str(out)).exit_code
        == 0
    )
    config = chain_config(tmp_path, out)
    X = training_rows(50, seed=3)
    scored = tmp_path / "scored.parquet"
    result = run_cli(
        "score",
        str(write_rows(tmp_path, X, "in.parquet")),
        "-o",
        str(scored),
        "--config",
        str(config),
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(scored)
    assert table.column("scorer").to_pylist() == ["neural"] * 50
    expected = ort_run(model, X).reshape(-1)
    assert np.array_equal(np.asarray(table.column("score").to_pylist(), np.float32), expected)
    assert rows.exists()


def test_a_tampered_self_test_refuses_the_model(tmp_path: Path) -> None:
    model = sklearn_model(tmp_path)
    out = tmp_path / "annotated.onnx"
    result = annotate(
        str(model),
        "--features",
        str(write_names(tmp_path)),
        "-o",
        str(out),
        "--self-test",
        str(write_rows(tmp_path, training_rows(4, seed=1))),
    )
    assert result.exit_code == 0, result.output
    proto = onnx.load(str(out))
    for entry in proto.metadata_props:
        if entry.key == SELF_TEST_KEY:
            test = json.loads(entry.value)
            test["expected"][2] += 1.0
            entry.value = json.dumps(test)
    out.write_bytes(proto.SerializeToString())
    config = chain_config(tmp_path, out)
    step = neural_step(config)
    assert step["status"] == "unavailable"
    assert "failed its self-test: 1 of 4 golden rows" in step["reason"]
    assert "row 2: expected" in step["reason"]
    assert run_cli("check", str(config)).exit_code == 1


def test_names_in_another_order_than_the_chain_refuse_the_model(tmp_path: Path) -> None:
    model = sklearn_model(tmp_path)
    out = tmp_path / "annotated.onnx"
    names = write_names(tmp_path, ("spend", "tenure", "visits"))
    assert annotate(str(model), "--features", str(names), "-o", str(out)).exit_code == 0
    step = neural_step(chain_config(tmp_path, out))
    assert step["status"] == "unavailable"
    assert "at position 0 its metadata" in step["reason"]


# -- classifiers: the output and the class ----------------------------------------------------


def test_a_classifier_needs_the_output_and_the_class_of_its_zipmap(tmp_path: Path) -> None:
    model = sklearn_model(tmp_path, "classifier")  # label + ZipMap probabilities
    X = training_rows(6, seed=4)
    rows, names, out = write_rows(tmp_path, X), write_names(tmp_path), tmp_path / "out.onnx"
    base = [str(model), "--features", str(names), "-o", str(out), "--self-test", str(rows)]
    no_output = annotate(*base)
    assert no_output.exit_code == 2
    assert "has 2 outputs; choose the one to serve with --output" in no_output.output
    assert "output_label: tensor(int64)" in no_output.output
    assert "output_probability: seq(map(int64,tensor(float)))" in no_output.output
    no_class = annotate(*base, "--output", "output_probability")
    assert no_class.exit_code == 2
    assert "classes [0, 1]). Pick the class with `--class LABEL`" in no_class.output
    wrong = annotate(*base, "--output", "output_probability", "--class", "2")
    assert wrong.exit_code == 2
    assert "`--class 2` is not one of the model's class labels [0, 1]" in wrong.output
    assert not out.exists()
    done = annotate(*base, "--output", "output_probability", "--class", "1")
    assert done.exit_code == 0, done.output
    assert "scored by output 'output_probability', class 1" in done.output
    assert (
        "the step's options must choose the same score (output: output_probability, class: 1)"
        in (done.output)
    )
    probabilities = ort_run(model, X, "output_probability")
    _, expected, _ = golden_rows(metadata(out), 3, out) or ([], [], 0.0)
    assert expected == pytest.approx([p[1] for p in probabilities], abs=0)


@pytest.mark.parametrize("pick", [["--class", "1"], ["--column", "1"]])
def test_a_probability_matrix_takes_the_class_label_or_the_column(
    tmp_path: Path, pick: list[str]
) -> None:
    model = sklearn_model(tmp_path, "classifier", zipmap=False)
    X = training_rows(6, seed=5)
    out = tmp_path / "out.onnx"
    result = annotate(
        str(model),
        "--features",
        str(write_names(tmp_path)),
        "-o",
        str(out),
        "--self-test",
        str(write_rows(tmp_path, X)),
        "--output",
        "probabilities",
        *pick,
    )
    assert result.exit_code == 0, result.output
    _, expected, _ = golden_rows(metadata(out), 3, out) or ([], [], 0.0)
    assert expected == pytest.approx(ort_run(model, X, "probabilities")[:, 1].tolist(), abs=0)


# -- one input per column, in the type the model declares -------------------------------------


def per_column_model(path: Path, inputs: tuple[str, ...], weights: list[float]) -> Path:
    """One float64 [N, 1] input per column, named by it: sum(w_i * x_i)."""
    graph = helper.make_graph(
        [
            helper.make_node("Concat", list(inputs), ["x"], axis=1),
            helper.make_node("MatMul", ["x", "w"], ["y"]),
        ],
        "per_column",
        [helper.make_tensor_value_info(n, TensorProto.DOUBLE, ["N", 1]) for n in inputs],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", 1])],
        [numpy_helper.from_array(np.asarray(weights, np.float64).reshape(-1, 1), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    path.write_bytes(model.SerializeToString())
    return path


def test_per_column_inputs_are_fed_by_name_in_the_declared_type(tmp_path: Path) -> None:
    # the model's inputs are in another order than the names: matched by name
    model = per_column_model(tmp_path / "cols.onnx", ("visits", "tenure", "spend"), [1, 10, 100])
    X = training_rows(5, seed=6)
    out = tmp_path / "out.onnx"
    result = annotate(
        str(model),
        "--features",
        str(write_names(tmp_path)),
        "-o",
        str(out),
        "--self-test",
        str(write_rows(tmp_path, X, "rows.parquet")),
    )
    assert result.exit_code == 0, result.output
    assert "3 inputs, one per feature, matched by name" in result.output
    _, expected, _ = golden_rows(metadata(out), 3, out) or ([], [], 0.0)
    X64 = X.astype(np.float64)
    assert expected == pytest.approx(X64[:, 2] + 10 * X64[:, 0] + 100 * X64[:, 1], rel=1e-12)


def test_per_column_inputs_that_do_not_match_the_names_say_which(tmp_path: Path) -> None:
    model = per_column_model(tmp_path / "cols.onnx", ("visits", "tenure", "spnd"), [1, 1, 1])
    result = annotate(str(model), "--features", str(write_names(tmp_path)), "-o", "x.onnx")
    assert result.exit_code == 2
    assert "no input for feature(s) 'spend'; did you mean 'spnd'?" in result.output
    assert "The model's inputs are 'visits', 'tenure', 'spnd'" in result.output


# -- feature files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("names.yaml", "- tenure\n- spend\n- visits\n"),
        ("features.yaml", "- {name: tenure, min: 0}\n- {name: spend}\n- {name: visits}\n"),
        ("names.txt", "tenure\n\nspend  # dollars\nvisits\n"),
    ],
)
def test_every_feature_file_format_gives_the_names_in_order(
    tmp_path: Path, name: str, text: str
) -> None:
    model = write_linear_model(tmp_path / "m.onnx", 3)
    (tmp_path / name).write_text(text)
    out = tmp_path / "out.onnx"
    result = annotate(str(model), "--features", str(tmp_path / name), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads(metadata(out)[FEATURE_NAMES_KEY]) == list(NAMES)


def test_a_name_count_other_than_the_input_width_exits_2_naming_the_file(tmp_path: Path) -> None:
    model = write_linear_model(tmp_path / "m.onnx", 4)
    names = write_names(tmp_path)
    result = annotate(str(model), "--features", str(names), "-o", str(tmp_path / "out.onnx"))
    assert result.exit_code == 2
    assert f"error: {model}: model {model} input 'x' has shape " in result.output
    assert "the model takes 4 features" in result.output
    assert f"{names} lists 3 names" in result.output
    assert not (tmp_path / "out.onnx").exists()


def test_a_name_listed_twice_exits_2(tmp_path: Path) -> None:
    model = write_linear_model(tmp_path / "m.onnx", 3)
    names = write_names(tmp_path, ("tenure", "spend", "tenure"))
    result = annotate(str(model), "--features", str(names), "-o", str(tmp_path / "out.onnx"))
    assert result.exit_code == 2
    assert "feature 'tenure' is listed twice" in result.output


def test_self_test_rows_without_a_feature_column_exit_2_naming_it(tmp_path: Path) -> None:
    model = write_linear_model(tmp_path / "m.onnx", 3)
    rows = tmp_path / "rows.csv"
    rows.write_text("tenure,spnd,visits\n1,2,3\n")
    result = annotate(
        str(model),
        "--features",
        str(write_names(tmp_path)),
        "-o",
        str(tmp_path / "o.onnx"),
        "--self-test",
        str(rows),
    )
    assert result.exit_code == 2
    assert "rows.csv has no column 'spend'; did you mean 'spnd'?" in result.output


# -- the output file ---------------------------------------------------------------------------


def test_an_existing_output_is_refused_unless_force_and_other_metadata_is_kept(
    tmp_path: Path,
) -> None:
    model = write_linear_model(
        tmp_path / "m.onnx", 3, feature_names=["x1", "x2", "x3"], model_version="7"
    )
    before = model.read_bytes()
    names = write_names(tmp_path)
    in_place = annotate(str(model), "--features", str(names), "-o", str(model))
    assert in_place.exit_code == 2
    assert "-o names the model itself; pass --force to overwrite it" in in_place.output
    assert model.read_bytes() == before
    forced = annotate(str(model), "--features", str(names), "-o", str(model), "--force")
    assert forced.exit_code == 0, forced.output
    assert f"replaced the model's earlier {FEATURE_NAMES_KEY}" in forced.output
    written = metadata(model)
    assert json.loads(written[FEATURE_NAMES_KEY]) == list(NAMES)
    assert written["scoring_core.model_version"] == "7"
    assert not list(tmp_path.glob(".m.onnx*"))  # no temporary file left behind


def test_choosing_a_score_without_a_self_test_is_a_usage_error(tmp_path: Path) -> None:
    model = write_linear_model(tmp_path / "m.onnx", 3)
    names = write_names(tmp_path)
    result = annotate(str(model), "--features", str(names), "-o", "o.onnx", "--class", "1")
    assert result.exit_code == 2
    assert "need --self-test ROWS_FILE" in result.output


def test_the_shipped_model_stripped_of_its_names_gets_them_back_from_its_feature_file(
    tmp_path: Path,
) -> None:
    repo = Path(__file__).resolve().parents[1]
    features = repo / "models" / "calling_score_features.yaml"  # {name, min, max} entries
    proto = onnx.load(str(repo / "models" / "calling_score" / "1" / "model.onnx"))
    kept = [(p.key, p.value) for p in proto.metadata_props]
    del proto.metadata_props[:]
    for key, value in kept:
        if key not in (FEATURE_NAMES_KEY, SELF_TEST_KEY):
            proto.metadata_props.add(key=key, value=value)
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(proto.SerializeToString())
    sample = (repo / "examples" / "calling_sample.csv").read_text().splitlines()
    rows = tmp_path / "golden.csv"
    rows.write_text("\n".join(sample[:21]) + "\n")  # the header and 20 rows
    out = tmp_path / "annotated.onnx"
    result = annotate(
        str(bare), "--features", str(features), "-o", str(out), "--self-test", str(rows)
    )
    assert result.exit_code == 0, result.output
    assert "39 names (user_exploration_eagerness, " in result.output
    config = tmp_path / "scoring.yaml"
    config.write_text(
        f"features: {features}\noutput_range: [0, 1]\nchain:\n"
        "  - {name: neural, scorer: onnx, options: {model: annotated.onnx}}\n"
    )
    step = neural_step(config)
    assert step["status"] == "ready", step["reason"]
    assert step["details"]["feature_names_checked"] is True
    assert step["details"]["self_test"].startswith("passed (20 rows, ")
    assert step["details"]["model_version"] == "1.0.0"  # the other metadata is kept
