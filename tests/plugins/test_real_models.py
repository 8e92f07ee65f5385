"""Real exported models first in a chain, a formula after them: loaded, scored, and exact.

Every model of ``tests/exported_models.py`` (skl2onnx classifiers with and without ZipMap,
float64 models, a ColumnTransformer pipeline with one input per column, float32
regressors, LightGBM and XGBoost through onnxmltools) is served by an ``onnx`` step
followed by a ``rules`` formula. The checks, for each:

- ``scoring check`` is green: exit 0, the model's step ready;
- ``scoring score IN.csv -o OUT.csv`` scores every row with the model, and the scores
  equal ``InferenceSession.run`` on the same rows, fed in the type the model declares,
  with the same intra-op thread count. The CSV writer writes float64 scores with full
  precision (pyarrow writes the shortest text that reads back as the same double), so
  the comparison after the CSV round trip is exact;
- ``Engine.from_yaml(...).score_batch(rows)`` gives the same scores, exactly.

The features are written as a plain list of names, without ranges; a model that names
its inputs (one per column) is also served with ``features:`` left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest
import yaml
from cli_helpers import run_cli
from exported_models import EXPORTS, ExportCache, ExportedModel

import scoring_core
from scoring_core import ConfigError

INTRA_OP_THREADS = 1
MODEL_STEP = "model"
FALLBACK_STEP = "formula"
FALLBACK_SCORE = -1.0  # no model above scores this: a row scored by the fallback shows

PER_COLUMN_MODELS = ("column_transformer_pipeline",)
CASES = [
    *(pytest.param(name, True, id=name) for name in EXPORTS),
    *(pytest.param(name, False, id=f"{name}-features-left-out") for name in PER_COLUMN_MODELS),
]


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> ExportCache:
    """Each model is exported once per session, the first time a test asks for it."""
    return ExportCache(tmp_path_factory.mktemp("exported_models"))


def write_config(
    folder: Path,
    model: ExportedModel,
    *,
    list_features: bool = True,
    features: tuple[str, ...] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Path:
    """``folder/scoring.yaml``: the model's step (its ``output``/``class``/``column``
    options unless ``options`` replaces them), then a constant formula."""
    step_options = {
        "model": str(model.path),
        "intra_op_threads": INTRA_OP_THREADS,
        **(model.options if options is None else options),
    }
    config: dict[str, Any] = {}
    if list_features:
        config["features"] = list(model.feature_names if features is None else features)
    config["chain"] = [
        {"name": MODEL_STEP, "scorer": "onnx", "options": step_options},
        {
            "name": FALLBACK_STEP,
            "scorer": "rules",
            "options": {"terms": [{"constant": FALLBACK_SCORE}]},
        },
    ]
    path = folder / "scoring.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def write_rows(path: Path, names: tuple[str, ...], rows: np.ndarray) -> Path:
    """A CSV with an ``id`` column and one float64 column per feature, full precision."""
    columns = {"id": pa.array([f"row-{i}" for i in range(len(rows))])}
    columns |= {name: pa.array(rows[:, j]) for j, name in enumerate(names)}
    pcsv.write_csv(pa.table(columns), path)
    return path


def load_failure(config: Path) -> str:
    """The message that refuses the model step: a ConfigError at load, or the reason the
    step is unavailable (the contract asks for a clear message, either way)."""
    try:
        engine = scoring_core.Engine.from_yaml(config)
    except ConfigError as exc:
        refusal: ConfigError | None = exc
    else:
        refusal = None
    if refusal is not None:
        # about the model's step, not another part of the file (the features)
        key_path = refusal.key_path or "chain[0]"
        assert key_path.startswith("chain[0]"), refusal
        return str(refusal)
    with engine:
        step = engine.diagnostics()["steps"][0]
    assert step["status"] == "unavailable", f"the step loaded: {step}"
    return str(step["reason"])


# -- every model: check, CLI, Python API ----------------------------------------------------------


@pytest.mark.parametrize(("name", "list_features"), CASES)
def test_scoring_check_is_green(
    exported: ExportCache, tmp_path: Path, name: str, list_features: bool
) -> None:
    model = exported[name]
    config = write_config(tmp_path, model, list_features=list_features)
    result = run_cli("check", str(config))
    assert result.exit_code == 0, result.output
    diagnostics = json.loads(run_cli("check", str(config), "--json").output)
    step = diagnostics["steps"][0]
    assert (step["name"], step["status"], step["reason"]) == (MODEL_STEP, "ready", None)


@pytest.mark.parametrize(("name", "list_features"), CASES)
def test_cli_scores_every_row_with_the_model_equal_to_onnxruntime(
    exported: ExportCache, tmp_path: Path, name: str, list_features: bool
) -> None:
    model = exported[name]
    config = write_config(tmp_path, model, list_features=list_features)
    rows_in = write_rows(tmp_path / "in.csv", model.feature_names, model.rows)
    out = tmp_path / "out.csv"
    result = run_cli("score", str(rows_in), "-o", str(out), "--config", str(config))
    assert result.exit_code == 0, result.output
    scored = pcsv.read_csv(out).to_pydict()
    assert scored["id"] == [f"row-{i}" for i in range(len(model.rows))]
    assert set(scored["scorer"]) == {MODEL_STEP}, result.output
    expected = model.reference_scores(model.rows, intra_op_threads=INTRA_OP_THREADS)
    np.testing.assert_array_equal(np.array(scored["score"], dtype=np.float64), expected)


@pytest.mark.parametrize(("name", "list_features"), CASES)
def test_python_api_scores_equal_onnxruntime_exactly(
    exported: ExportCache, tmp_path: Path, name: str, list_features: bool
) -> None:
    model = exported[name]
    config = write_config(tmp_path, model, list_features=list_features)
    expected = model.reference_scores(model.rows, intra_op_threads=INTRA_OP_THREADS)
    with scoring_core.Engine.from_yaml(config) as engine:
        assert engine.feature_names == model.feature_names
        batch = engine.score_batch(model.rows)
        one = engine.score(model.rows[0])
    assert set(batch.scorers) == {MODEL_STEP}
    assert np.array_equal(batch.scores, expected), np.abs(batch.scores - expected).max()
    assert (one.scorer, one.score) == (MODEL_STEP, expected[0])


# -- inputs matched by name ------------------------------------------------------------------------


def test_per_column_inputs_are_matched_to_features_by_name_not_position(
    exported: ExportCache, tmp_path: Path
) -> None:
    model = exported["column_transformer_pipeline"]
    reordered = model.feature_names[::-1]
    config = write_config(tmp_path, model, features=reordered)
    expected = model.reference_scores(model.rows, intra_op_threads=INTRA_OP_THREADS)
    with scoring_core.Engine.from_yaml(config) as engine:
        assert engine.feature_names == reordered
        batch = engine.score_batch(model.rows[:, ::-1])
    assert set(batch.scorers) == {MODEL_STEP}
    assert np.array_equal(batch.scores, expected)


def test_per_column_inputs_missing_from_the_features_are_named(
    exported: ExportCache, tmp_path: Path
) -> None:
    model = exported["column_transformer_pipeline"]
    renamed = ("alcohol_percent", *model.feature_names[1:])
    message = load_failure(write_config(tmp_path, model, features=renamed))
    assert re.search(r"\balcohol\b(?!_)", message), message  # the input no feature feeds


# -- choosing the output and the class -------------------------------------------------------------


@pytest.mark.parametrize("name", ["logistic_regression_zipmap", "lightgbm_classifier_tensor"])
def test_several_outputs_without_output_option_is_a_config_error_listing_each(
    exported: ExportCache, tmp_path: Path, name: str
) -> None:
    model = exported[name]
    config = write_config(tmp_path, model, options={})
    with pytest.raises(ConfigError) as raised:
        scoring_core.Engine.from_yaml(config)
    message = str(raised.value)
    import onnxruntime as ort

    session = ort.InferenceSession(model.path, providers=["CPUExecutionProvider"])
    for output in session.get_outputs():
        assert output.name in message
        assert output.type in message
    assert "output:" in message
    result = run_cli("check", str(config))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("name", ["random_forest_zipmap", "random_forest_tensor"])
def test_a_class_the_model_does_not_have_is_refused_listing_its_labels(
    exported: ExportCache, tmp_path: Path, name: str
) -> None:
    model = exported[name]
    assert model.labels == (0, 1, 2)
    config = write_config(tmp_path, model, options={"output": model.output, "class": 7})
    message = load_failure(config)
    assert "7" in message
    assert "0, 1, 2" in message


def test_a_column_past_the_last_is_refused(exported: ExportCache, tmp_path: Path) -> None:
    model = exported["random_forest_column"]
    config = write_config(tmp_path, model, options={"output": model.output, "column": 3})
    message = load_failure(config)
    assert "column" in message
    assert re.search(r"\b3\b", message), message


# -- feature names ---------------------------------------------------------------------------------


def test_require_feature_names_refuses_a_model_that_carries_none(
    exported: ExportCache, tmp_path: Path
) -> None:
    model = exported["random_forest_regressor"]
    config = write_config(tmp_path, model, options={"require_feature_names": True})
    assert "does not name its features" in load_failure(config)


def test_require_feature_names_accepts_a_model_that_names_its_inputs(
    exported: ExportCache, tmp_path: Path
) -> None:
    model = exported["column_transformer_pipeline"]
    config = write_config(tmp_path, model, options={**model.options, "require_feature_names": True})
    with scoring_core.Engine.from_yaml(config) as engine:
        assert engine.diagnostics()["steps"][0]["status"] == "ready"
