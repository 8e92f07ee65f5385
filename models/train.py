"""Reproducible training pipeline for the calling-score model.

Regenerate the shipped model, its card and the sample data (from the repository root)::

    python models/train.py --seed 7 --rows 100000 --out models/calling_score/1/ \
        --sample 3000 --sample-seed 8 --sample-out examples/calling_sample.csv

``--out`` is a version folder of the versioned layout (``models/calling_score/<N>/``, see
docs/models.md): a new model goes into a new number, and a label is moved to it with
``scoring models promote``.

The feature order is read from ``models/calling_score_features.yaml`` (the single source
of truth); nothing here repeats the list. Rows are synthetic and drawn like the original
app's; the target is the app's formula plus a small amount of label noise. The model is a
scikit-learn ``StandardScaler`` + ``MLPRegressor`` (39 -> 128 -> 64 -> 1) trained on the
standardised target, converted with skl2onnx; the de-standardisation and a ``Clip(0, 1)``
are appended to the ONNX graph, so every bit of preprocessing travels inside the model file.

Needs the ``train`` extra of scoring-core (scikit-learn, skl2onnx, onnx); onnxruntime comes
with scoring-core itself.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import threadpoolctl
import yaml
from onnx import helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

MODELS_DIR = Path(__file__).resolve().parent
FEATURES_PATH = MODELS_DIR / "calling_score_features.yaml"
VERSIONS_DIR = MODELS_DIR / "calling_score"  # Triton's layout: <N>/model.onnx
MODEL_FILENAME = "model.onnx"
CARD_FILENAME = "model.card.json"

MODEL_VERSION = "1.0.0"
OPSET = 17
INPUT_NAME = "features"
OUTPUT_NAME = "score"
HIDDEN_LAYERS = (128, 64)

META_FEATURE_NAMES = "scoring_core.feature_names"
META_MODEL_VERSION = "scoring_core.model_version"
META_SELF_TEST = "scoring_core.self_test"
META_PREPROCESSING = "scoring_core.preprocessing"
META_TRAINING_METRICS = "scoring_core.training_metrics"

# Layout of the feature vector (see DESIGN.md): 12 user vibe dims, the same 12 dims for
# the spot, 10 context features, 5 timing features. Names come from the features file;
# only the group sizes live here, and check_layout() verifies the file agrees with them.
N_DIMS = 12
N_CONTEXT = 10
N_TIMING = 5
N_FEATURES = 2 * N_DIMS + N_CONTEXT + N_TIMING
USER = slice(0, N_DIMS)
SPOT = slice(N_DIMS, 2 * N_DIMS)
CONTEXT = slice(2 * N_DIMS, 2 * N_DIMS + N_CONTEXT)
TIMING = slice(2 * N_DIMS + N_CONTEXT, N_FEATURES)

SPOT_NOISE_STD = 0.2
DEFAULT_LABEL_NOISE = 0.003
GENERATOR_DESCRIPTION = (
    "numpy.random.default_rng(seed); user dims (features 0-11) ~ Beta(2,2); "
    "spot dims (12-23) = clip(user + N(0, 0.2), 0, 1) dimension by dimension; "
    "context (24-33) and timing (34-38) ~ Beta(2,2); features cast to float32"
)
FORMULA_DESCRIPTION = (
    "clip(0.5*vibe + 0.3*context + 0.2*timing, 0, 1); vibe = mean over the 12 dims of "
    "(1 - |user_d - spot_d|); context = mean of the 10 context features; "
    "timing = mean of the 5 timing features"
)


@dataclass(frozen=True)
class Split:
    """Row indices of the train, validation and test parts of a data set.

    ``train`` and ``validation`` are both given to ``fit``: the validation rows are the
    fraction MLPRegressor's early stopping holds out. ``test`` is never seen in training.
    """

    train: int
    validation: int
    test: int


@dataclass
class TrainedModel:
    """A fitted pipeline on the standardised target, with the constants to undo it."""

    pipeline: Pipeline
    y_mean: float
    y_std: float
    seconds: float

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Score rows the way the exported ONNX graph does: de-standardise, then clip."""
        raw = np.asarray(self.pipeline.predict(X), dtype=np.float64)
        return np.clip(raw * self.y_std + self.y_mean, 0.0, 1.0)


# --------------------------------------------------------------------------- features


