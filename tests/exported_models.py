"""Real models, exported the way practitioners export them, for the onnx scorer's tests.

Each ``export_*`` function trains a small model on one of scikit-learn's bundled datasets
(breast cancer, iris, wine, diabetes: features far outside [0, 1]), exports it with its
usual exporter (skl2onnx, or onnxmltools for LightGBM and XGBoost) into ``folder`` and
returns an :class:`ExportedModel`: the file, the feature names in input order, the
dataset's rows, and for classifiers the output and class to serve. Nothing is added to
the exported file (no ``scoring_core.*`` metadata): the models are as their exporters
wrote them.

:data:`EXPORTS` names every export; :class:`ExportCache` exports each one once (exports
take a second or so each), for a session-scoped fixture.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["EXPORTS", "TARGET_OPSET", "ExportCache", "ExportedModel"]

# Opsets every onnxruntime the project supports runs (tests/onnx_models.py uses 17 too);
# onnxmltools 1.16 converts up to opset 15.
TARGET_OPSET = 17
TARGET_OPSETS = {"": TARGET_OPSET, "ai.onnx.ml": 3}
ONNXMLTOOLS_TARGET_OPSET = 15
SEED = 0


@dataclass(frozen=True)
class ExportedModel:
    """One exported model and what a test needs to score it and check the scores.

    ``options`` are the onnx step's options that pick the served score (``output``,
    ``class``, ``column``); empty for a model with one output. ``input_dtype`` is the
    element type the model declares; ``per_column`` models take one ``[N, 1]`` input per
    feature, named after it. ``labels`` are the classes of a classifier, in column order.
    """

    name: str
    path: Path
    feature_names: tuple[str, ...]
    rows: npt.NDArray[np.float64]
    input_dtype: type[np.floating[Any]] = np.float32
    per_column: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    labels: tuple[Any, ...] = ()

    @property
    def output(self) -> str | None:
        return self.options.get("output")

    def feed(self, rows: npt.NDArray[np.float64]) -> dict[str, npt.NDArray[Any]]:
        """``rows`` as the model declares its inputs: one matrix, or one column per input."""
        values = np.ascontiguousarray(rows, dtype=self.input_dtype)
        if self.per_column:
            return {
                name: np.ascontiguousarray(values[:, [j]])
                for j, name in enumerate(self.feature_names)
            }
        import onnxruntime as ort

        session = ort.InferenceSession(self.path, providers=["CPUExecutionProvider"])
        return {session.get_inputs()[0].name: values}

    def reference_scores(
        self, rows: npt.NDArray[np.float64], *, intra_op_threads: int
    ) -> npt.NDArray[np.float64]:
        """The scores of ``rows`` from a plain ``InferenceSession.run``: the chosen output,
        the chosen class's probability (a ZipMap's value for that class), as float64."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        session = ort.InferenceSession(
            self.path, sess_options=options, providers=["CPUExecutionProvider"]
        )
        outputs = [o.name for o in session.get_outputs()]
        name = self.output if self.output is not None else outputs[0]
        (result,) = session.run([name], self.feed(rows))
        if "class" in self.options:
            label = self.options["class"]
            if isinstance(result, list):  # ZipMap: a sequence of {label: probability}
                return np.array([row[label] for row in result], dtype=np.float64)
            result = np.asarray(result)[:, self.labels.index(label)]
        elif "column" in self.options:
            result = np.asarray(result)[:, self.options["column"]]
        return np.asarray(result, dtype=np.float64).reshape(len(rows))


def _names(raw: Any) -> tuple[str, ...]:
    """Dataset feature names as identifiers: 'mean radius' -> 'mean_radius'."""
    return tuple(re.sub(r"[^0-9A-Za-z]+", "_", str(n)).strip("_").lower() for n in raw)


def _dataset(
    loader: Callable[..., Any], **kwargs: Any
) -> tuple[npt.NDArray[np.float64], Any, tuple[str, ...]]:
    data = loader(**kwargs)
    return np.asarray(data.data, dtype=np.float64), data.target, _names(data.feature_names)


def _save(model: Any, folder: Path, name: str) -> Path:
    path = folder / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _labels(classifier: Any) -> tuple[Any, ...]:
    return tuple(c.item() if hasattr(c, "item") else c for c in classifier.classes_)


def _probabilities(zipmap: bool) -> str:
    """skl2onnx's name for a classifier's probabilities: a ZipMap, or a tensor without it."""
    return "output_probability" if zipmap else "probabilities"


# -- skl2onnx -------------------------------------------------------------------------------------


def _skl2onnx(model: Any, X: npt.NDArray[Any], **kwargs: Any) -> Any:
    from skl2onnx import to_onnx

    return to_onnx(model, X[:1], target_opset=TARGET_OPSETS, **kwargs)


