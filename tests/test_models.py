"""Tests of the shipped calling-score model, its card, the sample data and models/train.py.

These use onnxruntime directly (not scoring_core), so they check the artefacts themselves.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
FEATURES_FILE = MODELS / "calling_score_features.yaml"
MODEL_FILE = MODELS / "calling_score" / "1" / "model.onnx"
CARD_FILE = MODELS / "calling_score" / "1" / "model.card.json"
SAMPLE_FILE = ROOT / "examples" / "calling_sample.csv"
FEATURE_NAMES_KEY = "scoring_core.feature_names"
FRESH_SEED = 20_240_611  # never used by the training command


def _load_train_module() -> ModuleType:
    """Import models/train.py (a script folder, not a package) under a private name."""
    spec = importlib.util.spec_from_file_location("calling_score_train", MODELS / "train.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


train = _load_train_module()


def feature_names_from_file() -> list[str]:
    """The feature order, read straight from the YAML (independently of train.py)."""
    entries = yaml.safe_load(FEATURES_FILE.read_text(encoding="utf-8"))
    return [entry["name"] for entry in entries]


def reference_formula(X: np.ndarray, names: list[str]) -> np.ndarray:
    """The formula from DESIGN.md, written apart from train.py and pairing dims by name."""
    col = {name: i for i, name in enumerate(names)}
    dims = [name.removeprefix("user_") for name in names[:12]]
    user = X[:, [col["user_" + d] for d in dims]].astype(np.float64)
    spot = X[:, [col["spot_" + d] for d in dims]].astype(np.float64)
    vibe = (1.0 - np.abs(user - spot)).mean(axis=1)
    context = X[:, 24:34].astype(np.float64).mean(axis=1)
    timing = X[:, 34:39].astype(np.float64).mean(axis=1)
    return np.asarray(np.clip(0.5 * vibe + 0.3 * context + 0.2 * timing, 0.0, 1.0))


def run_onnx(model: Path | bytes, X: np.ndarray) -> np.ndarray:
    """Run a model with onnxruntime on float32 rows; return the raw output."""
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: X.astype(np.float32)})
    return np.asarray(out)


def r2(pred: np.ndarray, target: np.ndarray) -> float:
    """Coefficient of determination of ``pred`` against ``target``."""
    return 1.0 - float(((pred - target) ** 2).sum() / ((target - target.mean()) ** 2).sum())


def metadata(model: onnx.ModelProto) -> dict[str, str]:
    """The model's metadata_props as a dict."""
    return {prop.key: prop.value for prop in model.metadata_props}


# ------------------------------------------------------------------- shipped model


def test_shipped_model_learns_the_formula_on_fresh_rows() -> None:
    names = feature_names_from_file()
    X, _ = train.generate(20_000, FRESH_SEED)
    target = reference_formula(X, names)
    pred = run_onnx(MODEL_FILE, X).reshape(-1).astype(np.float64)
    assert r2(pred, target) >= 0.9
    assert np.corrcoef(pred, target)[0, 1] >= 0.95


def test_shipped_model_feature_names_match_features_file() -> None:
    model = onnx.load(MODEL_FILE)
    assert json.loads(metadata(model)[FEATURE_NAMES_KEY]) == feature_names_from_file()


def test_card_sha256_matches_model_file() -> None:
    card = json.loads(CARD_FILE.read_text(encoding="utf-8"))
    assert card["sha256"] == hashlib.sha256(MODEL_FILE.read_bytes()).hexdigest()


def test_the_model_ships_in_the_versioned_layout_and_scoring_yaml_serves_stable() -> None:
    """models/calling_score/<N>/model.onnx; scoring.yaml serves `version: stable`, the label
    in labels.yaml, and pins that version to the file's sha256 (docs/models.md)."""
    config = yaml.safe_load((ROOT / "scoring.yaml").read_text(encoding="utf-8"))
    options = config["chain"][0]["options"]
    labels = yaml.safe_load((MODELS / "calling_score" / "labels.yaml").read_text("utf-8"))
    assert options["model"] == "models/calling_score"
    assert options["version"] == "stable"
    assert labels["labels"]["stable"] == 1
    assert options["sha256"][1] == hashlib.sha256(MODEL_FILE.read_bytes()).hexdigest()
    assert not list(MODELS.glob("*.onnx"))  # nothing left at the old path