def load_feature_names(path: Path | str = FEATURES_PATH) -> list[str]:
    """Read the ordered feature names from the features YAML file and check its layout."""
    with open(path, encoding="utf-8") as fh:
        entries = yaml.safe_load(fh)
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of {{name, min, max}} entries")
    names = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ValueError(f"{path}: entry {i} has no string 'name'")
        if (entry.get("min"), entry.get("max")) != (0, 1):
            raise ValueError(f"{path}: feature {entry['name']!r} must have range [0, 1]")
        names.append(entry["name"])
    check_layout(names)
    return names


def check_layout(names: Sequence[str]) -> None:
    """Fail unless the names follow the user/spot/context/timing layout the formula assumes.

    The 12 user names must start with ``user_`` and the 12 spot names must repeat the same
    dimensions with ``spot_``, in the same order; names must be unique.
    """
    if len(names) != N_FEATURES:
        raise ValueError(f"expected {N_FEATURES} features, got {len(names)}")
    if len(set(names)) != len(names):
        raise ValueError("feature names are not unique")
    for user, spot in zip(names[USER], names[SPOT], strict=True):
        if not user.startswith("user_") or spot != "spot_" + user.removeprefix("user_"):
            raise ValueError(f"user/spot dimensions do not pair up: {user!r} vs {spot!r}")


# ------------------------------------------------------------------------------- data


def formula(X: np.ndarray) -> np.ndarray:
    """The original app's calling score (the noise-free target), computed in float64."""
    X = np.asarray(X, dtype=np.float64)
    vibe = (1.0 - np.abs(X[:, USER] - X[:, SPOT])).mean(axis=1)
    context = X[:, CONTEXT].mean(axis=1)
    timing = X[:, TIMING].mean(axis=1)
    score: np.ndarray = np.clip(0.5 * vibe + 0.3 * context + 0.2 * timing, 0.0, 1.0)
    return score