def _logistic_regression(folder: Path, name: str, *, zipmap: bool) -> ExportedModel:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, names = _dataset(load_breast_cancer)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    pipeline.fit(X, y)
    options = None if zipmap else {"zipmap": False}
    onx = _skl2onnx(pipeline, X.astype(np.float32), options=options)
    return ExportedModel(
        name,
        _save(onx, folder, name),
        names,
        X,
        options={"output": _probabilities(zipmap), "class": 1},
        labels=_labels(pipeline),
    )


def export_logistic_regression_zipmap(folder: Path) -> ExportedModel:
    """skl2onnx's default classifier export: ``output_label`` and a ZipMap of probabilities."""
    return _logistic_regression(folder, "logistic_regression_zipmap", zipmap=True)


def export_logistic_regression_tensor(folder: Path) -> ExportedModel:
    """``options={'zipmap': False}``: the probabilities as an ``[N, 2]`` float tensor."""
    return _logistic_regression(folder, "logistic_regression_tensor", zipmap=False)


def _random_forest(folder: Path, name: str, *, zipmap: bool) -> ExportedModel:
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    X, y, names = _dataset(load_iris)
    forest = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=SEED).fit(X, y)
    options = None if zipmap else {"zipmap": False}
    onx = _skl2onnx(forest, X.astype(np.float32), options=options)
    return ExportedModel(
        name,
        _save(onx, folder, name),
        names,
        X,
        options={"output": _probabilities(zipmap), "class": 2},
        labels=_labels(forest),
    )


def export_random_forest_zipmap(folder: Path) -> ExportedModel:
    """A 3-class random forest (iris), default ZipMap output; class 2 is served."""
    return _random_forest(folder, "random_forest_zipmap", zipmap=True)


def export_random_forest_tensor(folder: Path) -> ExportedModel:
    """The same forest with ``zipmap: False``; class 2 is served."""
    return _random_forest(folder, "random_forest_tensor", zipmap=False)


def export_random_forest_column(folder: Path) -> ExportedModel:
    """The ``zipmap: False`` forest again, served by ``column: 1`` instead of a class."""
    model = _random_forest(folder, "random_forest_column", zipmap=False)
    return _replace(model, options={"output": "probabilities", "column": 1})


def export_linear_regression_double(folder: Path) -> ExportedModel:
    """A LinearRegression exported with ``DoubleTensorType``: a float64 input and output."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression

    X, y, names = _dataset(load_diabetes, scaled=False)
    model = LinearRegression().fit(X, y)
    onx = convert_sklearn(
        model,
        initial_types=[("X", DoubleTensorType([None, X.shape[1]]))],
        target_opset=TARGET_OPSETS,
    )
    name = "linear_regression_double"
    return ExportedModel(name, _save(onx, folder, name), names, X, input_dtype=np.float64)


def export_ridge_float64_data(folder: Path) -> ExportedModel:
    """A scaler + Ridge pipeline exported from float64 training data (``to_onnx(m, X[:1])``
    with X float64 gives a double input)."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, names = _dataset(load_diabetes, scaled=False)
    model = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(X, y)
    onx = _skl2onnx(model, X)
    name = "ridge_float64_data"
    return ExportedModel(name, _save(onx, folder, name), names, X, input_dtype=np.float64)


def export_random_forest_regressor(folder: Path) -> ExportedModel:
    """A float32 regressor: the case that worked before; its scores must stay exact."""
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor

    X, y, names = _dataset(load_diabetes, scaled=False)
    model = RandomForestRegressor(n_estimators=5, max_depth=5, random_state=SEED)
    model.fit(X.astype(np.float32), y)
    onx = _skl2onnx(model, X.astype(np.float32))
    name = "random_forest_regressor"
    return ExportedModel(name, _save(onx, folder, name), names, X)


def export_column_transformer_pipeline(folder: Path) -> ExportedModel:
    """A ColumnTransformer pipeline fitted on a DataFrame and exported from ``df[:1]``:
    one ``[N, 1]`` double input per column, named after the column."""
    import pandas as pd
    from skl2onnx import to_onnx
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    X, y, names = _dataset(load_wine)
    df = pd.DataFrame(X, columns=list(names))
    half = len(names) // 2
    pipeline = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("standard", StandardScaler(), list(names[:half])),
                        ("minmax", MinMaxScaler(), list(names[half:])),
                    ]
                ),
            ),
            ("classifier", LogisticRegression(max_iter=500)),
        ]
    ).fit(df, y)
    onx = to_onnx(pipeline, df[:1], target_opset=TARGET_OPSETS, options={"zipmap": False})
    name = "column_transformer_pipeline"
    return ExportedModel(
        name,
        _save(onx, folder, name),
        names,
        X,
        input_dtype=np.float64,
        per_column=True,
        options={"output": "probabilities", "class": 1},
        labels=_labels(pipeline),
    )


# -- onnxmltools: LightGBM and XGBoost ------------------------------------------------------------


def _float_input(n_features: int) -> list[tuple[str, Any]]:
    from onnxmltools.convert.common.data_types import FloatTensorType

    return [("input", FloatTensorType([None, n_features]))]


