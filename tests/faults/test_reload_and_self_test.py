"""Reload, file watch and load-time self-tests: a bad new model never replaces a good one."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx_models import write_linear_model
from scorers import ConstantScorer

from scoring_core import Engine
from scoring_core.testing import feature_list, scorer_plugin

PLUGIN = scorer_plugin("constant", ConstantScorer)
NAMES = [f"f{i}" for i in range(5)]
ROW = [0.2, 0.4, 0.6, 0.8, 1.0]


def build(tmp_path: Path, model: Path, **extra: object) -> Engine:
    neural: dict[str, object] = {
        "name": "neural",
        "scorer": "onnx",
        "options": {"model": model.name},
    }
    neural.update(extra.pop("neural", {}))  # type: ignore[call-overload]
    config = {
        "features": feature_list(NAMES),
        "output_range": [0, 1],
        "chain": [neural, {"name": "formula", "scorer": "constant"}],
        **extra,
    }
    return Engine.from_config(config, base_dir=tmp_path, plugins=[PLUGIN])


def test_yaml_self_test_passing_keeps_the_step_ready(tmp_path: Path) -> None:
    model = write_linear_model(tmp_path / "m.onnx", 5, feature_names=NAMES)
    self_test = {"rows": [ROW, [0.0] * 5], "expected": [0.6, 0.0], "tolerance": 1e-6}
    with build(tmp_path, model, neural={"self_test": self_test}) as engine:
        assert engine.score(ROW).scorer == "neural"


def test_yaml_self_test_miss_makes_the_step_unavailable_and_shows_the_differences(
    tmp_path: Path,
) -> None:
    model = write_linear_model(tmp_path / "m.onnx", 5, feature_names=NAMES)
    self_test = {"rows": [ROW], "expected": [0.5], "tolerance": 1e-3}
    with build(tmp_path, model, neural={"self_test": self_test}) as engine:
        result = engine.score(ROW)
        step = engine.diagnostics()["steps"][0]
    assert result.scorer == "formula"
    assert step["status"] == "unavailable"
    assert "self_test failed for 1 of 1 golden rows" in step["reason"]
    assert "expected 0.5, got 0.6" in step["reason"]


def test_model_embedded_self_test_is_run_at_load(tmp_path: Path) -> None:
    path = write_linear_model(tmp_path / "m.onnx", 5, feature_names=NAMES)
    model = onnx.load(path)
    entry = model.metadata_props.add()
    entry.key = "scoring_core.self_test"
    entry.value = json.dumps({"rows": [ROW], "expected": [0.1], "tolerance": 1e-5})
    onnx.save(model, path)
    with build(tmp_path, path) as engine:
        step = engine.diagnostics()["steps"][0]
    assert step["status"] == "unavailable"
    assert "failed its self-test" in step["reason"]
    assert "expected 0.1, got 0.6" in step["reason"]


def test_shipped_model_passes_its_embedded_self_test() -> None:
    with Engine.from_yaml(Path(__file__).parents[2] / "scoring.yaml") as engine:
        step = engine.diagnostics()["steps"][0]
    assert step["status"] == "ready"
    assert step["details"]["self_test"].startswith("passed (8 rows")


def test_reload_picks_up_a_new_good_model(tmp_path: Path) -> None:
    model = write_linear_model(tmp_path / "m.onnx", 5, feature_names=NAMES)
    with build(tmp_path, model) as engine:
        assert engine.score(ROW).score == pytest.approx(0.6)
        write_linear_model(model, 5, feature_names=NAMES, bias=0.1)
        assert engine.reload("neural") == {"neural": "reloaded"}
        assert engine.score(ROW).score == pytest.approx(0.7)


def test_reload_with_a_model_of_other_features_keeps_the_old_one(tmp_path: Path) -> None:
    model = write_linear_model(tmp_path / "m.onnx", 5, feature_names=NAMES)
    with build(tmp_path, model) as engine:
        write_linear_model(model, 5, feature_names=list(reversed(NAMES)), bias=0.1)
        outcome = engine.reload()
        result = engine.score(ROW)
        step = engine.diagnostics()["steps"][0]
    assert outcome["neural"].startswith("kept old:")
    assert "position 0" in outcome["neural"]
    assert result.scorer == "neural"
    assert result.score == pytest.approx(0.6)
    assert step["status"] == "ready"
    assert "position 0" in step["last_reload_error"]


def test_watch_reloads_when_the_model_file_changes(tmp_path: Path) -> None:
    model = write_linear_model(tmp_path / "m.onnx", 5, feature_names=NAMES)
    with build(tmp_path, model, watch={"interval_s": 0.05}) as engine:
        staged = write_linear_model(tmp_path / "staged.onnx", 5, feature_names=NAMES, bias=0.2)
        shutil.move(staged, model)  # an atomic replace, as a deployment would do
        deadline = time.monotonic() + 5
        while engine.score(ROW).score < 0.7 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert engine.score(ROW).score == pytest.approx(0.8)
        # the watcher counts the reload just after swapping the scorer in: wait for it too
        while engine.diagnostics()["engine"]["watch"]["reloads"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)


def test_watch_keeps_the_old_model_when_the_new_file_is_garbage(tmp_path: Path) -> None:
    model = write_linear_model(tmp_path / "m.onnx", 5, feature_names=NAMES)
    with build(tmp_path, model, watch={"interval_s": 0.05}) as engine:
        model.write_bytes(b"\x00garbage" * 100)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if engine.diagnostics()["steps"][0].get("last_reload_error"):
                break
            time.sleep(0.02)
        step = engine.diagnostics()["steps"][0]
        result = engine.score(ROW)
    assert "not a valid ONNX model" in step["last_reload_error"]
    assert step["status"] == "ready"
    assert result.scorer == "neural"
    assert result.score == pytest.approx(0.6)


def test_custom_op_library_with_another_sha256_is_refused_before_loading(tmp_path: Path) -> None:
    model = write_linear_model(tmp_path / "m.onnx", 5, feature_names=NAMES)
    library = tmp_path / "libcustom.so"
    library.write_bytes(b"\x7fELF pretend native code")
    options = {
        "model": model.name,
        "custom_op_libraries": [{"path": "libcustom.so", "sha256": "0" * 64}],
    }
    with build(tmp_path, model, neural={"options": options}) as engine:
        step = engine.diagnostics()["steps"][0]
    assert step["status"] == "unavailable"
    assert "custom-op library" in step["reason"]
    assert "allow only sha256 " + "0" * 64 in step["reason"]


def test_custom_op_library_needs_a_sha256() -> None:
    from scoring_core import ConfigError

    config = {
        "features": feature_list(NAMES),
        "chain": [
            {
                "name": "neural",
                "scorer": "onnx",
                "options": {"model": "m.onnx", "custom_op_libraries": [{"path": "lib.so"}]},
            },
            {"name": "formula", "scorer": "constant"},
        ],
    }
    with pytest.raises(ConfigError, match=r"custom_op_libraries\[0\]\.sha256"):
        Engine.from_config(config, plugins=[PLUGIN])


def test_engine_scores_do_not_change_across_a_failed_reload_under_load(tmp_path: Path) -> None:
    model = write_linear_model(tmp_path / "m.onnx", 5, feature_names=NAMES)
    X = np.random.default_rng(0).random((200, 5)).astype(np.float32)
    with build(tmp_path, model) as engine:
        before = engine.score_batch(X).scores
        model.write_bytes(model.read_bytes()[:50])  # truncated on disk
        engine.reload()
        after = engine.score_batch(X)
    np.testing.assert_array_equal(before, after.scores)
    assert set(after.scorers) == {"neural"}