def generate_features(rows: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``rows`` synthetic feature vectors like the original app's, as float32."""
    user = rng.beta(2.0, 2.0, size=(rows, N_DIMS))
    spot = np.clip(user + rng.normal(0.0, SPOT_NOISE_STD, size=(rows, N_DIMS)), 0.0, 1.0)
    rest = rng.beta(2.0, 2.0, size=(rows, N_CONTEXT + N_TIMING))
    return np.hstack([user, spot, rest]).astype(np.float32)


def generate(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(X, y_clean)``: float32 features and the formula evaluated on exactly them."""
    X = generate_features(rows, np.random.default_rng(seed))
    return X, formula(X)


def add_label_noise(y: np.ndarray, std: float, seed: int) -> np.ndarray:
    """Return ``y`` plus Gaussian noise from a stream separate from the feature draws."""
    rng = np.random.default_rng([seed, 1])
    return y + rng.normal(0.0, std, size=y.shape)


def split_sizes(rows: int, validation_fraction: float, test_fraction: float) -> Split:
    """Sizes of the three parts; the validation size is what MLPRegressor will hold out."""
    test = round(rows * test_fraction)
    fit_rows = rows - test
    # MLPRegressor passes validation_fraction (relative to the rows given to fit) to
    # train_test_split, which rounds the held-out count up.
    validation = int(np.ceil(fit_rows * validation_fraction / (1.0 - test_fraction)))
    return Split(train=fit_rows - validation, validation=validation, test=test)


def write_sample(path: Path | str, rows: int, seed: int, names: Sequence[str]) -> Path:
    """Write ``rows`` generated rows as CSV: an ``id`` column then the features, in order."""
    X, _ = generate(rows, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", *names])
        for i, row in enumerate(X, start=1):
            values = (np.format_float_positional(v, unique=True, trim="0") for v in row)
            writer.writerow([f"row-{i:05d}", *values])
    return path


# -------------------------------------------------------------------------- training


def train(
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    validation_fraction: float = 0.1 / 0.9,
    max_iter: int = 200,
) -> TrainedModel:
    """Fit StandardScaler + MLPRegressor on the standardised target ``(y - mean) / std``.

    Standardising the target keeps MLPRegressor's absolute ``tol`` meaningful: the raw
    target's variance is about 0.001, against which the default tol stops far too early.
    """
    y_mean, y_std = float(y.mean()), float(y.std())
    mlp = MLPRegressor(
        hidden_layer_sizes=HIDDEN_LAYERS,
        activation="relu",
        solver="adam",
        batch_size=200,
        learning_rate_init=1e-3,
        max_iter=max_iter,
        early_stopping=True,
        validation_fraction=validation_fraction,
        n_iter_no_change=10,
        random_state=seed,
    )
    pipeline = Pipeline([("scaler", StandardScaler()), ("mlp", mlp)])
    start = time.perf_counter()
    pipeline.fit(X, (y - y_mean) / y_std)
    return TrainedModel(pipeline, y_mean, y_std, time.perf_counter() - start)


def metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """R^2, Pearson correlation, MAE and RMSE of ``pred`` against ``target``."""
    pred = np.asarray(pred, dtype=np.float64).ravel()
    target = np.asarray(target, dtype=np.float64).ravel()
    err = pred - target
    ss_tot = float(((target - target.mean()) ** 2).sum())
    return {
        "r2": 1.0 - float((err**2).sum()) / ss_tot,
        "pearson": float(np.corrcoef(pred, target)[0, 1]),
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "target_std": float(target.std()),
        "rows": int(target.size),
    }


# ---------------------------------------------------------------------------- export


def _append_output_head(model: onnx.ModelProto, y_mean: float, y_std: float) -> None:
    """Replace the graph's output by ``Clip(raw * y_std + y_mean, 0, 1)`` named OUTPUT_NAME."""
    graph = model.graph
    (raw,) = graph.output
    constants = {
        "target_std": y_std,
        "target_mean": y_mean,
        "clip_min": 0.0,
        "clip_max": 1.0,
    }
    for name, value in constants.items():
        graph.initializer.append(numpy_helper.from_array(np.array(value, np.float32), name))
    graph.node.extend(
        [
            helper.make_node("Mul", [raw.name, "target_std"], ["score_scaled"], "destd_mul"),
            helper.make_node("Add", ["score_scaled", "target_mean"], ["score_raw"], "destd_add"),
            helper.make_node("Clip", ["score_raw", "clip_min", "clip_max"], [OUTPUT_NAME], "clip"),
        ]
    )
    graph.output.remove(raw)
    graph.output.append(
        helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT, ["batch", 1])
    )


def _set_opset(model: onnx.ModelProto, version: int) -> onnx.ModelProto:
    """Raise the default-domain opset to ``version`` (skl2onnx picks the lowest it needs)."""
    current = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if current < version:
        model = onnx.version_converter.convert_version(model, version)
    return model


def _drop_unused_domains(model: onnx.ModelProto) -> None:
    """Remove opset imports of domains no node uses (skl2onnx always adds ai.onnx.ml)."""
    used = {node.domain for node in model.graph.node} | {""}
    kept = [o for o in model.opset_import if o.domain in used or o.domain == "ai.onnx"]
    del model.opset_import[:]
    model.opset_import.extend(kept)


def preprocessing_description(model: TrainedModel) -> str:
    """The ``scoring_core.preprocessing`` metadata string."""
    return (
        "in-graph: features standardised with the training mean/std (Sub, Div); "
        f"MLP output de-standardised as y*{model.y_std:.6g}+{model.y_mean:.6g}; "
        "Clip to [0, 1]. Feed raw features in [0, 1], in scoring_core.feature_names order."
    )


def export_onnx(model: TrainedModel, feature_names: Sequence[str]) -> onnx.ModelProto:
    """Convert the fitted pipeline to ONNX with the output head; no metadata yet."""
    onx = convert_sklearn(
        model.pipeline,
        name="calling_score",
        initial_types=[(INPUT_NAME, FloatTensorType([None, len(feature_names)]))],
        target_opset={"": OPSET, "ai.onnx.ml": 3},
        options={StandardScaler: {"div": "div"}},
    )
    onx = _set_opset(onx, OPSET)
    onx.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    _append_output_head(onx, model.y_mean, model.y_std)
    _drop_unused_domains(onx)
    onx.graph.name = "calling_score"
    onx.producer_name = "scoring-core models/train.py"
    onx.producer_version = MODEL_VERSION
    onx.domain = "scoring_core"
    onx.model_version = int(MODEL_VERSION.split(".")[0])
    onx.doc_string = (
        "Calling score: MLP 39 -> 128 -> 64 -> 1 with output in [0, 1], trained to "
        "reproduce the formula " + FORMULA_DESCRIPTION
    )
    onnx.checker.check_model(onx, full_check=True)
    return onx


def golden_rows(onx: onnx.ModelProto, X_held_out: np.ndarray, rows: int = 8) -> dict[str, Any]:
    """Held-out rows and the exported model's own scores for them: the load-time self-test.

    The engine's onnx scorer scores these at every load and refuses the model when it
    answers differently (a damaged file, or an onnxruntime build that computes otherwise).
    """
    X = np.ascontiguousarray(X_held_out[:rows], dtype=np.float32)
    expected = onnx_predict(onx, X)
    return {
        "rows": [[float(v) for v in row] for row in X],
        "expected": [float(v) for v in expected],
        "tolerance": 1e-5,
    }


def set_metadata(
    onx: onnx.ModelProto,
    feature_names: Sequence[str],
    preprocessing: str,
    training_metrics: dict[str, Any],
    self_test: dict[str, Any] | None = None,
) -> None:
    """Write the scoring_core.* metadata_props the engine reads (replacing any present)."""
    props = {
        META_FEATURE_NAMES: json.dumps(list(feature_names)),
        META_MODEL_VERSION: MODEL_VERSION,
        META_PREPROCESSING: preprocessing,
        META_TRAINING_METRICS: json.dumps(training_metrics, sort_keys=True),
    }
    if self_test is not None:
        props[META_SELF_TEST] = json.dumps(self_test)
    del onx.metadata_props[:]
    helper.set_model_props(onx, props)


def onnx_predict(onx: onnx.ModelProto | bytes | str | Path, X: np.ndarray) -> np.ndarray:
    """Run an ONNX model (proto, bytes or path) with onnxruntime; returns shape (n,)."""
    if isinstance(onx, onnx.ModelProto):
        onx = onx.SerializeToString()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        onx if isinstance(onx, bytes) else str(onx), options, providers=["CPUExecutionProvider"]
    )
    (out,) = session.run(None, {session.get_inputs()[0].name: np.asarray(X, np.float32)})
    return np.asarray(out, dtype=np.float32).reshape(-1)


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shaped the model."""
    versions = {"python": platform.python_version()}
    for dist in ("numpy", "scikit-learn", "skl2onnx", "onnx", "onnxruntime", "PyYAML"):
        versions[dist] = importlib_metadata.version(dist)
    return versions


# ------------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7, help="data and training seed")
    parser.add_argument("--rows", type=int, default=100_000, help="rows to generate")
    parser.add_argument(
        "--label-noise",
        type=float,
        default=DEFAULT_LABEL_NOISE,
        help="std of Gaussian noise added to the formula labels",
    )
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=0.1,
        help="fraction of all rows held out for early stopping",
    )
    parser.add_argument("--max-iter", type=int, default=200, help="maximum training epochs")
    parser.add_argument(
        "--fresh-rows",
        type=int,
        default=20_000,
        help="rows drawn with --fresh-seed to re-check the written model",
    )
    parser.add_argument("--fresh-seed", type=int, default=None, help="default: seed + 1000")
    parser.add_argument("--features", type=Path, default=FEATURES_PATH)
    parser.add_argument(
        "--out",
        type=Path,
        default=VERSIONS_DIR / "1",
        help="the version folder to write model.onnx and model.card.json into "
        "(models/calling_score/<N>/)",
    )
    parser.add_argument("--skip-train", action="store_true", help="only write the sample")
    parser.add_argument(
        "--sample",
        type=int,
        default=0,
        metavar="N",
        help="also write N generated rows as CSV to --sample-out",
    )
    parser.add_argument("--sample-seed", type=int, default=8)
    parser.add_argument(
        "--update-config",
        type=Path,
        default=None,
        metavar="YAML",
        help="rewrite the sha256 pin of the onnx step that serves the written model in this "
        "config (e.g. scoring.yaml); without it the pin is only checked and reported",
    )
    parser.add_argument(
        "--sample-out", type=Path, default=MODELS_DIR.parent / "examples" / "calling_sample.csv"
    )
    return parser


@dataclass
class Evaluation:
    """Held-out results of an exported model, all against the noise-free formula."""

    test: dict[str, float]
    fresh: dict[str, float]
    fresh_seed: int
    max_abs_onnx_minus_sklearn: float

    def as_metadata(self) -> dict[str, Any]:
        """The JSON-able form stored under ``scoring_core.training_metrics``."""
        return {
            "target": "noise-free formula",
            "test": self.test,
            "fresh": {**self.fresh, "seed": self.fresh_seed},
        }


def evaluate(
    onx: onnx.ModelProto,
    model: TrainedModel,
    X_test: np.ndarray,
    y_test: np.ndarray,
    fresh_rows: int,
    fresh_seed: int,
) -> Evaluation:
    """Score the held-out test rows and freshly drawn rows with onnxruntime."""
    onnx_test = onnx_predict(onx, X_test)
    X_fresh, y_fresh = generate(fresh_rows, fresh_seed)
    return Evaluation(
        test=metrics(onnx_test, y_test),
        fresh=metrics(onnx_predict(onx, X_fresh), y_fresh),
        fresh_seed=fresh_seed,
        max_abs_onnx_minus_sklearn=float(np.abs(onnx_test - model.predict(X_test)).max()),
    )


def build_card(
    args: argparse.Namespace,
    names: Sequence[str],
    onx: onnx.ModelProto,
    model: TrainedModel,
    split: Split,
    formula_std: float,
    evaluation: Evaluation,
    sha256: str,
) -> dict[str, Any]:
    """The model card (written as JSON beside the model)."""
    mlp: MLPRegressor = model.pipeline.named_steps["mlp"]
    return {
        "model": MODEL_FILENAME,
        "model_version": MODEL_VERSION,
        "sha256": sha256,
        "onnx": {
            "opset": OPSET,
            "ir_version": onx.ir_version,
            "input": {"name": INPUT_NAME, "shape": ["batch", len(names)], "dtype": "float32"},
            "output": {
                "name": OUTPUT_NAME,
                "shape": ["batch", 1],
                "dtype": "float32",
                "range": [0.0, 1.0],
            },
            "metadata_keys": [p.key for p in onx.metadata_props],
        },
        "features": {"file": FEATURES_PATH.name, "count": len(names), "names": list(names)},
        "data": {
            "rows": args.rows,
            "seed": args.seed,
            "generator": GENERATOR_DESCRIPTION,
            "target": FORMULA_DESCRIPTION,
            "label_noise_std": args.label_noise,
            "formula_std": formula_std,
        },
        "split": {
            "train": split.train,
            "validation": split.validation,
            "test": split.test,
            "validation_use": "MLPRegressor early stopping",
            "test_use": "never seen in training; metrics below",
        },
        "architecture": {
            "pipeline": "StandardScaler -> MLPRegressor on (y - mean) / std",
            "layers": [len(names), *HIDDEN_LAYERS, 1],
            "activation": mlp.activation,
            "solver": mlp.solver,
            "batch_size": mlp.batch_size,
            "learning_rate_init": mlp.learning_rate_init,
            "early_stopping": {"n_iter_no_change": mlp.n_iter_no_change, "tol": mlp.tol},
            "output_head": "Mul(target std), Add(target mean), Clip(0, 1), in the ONNX graph",
            "target_mean": model.y_mean,
            "target_std": model.y_std,
        },
        "training": {
            "seconds": round(model.seconds, 2),
            "iterations": int(mlp.n_iter_),
            "best_validation_r2_noisy_standardised": float(mlp.best_validation_score_),
            "final_loss": float(mlp.loss_),
        },
        "metrics": {
            "target": "noise-free formula (not the noisy training labels)",
            "test": evaluation.test,
            "fresh": {**evaluation.fresh, "seed": evaluation.fresh_seed},
            "max_abs_onnx_minus_sklearn_test": evaluation.max_abs_onnx_minus_sklearn,
        },
        "preprocessing": preprocessing_description(model),
        "command": " ".join(["python models/train.py", *args.argv]),
        "libraries": library_versions(),
    }


def run_training(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """Generate, train, export, check and write the model and its card; return the card."""
    X, y_clean = generate(args.rows, args.seed)
    y_noisy = add_label_noise(y_clean, args.label_noise, args.seed)
    split = split_sizes(args.rows, args.validation_fraction, args.test_fraction)
    fit_rows = split.train + split.validation
    print(
        f"generated {args.rows} rows (seed {args.seed}); formula std {y_clean.std():.4f}, "
        f"label noise std {args.label_noise}; {split}"
    )

    val_in_fit = split.validation / fit_rows
    model = train(X[:fit_rows], y_noisy[:fit_rows], args.seed, val_in_fit, args.max_iter)
    mlp: MLPRegressor = model.pipeline.named_steps["mlp"]
    print(
        f"trained in {model.seconds:.1f}s, {mlp.n_iter_} epochs, "
        f"best validation R^2 (noisy labels) {mlp.best_validation_score_:.4f}"
    )

    onx = export_onnx(model, names)
    fresh_seed = args.seed + 1000 if args.fresh_seed is None else args.fresh_seed
    ev = evaluate(onx, model, X[fit_rows:], y_clean[fit_rows:], args.fresh_rows, fresh_seed)
    set_metadata(
        onx,
        names,
        preprocessing_description(model),
        ev.as_metadata(),
        golden_rows(onx, X[fit_rows:]),
    )

    args.out.mkdir(parents=True, exist_ok=True)
    model_path = args.out / MODEL_FILENAME
    onnx.save_model(onx, model_path)
    sha256 = sha256_file(model_path)
    card = build_card(args, names, onx, model, split, float(y_clean.std()), ev, sha256)
    card_path = args.out / CARD_FILENAME
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {model_path} (sha256 {sha256}) and {card_path}")
    report_pin(model_path, sha256, args.update_config)
    print(
        f"test  ({split.test} rows): R^2 {ev.test['r2']:.4f}, pearson {ev.test['pearson']:.4f}, "
        f"MAE {ev.test['mae']:.5f}, RMSE {ev.test['rmse']:.5f} "
        f"(formula std {ev.test['target_std']:.4f})"
    )
    print(
        f"fresh ({args.fresh_rows} rows, seed {fresh_seed}): R^2 {ev.fresh['r2']:.4f}, "
        f"pearson {ev.fresh['pearson']:.4f}; "
        f"max |onnx - sklearn| {ev.max_abs_onnx_minus_sklearn:.2e}"
    )
    return card


def pinned_steps(config: Path, model_path: Path) -> list[tuple[str, str | None]]:
    """(step name, pinned sha256 or None) of each onnx step of ``config`` serving ``model_path``."""
    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    found = []
    for step in data.get("chain") or []:
        options = step.get("options") or {}
        if step.get("scorer") != "onnx" or "model" not in options:
            continue
        served = Path(options["model"])
        served = served if served.is_absolute() else config.parent / served
        pin = options.get("sha256")
        if served.resolve() == model_path.resolve():
            found.append((str(step.get("name")), pin))
        elif served.is_dir() and model_path.resolve().parent.parent == served.resolve():
            # a folder of versions: the pin of this version (`sha256: {1: ...}`)
            version = model_path.resolve().parent.name
            if version.isdigit():
                pins = pin if isinstance(pin, dict) else {}
                found.append((str(step.get("name")), pins.get(int(version), pins.get(version))))
    return found


def report_pin(model_path: Path, sha256: str, update: Path | None) -> None:
    """Say whether the shipped config's sha256 pin matches the written model; with
    ``update``, rewrite the pin of that config in place (its text, comments kept)."""
    config = update if update is not None else MODELS_DIR.parent / "scoring.yaml"
    if not config.is_file():
        return
    for step, pinned in pinned_steps(config, model_path):
        if pinned is None:
            print(f"{config}: step {step!r} pins no sha256; nothing to update")
        elif pinned == sha256:
            print(f"{config}: step {step!r} pins this sha256 already; nothing to update")
        elif update is not None and pinned is not None:
            text = config.read_text(encoding="utf-8")
            config.write_text(text.replace(str(pinned), sha256, 1), encoding="utf-8")
            print(f"{config}: step {step!r} now pins sha256 {sha256} (was {pinned})")
        else:
            print(
                f"{config}: step {step!r} pins sha256 {pinned}, not this model's {sha256}, so "
                "`scoring check` would show it unavailable. Update `sha256:` there, or run "
                f"again with --update-config {config}"
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: train and write the model and card, and/or write the sample CSV."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    names = load_feature_names(args.features)
    if not args.skip_train:
        # One BLAS thread (and one onnxruntime thread, in onnx_predict): nothing in the
        # result can depend on how work is split between threads.
        with threadpoolctl.threadpool_limits(limits=1):
            run_training(args, names)
    if args.sample:
        path = write_sample(args.sample_out, args.sample, args.sample_seed, names)
        print(f"wrote {args.sample} sample rows (seed {args.sample_seed}) to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