def _lightgbm_classifier(folder: Path, name: str, *, zipmap: bool) -> ExportedModel:
    import lightgbm
    from onnxmltools import convert_lightgbm
    from sklearn.datasets import load_breast_cancer

    X, y, names = _dataset(load_breast_cancer)
    model = lightgbm.LGBMClassifier(n_estimators=8, num_leaves=7, random_state=SEED, verbose=-1)
    model.fit(X, y)
    onx = convert_lightgbm(
        model,
        initial_types=_float_input(X.shape[1]),
        target_opset=ONNXMLTOOLS_TARGET_OPSET,
        zipmap=zipmap,
    )
    return ExportedModel(
        name,
        _save(onx, folder, name),
        names,
        X,
        options={"output": "probabilities", "class": 1},
        labels=_labels(model),
    )


def export_lightgbm_classifier_zipmap(folder: Path) -> ExportedModel:
    """A binary LGBMClassifier (breast cancer) through ``onnxmltools.convert_lightgbm``:
    ``label`` and ``probabilities`` as a ZipMap; class 1 is served."""
    return _lightgbm_classifier(folder, "lightgbm_classifier_zipmap", zipmap=True)


def export_lightgbm_classifier_tensor(folder: Path) -> ExportedModel:
    """The same with ``zipmap=False``: ``probabilities`` as an ``[N, 2]`` tensor."""
    return _lightgbm_classifier(folder, "lightgbm_classifier_tensor", zipmap=False)


def export_lightgbm_regressor(folder: Path) -> ExportedModel:
    import lightgbm
    from onnxmltools import convert_lightgbm
    from sklearn.datasets import load_diabetes

    X, y, names = _dataset(load_diabetes, scaled=False)
    model = lightgbm.LGBMRegressor(n_estimators=8, num_leaves=7, random_state=SEED, verbose=-1)
    model.fit(X, y)
    onx = convert_lightgbm(
        model, initial_types=_float_input(X.shape[1]), target_opset=ONNXMLTOOLS_TARGET_OPSET
    )
    name = "lightgbm_regressor"
    return ExportedModel(name, _save(onx, folder, name), names, X)


def export_xgboost_classifier(folder: Path) -> ExportedModel:
    """A 3-class XGBClassifier (wine) fitted on a plain numpy array (so its features are
    f0..fN, which ``convert_xgboost`` needs), served for class 2."""
    import xgboost
    from onnxmltools import convert_xgboost
    from sklearn.datasets import load_wine

    X, y, names = _dataset(load_wine)
    model = xgboost.XGBClassifier(n_estimators=4, max_depth=3, random_state=SEED, n_jobs=1)
    model.fit(X, y)
    onx = convert_xgboost(
        model, initial_types=_float_input(X.shape[1]), target_opset=ONNXMLTOOLS_TARGET_OPSET
    )
    name = "xgboost_classifier"
    return ExportedModel(
        name,
        _save(onx, folder, name),
        names,
        X,
        options={"output": "probabilities", "class": 2},
        labels=_labels(model),
    )


def export_xgboost_regressor(folder: Path) -> ExportedModel:
    import xgboost
    from onnxmltools import convert_xgboost
    from sklearn.datasets import load_diabetes

    X, y, names = _dataset(load_diabetes, scaled=False)
    model = xgboost.XGBRegressor(n_estimators=4, max_depth=3, random_state=SEED, n_jobs=1)
    model.fit(X, y)
    onx = convert_xgboost(
        model, initial_types=_float_input(X.shape[1]), target_opset=ONNXMLTOOLS_TARGET_OPSET
    )
    name = "xgboost_regressor"
    return ExportedModel(name, _save(onx, folder, name), names, X)


def _replace(model: ExportedModel, **changes: Any) -> ExportedModel:
    import dataclasses

    return dataclasses.replace(model, **changes)


EXPORTS: dict[str, Callable[[Path], ExportedModel]] = {
    "logistic_regression_zipmap": export_logistic_regression_zipmap,
    "logistic_regression_tensor": export_logistic_regression_tensor,
    "random_forest_zipmap": export_random_forest_zipmap,
    "random_forest_tensor": export_random_forest_tensor,
    "random_forest_column": export_random_forest_column,
    "linear_regression_double": export_linear_regression_double,
    "ridge_float64_data": export_ridge_float64_data,
    "random_forest_regressor": export_random_forest_regressor,
    "column_transformer_pipeline": export_column_transformer_pipeline,
    "lightgbm_classifier_zipmap": export_lightgbm_classifier_zipmap,
    "lightgbm_classifier_tensor": export_lightgbm_classifier_tensor,
    "lightgbm_regressor": export_lightgbm_regressor,
    "xgboost_classifier": export_xgboost_classifier,
    "xgboost_regressor": export_xgboost_regressor,
}


class ExportCache:
    """Exports each model of :data:`EXPORTS` into ``folder`` the first time it is asked for."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._models: dict[str, ExportedModel] = {}

    def __getitem__(self, name: str) -> ExportedModel:
        if name not in self._models:
            self._models[name] = EXPORTS[name](self.folder)
        return self._models[name]