def test_card_reports_held_out_metrics_against_the_formula() -> None:
    card = json.loads(CARD_FILE.read_text(encoding="utf-8"))
    assert card["features"]["names"] == feature_names_from_file()
    assert card["data"]["label_noise_std"] < card["data"]["formula_std"] / 5
    for part in ("test", "fresh"):
        assert card["metrics"][part]["r2"] >= 0.9
        assert {"pearson", "mae", "rmse"} <= card["metrics"][part].keys()
    assert card["metrics"]["max_abs_onnx_minus_sklearn_test"] < 1e-5


def test_shipped_model_output_stays_in_unit_interval() -> None:
    rng = np.random.default_rng(FRESH_SEED)
    X = np.vstack([np.zeros((1, 39)), np.ones((1, 39)), rng.uniform(0, 1, (500, 39))])
    out = run_onnx(MODEL_FILE, X)
    assert out.shape == (502, 1)
    assert np.all((out >= 0.0) & (out <= 1.0))


def test_sample_csv_has_id_then_features_in_order() -> None:
    with open(SAMPLE_FILE, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id", *feature_names_from_file()]
    assert len(rows) - 1 == 3000
    assert rows[1][0] == "row-00001"
    values = np.array([row[1:] for row in rows[1:]], dtype=np.float64)
    assert values.min() >= 0.0
    assert values.max() <= 1.0


# ---------------------------------------------------------------- training pipeline


def test_pipeline_reads_feature_order_from_file() -> None:
    assert train.load_feature_names(FEATURES_FILE) == feature_names_from_file()


def test_generator_and_formula_match_the_design() -> None:
    X, y = train.generate(20_000, FRESH_SEED)
    assert X.dtype == np.float32
    assert X.shape == (20_000, 39)
    np.testing.assert_allclose(y, reference_formula(X, feature_names_from_file()), atol=1e-12)
    assert 0.025 < y.std() < 0.04  # the small spread DESIGN.md warns about
    user, spot = X[:, :12].astype(np.float64), X[:, 12:24].astype(np.float64)
    assert abs(user.std() - np.sqrt(1 / 20)) < 0.01  # Beta(2, 2)
    assert 0.1 < np.abs(spot - user).mean() < 0.2  # spot = clip(user + N(0, 0.2))


class TinyRun(NamedTuple):
    """A small training run: the fitted model, its saved ONNX export, held-out rows."""

    model: Any  # train.TrainedModel
    path: Path
    X_test: np.ndarray


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """Train on 2000 rows (1800 to fit), export with metadata and save to a temp folder."""
    names = train.load_feature_names(FEATURES_FILE)
    X, y = train.generate(2000, seed=3)
    y_noisy = train.add_label_noise(y, 0.003, seed=3)
    model = train.train(X[:1800], y_noisy[:1800], seed=3)
    onx = train.export_onnx(model, names)
    train.set_metadata(onx, names, train.preprocessing_description(model), {"test": {}})
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save_model(onx, path)
    return TinyRun(model, path, X[1800:])


def test_tiny_export_agrees_with_sklearn(tiny_run: TinyRun) -> None:
    onnx_out = run_onnx(tiny_run.path, tiny_run.X_test).reshape(-1)
    sklearn_out = tiny_run.model.predict(tiny_run.X_test)
    np.testing.assert_allclose(onnx_out, sklearn_out, rtol=0, atol=1e-5)


def test_tiny_export_has_dynamic_batch(tiny_run: TinyRun) -> None:
    assert run_onnx(tiny_run.path, tiny_run.X_test[:1]).shape == (1, 1)
    assert run_onnx(tiny_run.path, tiny_run.X_test[:7]).shape == (7, 1)


def test_tiny_export_opset_and_metadata(tiny_run: TinyRun) -> None:
    model = onnx.load(tiny_run.path)
    onnx.checker.check_model(model)
    opset = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    assert opset["ai.onnx"] >= 17
    props = metadata(model)
    assert json.loads(props[FEATURE_NAMES_KEY]) == feature_names_from_file()
    assert props["scoring_core.model_version"]
    assert "standardised" in props["scoring_core.preprocessing"]
    assert "test" in json.loads(props["scoring_core.training_metrics"])


def test_main_writes_model_and_card(tmp_path: Path) -> None:
    argv = ["--seed", "5", "--rows", "2000", "--fresh-rows", "500", "--out", str(tmp_path)]
    assert train.main(argv) == 0
    model_path = tmp_path / "model.onnx"
    card = json.loads((tmp_path / "model.card.json").read_text(encoding="utf-8"))
    assert card["sha256"] == hashlib.sha256(model_path.read_bytes()).hexdigest()
    assert [card["split"][part] for part in ("train", "validation", "test")] == [1600, 200, 200]
    stored = json.loads(metadata(onnx.load(model_path))["scoring_core.training_metrics"])
    assert stored["test"] == card["metrics"]["test"]


def test_a_tiny_training_run_produces_a_model_the_engine_loads_and_serves(
    tmp_path: Path,
) -> None:
    from scoring_core import Engine

    assert (
        train.main(["--seed", "9", "--rows", "2000", "--fresh-rows", "200", "--out", str(tmp_path)])
        == 0
    )
    model_path = tmp_path / "model.onnx"
    config = {
        "features": str(FEATURES_FILE),
        "output_range": [0, 1],
        "chain": [
            {
                "name": "neural",
                "scorer": "onnx",
                "options": {
                    "model": str(model_path),
                    "sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
                },
            }
        ],
    }
    X, _ = train.generate(50, seed=11)
    with Engine.from_config(config) as engine:
        step = engine.diagnostics()["steps"][0]
        batch = engine.score_batch(X)
    assert step["status"] == "ready", step["reason"]
    assert step["details"]["feature_names_checked"] is True
    assert step["details"]["self_test"].startswith("passed")
    assert set(batch.scorers) == {"neural"}
    np.testing.assert_allclose(batch.scores, run_onnx(model_path, X).reshape(-1), atol=1e-6)


# -- reproducible regeneration (issue 14, point 2) ----------------------------------------------


def _run_pipeline(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """models/train.py as models/README.md runs it, on a small data set, in a process."""
    args = ["--seed", "7", "--rows", "3000", "--max-iter", "8", "--fresh-rows", "500"]
    return subprocess.run(
        [sys.executable, str(MODELS / "train.py"), *args, "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )


@pytest.mark.slow
def test_the_pipeline_run_twice_writes_the_same_bytes_and_prints_their_sha256(
    tmp_path: Path,
) -> None:
    first = _run_pipeline(tmp_path / "a")
    second = _run_pipeline(tmp_path / "b")
    a = (tmp_path / "a" / "model.onnx").read_bytes()
    b = (tmp_path / "b" / "model.onnx").read_bytes()
    assert a == b
    digest = hashlib.sha256(a).hexdigest()
    assert f"(sha256 {digest})" in first.stdout
    assert f"(sha256 {digest})" in second.stdout


@pytest.mark.slow
def test_update_config_rewrites_the_pin_so_scoring_check_serves_the_new_model(
    tmp_path: Path,
) -> None:
    out = tmp_path / "models"
    shutil.copytree(MODELS, out, ignore=shutil.ignore_patterns("*.onnx", "__pycache__"))
    config = tmp_path / "scoring.yaml"
    shutil.copy(ROOT / "scoring.yaml", config)
    before = config.read_text(encoding="utf-8")
    version = out / "calling_score" / "1"  # the version scoring.yaml's label points at
    done = _run_pipeline(version, "--update-config", str(config))
    digest = hashlib.sha256((version / "model.onnx").read_bytes()).hexdigest()
    assert f"step 'neural' now pins sha256 {digest}" in done.stdout
    after = config.read_text(encoding="utf-8")
    assert digest in after
    assert after.count("\n") == before.count("\n")  # comments and layout kept
    check = subprocess.run(
        [sys.executable, "-m", "scoring_core", "check", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SCORING_LOAD_PLUGINS": "onnx,rules"},
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "neural" in check.stdout
