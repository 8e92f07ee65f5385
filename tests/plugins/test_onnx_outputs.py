"""The onnx scorer on models as skl2onnx writes them: chosen outputs, float64, per-column
inputs, features taken from the model, and the errors that say what to write."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from scoring_core import ConfigError, Engine

sklearn = pytest.importorskip("sklearn")
skl2onnx = pytest.importorskip("skl2onnx")

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

CANCER_X, CANCER_Y = load_breast_cancer(return_X_y=True)
CANCER = CANCER_X.astype(np.float32)
NAMES = [f"f{i}" for i in range(CANCER.shape[1])]


def save(model: Any, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("exported")
    lr = LogisticRegression(max_iter=5000).fit(CANCER, CANCER_Y)
    save(skl2onnx.to_onnx(lr, CANCER[:1]), folder / "zipmap.onnx")
    save(skl2onnx.to_onnx(lr, CANCER[:1], options={"zipmap": False}), folder / "tensor.onnx")
    named = LogisticRegression(max_iter=5000).fit(
        CANCER, np.where(CANCER_Y == 1, "benign", "malignant")
    )
    save(skl2onnx.to_onnx(named, CANCER[:1], options={"zipmap": False}), folder / "named.onnx")
    X, y = load_diabetes(return_X_y=True)
    save(skl2onnx.to_onnx(LinearRegression().fit(X, y), X[:1]), folder / "double.onnx")
    wine = load_wine(as_frame=True)
    pipeline = Pipeline(
        [
            ("scale", ColumnTransformer([("s", StandardScaler(), list(wine.data.columns))])),
            ("lr", LogisticRegression(max_iter=5000)),
        ]
    ).fit(wine.data, wine.target)
    save(
        skl2onnx.to_onnx(pipeline, wine.data[:1], options={"zipmap": False}),
        folder / "columns.onnx",
    )
    return folder


def engine(folder: Path, features: Any = NAMES, **options: Any) -> Engine:
    config: dict[str, Any] = {
        "chain": [
            {"name": "model", "scorer": "onnx", "options": {"intra_op_threads": 1, **options}}
        ]
    }
    if features is not None:
        config["features"] = features
    return Engine.from_config(config, base_dir=folder)


def raw_run(path: Path, output: str, feed: dict[str, Any]) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options).run([output], feed)[0]


def test_a_zipmap_classifier_serves_the_chosen_class_exactly_as_onnxruntime(models: Path) -> None:
    with engine(models, model="zipmap.onnx", output="output_probability", **{"class": 1}) as e:
        got = e.score_batch(CANCER).scores
        one = e.score(CANCER[7])
    raw = raw_run(models / "zipmap.onnx", "output_probability", {"X": CANCER})
    expected = np.array([row[1] for row in raw], dtype=np.float32)
    assert np.array_equal(got, expected)
    (alone,) = raw_run(models / "zipmap.onnx", "output_probability", {"X": CANCER[7:8]})
    assert one.score == np.float32(alone[1])  # one row, as onnxruntime gives one row
    assert 0.2 < float(expected.mean()) < 0.9  # a probability, not a label


def test_a_probability_matrix_by_class_or_by_column_gives_the_same_scores(models: Path) -> None:
    raw = raw_run(models / "tensor.onnx", "probabilities", {"X": CANCER})
    for pick in ({"class": 0}, {"column": 0}):
        with engine(models, model="tensor.onnx", output="probabilities", **pick) as e:
            assert np.array_equal(e.score_batch(CANCER).scores, raw[:, 0])
            assert e.diagnostics()["steps"][0]["details"]["output"]["column"] == 0


def test_text_class_labels_are_matched(models: Path) -> None:
    raw = raw_run(models / "named.onnx", "probabilities", {"X": CANCER})
    with engine(models, model="named.onnx", output="probabilities", **{"class": "malignant"}) as e:
        assert np.array_equal(e.score_batch(CANCER).scores, raw[:, 1])


def test_several_outputs_and_no_output_key_is_a_config_error_listing_them(models: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        engine(models, model="zipmap.onnx")
    message = str(caught.value)
    assert caught.value.key_path == "chain[0].options"
    assert "has 2 outputs" in message
    assert "output_label: tensor(int64)" in message
    assert "output_probability: seq(map(int64,tensor(float)))" in message
    assert "output: output_probability" in message


def test_a_class_the_model_does_not_have_names_the_labels_it_has(models: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"`class: 7` is not one of the model's class labels \[0, 1\]"
    ):
        engine(models, model="tensor.onnx", output="probabilities", **{"class": 7})
    with pytest.raises(ConfigError, match=r"has 2 columns .* `column: 2` is outside them"):
        engine(models, model="tensor.onnx", output="probabilities", column=2)
    with pytest.raises(ConfigError, match="Pick one with `class: LABEL` or `column: K`"):
        engine(models, model="tensor.onnx", output="probabilities")


def test_the_integer_label_is_served_only_when_named(models: Path) -> None:
    with engine(models, model="tensor.onnx", output="label") as e:
        labels = e.score_batch(CANCER).scores
    assert set(np.unique(labels).tolist()) == {0.0, 1.0}


def test_a_float64_model_gets_float64_rows_and_equals_onnxruntime(models: Path) -> None:
    X, _ = load_diabetes(return_X_y=True)
    names = [f"d{i}" for i in range(X.shape[1])]
    with engine(models, names, model="double.onnx") as e:
        assert e.row_dtype == np.float64
        assert e.prepare_batch(X).X.dtype == np.float64
        got = e.score_batch(X).scores
        one = e.score(dict(zip(names, X[3].tolist(), strict=True))).score
    raw = raw_run(models / "double.onnx", "variable", {"X": X}).ravel()
    assert np.array_equal(got, raw)
    assert one == raw[3]
    # in float32 the rows would have been rounded: the scores would differ
    rounded = raw_run(models / "double.onnx", "variable", {"X": X.astype(np.float32).astype(float)})
    assert not np.array_equal(rounded.ravel(), raw)


def test_ranges_are_checked_in_float64_for_a_float64_model(models: Path) -> None:
    X, _ = load_diabetes(return_X_y=True)
    names = [{"name": f"d{i}", "min": -1, "max": 1} for i in range(X.shape[1])]
    with engine(models, names, model="double.onnx") as e:
        prepared = e.prepare_batch([[1.0 + 1e-12] + [0.0] * 9, [1.0] + [0.0] * 9])
    assert prepared.rows.tolist() == [1]  # 1 + 1e-12 rounds to 1.0 in float32
    assert "outside [-1.0, 1.0]" in prepared.errors[0].reason


def test_per_column_inputs_are_matched_by_name_in_any_feature_order(models: Path) -> None:
    wine = load_wine(as_frame=True).data
    session = ort.InferenceSession(str(models / "columns.onnx"))
    feed = {
        i.name: wine[[c]].to_numpy()
        for i, c in zip(session.get_inputs(), wine.columns, strict=True)
    }
    raw = raw_run(models / "columns.onnx", "probabilities", feed)[:, 2]
    shuffled = list(reversed(wine.columns))
    with engine(
        models, shuffled, model="columns.onnx", output="probabilities", **{"class": 2}
    ) as e:
        assert e.feature_names == tuple(shuffled)
        details = e.diagnostics()["steps"][0]["details"]
        assert details["feature_names_checked"] is True
        assert np.array_equal(e.score_batch(wine).scores, raw)  # a DataFrame, by name


def test_features_left_out_are_taken_from_the_model_inputs(models: Path) -> None:
    with engine(models, None, model="columns.onnx", output="probabilities", column=0) as e:
        assert e.feature_names[:2] == ("alcohol", "malic_acid")
        # skl2onnx wrote 'od280/od315_of_diluted_wines' as an identifier
        assert "od280_od315_of_diluted_wines" in e.feature_names
        assert len(e.feature_names) == 13


def test_features_left_out_with_a_model_that_names_none_is_a_config_error(models: Path) -> None:
    with pytest.raises(ConfigError, match="`features:` is left out") as caught:
        engine(models, None, model="tensor.onnx", output="probabilities", column=1)
    assert "does not name its features" in str(caught.value)
    assert "scoring models annotate" in str(caught.value)


def test_a_per_column_model_with_a_missing_feature_names_it(models: Path) -> None:
    wine = list(load_wine(as_frame=True).data.columns)
    names = [*wine[:-1], "prolin"]
    with Engine.from_config(
        {
            "features": names,
            "chain": [
                {
                    "name": "model",
                    "scorer": "onnx",
                    "options": {"model": "columns.onnx", "output": "probabilities", "column": 0},
                }
            ],
            "on_exhausted": {"score": 0},
        },
        base_dir=models,
    ) as e:
        reason = e.diagnostics()["steps"][0]["reason"]
    assert "no input for feature(s) 'prolin'" in reason
    assert "input(s) 'proline' match no feature" in reason


def test_a_model_without_names_warns_and_require_feature_names_refuses_it(
    models: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING),
        engine(models, model="tensor.onnx", output="probabilities", column=1) as e,
    ):
        assert e.diagnostics()["steps"][0]["details"]["feature_names_checked"] is False
    assert any("does not name its features" in r.getMessage() for r in caplog.records)
    with engine(
        models,
        model="tensor.onnx",
        output="probabilities",
        column=1,
        require_feature_names=True,
    ) as e:
        step = e.diagnostics()["steps"][0]
    assert step["status"] == "unavailable"
    assert "require_feature_names: true" in step["reason"]


def test_plain_string_features_are_names() -> None:
    with Engine.from_config(
        {
            "features": ["a", "b"],
            "chain": [
                {
                    "name": "f",
                    "scorer": "rules",
                    "options": {
                        "terms": [{"feature": "a", "weight": 1}, {"feature": "b", "weight": 2}]
                    },
                }
            ],
        }
    ) as e:
        assert e.feature_names == ("a", "b")
        assert e.score({"a": 10, "b": 100}).score == 210


def test_class_and_column_together_are_refused(models: Path) -> None:
    with pytest.raises(ConfigError, match="`class:` and `column:` both pick a column"):
        engine(models, model="tensor.onnx", output="probabilities", column=1, **{"class": 1})
