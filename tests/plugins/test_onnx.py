"""The ``onnx`` scorer (plugins/scoring_onnx): options, load checks, scoring, lifecycle."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pydantic
import pytest
import scoring_onnx
import yaml
from onnx_models import (
    mean_weights,
    write_external_data_model,
    write_float16_input_model,
    write_int64_input_model,
    write_linear_model,
    write_nan_above_model,
    write_two_input_model,
    write_weights,
)
from scoring_onnx import OnnxLoadError, OnnxOptions, OnnxScorer, ScorerClosedError
from scoring_onnx.model_file import _text_field_spans, check_model_file

from scoring_core import ConfigError, ScorerContext
from scoring_core.testing import engine_for

REPO = Path(__file__).resolve().parents[2]
FEATURES_FILE = REPO / "models" / "calling_score_features.yaml"
SHIPPED_MODEL = REPO / "models" / "calling_score" / "1" / "model.onnx"
NAMES: tuple[str, ...] = tuple(entry["name"] for entry in yaml.safe_load(FEATURES_FILE.read_text()))
F = len(NAMES)
STEP_LOGGER = "scoring_core.step.neural"


def make_scorer(base_dir: Path, names: tuple[str, ...] = NAMES, **options: Any) -> OnnxScorer:
    """Validate ``options`` the way the engine does, then build the scorer."""
    validated = OnnxOptions.model_validate(options, context={"feature_names": names})
    ctx = ScorerContext(
        name="neural",
        scorer="onnx",
        options=validated,
        feature_names=names,
        base_dir=base_dir,
        logger=logging.getLogger(STEP_LOGGER),
    )
    return OnnxScorer(ctx)


def load_error(base_dir: Path, **options: Any) -> str:
    with pytest.raises(OnnxLoadError) as caught:
        make_scorer(base_dir, **options)
    return str(caught.value)


def rows(n: int, n_features: int = F, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, n_features), dtype=np.float32)


@pytest.fixture
def linear_model(tmp_path: Path) -> Path:
    return write_linear_model(tmp_path / "model.onnx", F, feature_names=NAMES, model_version="7")


def count_runs(scorer: Any) -> list[int]:
    """Count the scorer's onnxruntime run calls (rows per call) from now on."""
    calls: list[int] = []
    original = scorer._run

    def run(output_names: Any, feed: dict[str, np.ndarray], *args: Any) -> Any:
        calls.append(next(iter(feed.values())).shape[0])
        return original(output_names, feed, *args)

    scorer._run = run
    return calls


@pytest.fixture
def forbid_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if onnxruntime is asked to read a model."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("onnxruntime.InferenceSession must not be created")

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)


# -- the package and its plugin hook ------------------------------------------------------


def test_importing_scoring_onnx_does_not_import_onnxruntime_or_onnx() -> None:
    code = "import sys, scoring_onnx; print(sorted({'onnxruntime', 'onnx'} & set(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_plugin_registers_onnx_scorer_with_its_options() -> None:
    registered: list[tuple[str, Any, Any]] = []

    def register(name: str, factory: Any, *, options: Any = None) -> None:
        registered.append((name, factory, options))

    scoring_onnx.scoring_register_scorers(register=register)
    assert registered == [("onnx", OnnxScorer, OnnxOptions)]


# -- options ------------------------------------------------------------------------------


def validate(options: dict[str, Any]) -> OnnxOptions:
    return OnnxOptions.model_validate(options, context={"feature_names": NAMES})


def test_options_defaults() -> None:
    options = validate({"model": "m.onnx"})
    assert options.sha256 is None
    assert (options.intra_op_threads, options.inter_op_threads) == (0, 0)
    assert options.graph_optimization_level == "all"
    assert options.providers == ("CPUExecutionProvider",)
    assert options.strict_providers is False
    assert options.max_batch_rows == 2_048
    assert options.max_model_bytes == 512 * 1024 * 1024


def test_misspelt_option_is_a_validation_error_naming_it() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        validate({"model": "m.onnx", "modle": "m.onnx"})
    assert [e["loc"] for e in caught.value.errors()] == [("modle",)]
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_model_option_is_required() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        validate({"modle": "m.onnx"})
    assert ("model",) in [e["loc"] for e in caught.value.errors()]


@pytest.mark.parametrize(
    ("options", "loc"),
    [
        ({"sha256": "abc123"}, "sha256"),
        ({"sha256": "g" * 64}, "sha256"),
        ({"intra_op_threads": -1}, "intra_op_threads"),
        ({"inter_op_threads": True}, "inter_op_threads"),
        ({"intra_op_threads": 1.5}, "intra_op_threads"),
        ({"graph_optimization_level": "max"}, "graph_optimization_level"),
        ({"providers": []}, "providers"),
        ({"providers": "CPUExecutionProvider"}, "providers"),
        ({"providers": ["CPUExecutionProvider", "CPUExecutionProvider"]}, "providers"),
        ({"providers": [""]}, "providers"),
        ({"strict_providers": "yes"}, "strict_providers"),
        ({"max_batch_rows": 0}, "max_batch_rows"),
        ({"max_model_bytes": -1}, "max_model_bytes"),
        ({"model": ""}, "model"),
    ],
)
def test_bad_option_values_are_rejected_at_their_key(options: dict[str, Any], loc: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        validate({"model": "m.onnx", **options})
    assert [e["loc"][0] for e in caught.value.errors()] == [loc]


def test_options_accept_yaml_lists_paths_and_uppercase_sha256() -> None:
    options = validate(
        {"model": Path("m.onnx"), "providers": ["CPUExecutionProvider"], "sha256": "AB" * 32}
    )
    assert options.model == "m.onnx"
    assert options.providers == ("CPUExecutionProvider",)
    assert options.sha256 == "ab" * 32


def test_options_are_frozen() -> None:
    options = validate({"model": "m.onnx"})
    with pytest.raises(pydantic.ValidationError):
        options.max_batch_rows = 1  # type: ignore[misc]


# -- scoring ------------------------------------------------------------------------------


def test_linear_model_scores_match_numpy(tmp_path: Path) -> None:
    weights = np.linspace(-1.0, 1.0, F, dtype=np.float32)
    write_linear_model(tmp_path / "m.onnx", F, weights=weights, bias=0.25)
    scorer = make_scorer(tmp_path, model="m.onnx")
    X = rows(100)
    scores = scorer.score(X)
    assert scores.shape == (100,)
    expected = X.astype(np.float64) @ weights.astype(np.float64) + 0.25
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)


def test_zero_rows_return_empty_scores_without_calling_onnxruntime(linear_model: Path) -> None:
    scorer = make_scorer(linear_model.parent, model=linear_model.name)
    runs = count_runs(scorer)
    scores = scorer.score(np.empty((0, F), dtype=np.float32))
    assert scores.shape == (0,)
    assert runs == []


@pytest.mark.parametrize("output_rank", [1, 2])
def test_outputs_of_shape_n_and_n_by_1_give_one_score_per_row(
    tmp_path: Path, output_rank: int
) -> None:
    write_linear_model(tmp_path / "m.onnx", F, output_rank=output_rank)
    scorer = make_scorer(tmp_path, model="m.onnx")
    X = rows(5)
    scores = scorer.score(X)
    assert scores.shape == (5,)
    np.testing.assert_allclose(scores, X.mean(axis=1), rtol=1e-5)
    assert scorer.describe()["output"]["shape"] == ["batch", 1][:output_rank]


@pytest.mark.parametrize("output_rank", [1, 2])
def test_single_rows_from_many_threads_score_like_the_batch(
    tmp_path: Path, output_rank: int
) -> None:
    # One row goes through a per-thread IOBinding (bound input and output buffers): each
    # thread must get its own row's score, never a neighbour's or a stale one.
    write_linear_model(tmp_path / "m.onnx", F, output_rank=output_rank)
    scorer = make_scorer(tmp_path, model="m.onnx")
    X = rows(400, seed=5)
    expected = scorer.score(X)
    got = np.full(len(X), np.nan)

    def work(part: int) -> None:
        for i in range(part, len(X), 4):
            score = scorer.score(X[i : i + 1])
            assert score.shape == (1,)
            got[i] = score[0]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    np.testing.assert_array_equal(got, expected)


def test_a_single_row_returns_its_own_array_not_a_reused_buffer(linear_model: Path) -> None:
    scorer = make_scorer(linear_model.parent, model=linear_model.name)
    X = rows(2)
    first = scorer.score(X[:1])
    kept = first.copy()
    scorer.score(X[1:])
    np.testing.assert_array_equal(first, kept)


def test_a_cancelled_token_stops_a_single_row_and_a_batch(linear_model: Path) -> None:
    scorer = make_scorer(linear_model.parent, model=linear_model.name)
    X = rows(3)
    fresh = scorer.cancel_token()
    np.testing.assert_array_equal(scorer.score(X[:1], fresh), scorer.score(X[:1]))
    for batch in (X[:1], X):
        token = scorer.cancel_token()
        scorer.cancel(token)
        with pytest.raises(Exception, match=r"(?i)terminat"):
            scorer.score(batch, token)
    np.testing.assert_allclose(scorer.score(X[:1]), X[:1].mean(axis=1), rtol=1e-5)


def test_batches_split_by_max_batch_rows_give_identical_scores(linear_model: Path) -> None:
    X = rows(50)
    whole = make_scorer(linear_model.parent, model=linear_model.name).score(X)
    split = make_scorer(linear_model.parent, model=linear_model.name, max_batch_rows=7)
    runs = count_runs(split)
    np.testing.assert_array_equal(split.score(X), whole)
    assert runs == [7] * 7 + [1]


def test_model_with_batch_dimension_fixed_at_one_is_run_row_by_row(tmp_path: Path) -> None:
    write_linear_model(tmp_path / "m.onnx", F, batch_dim=1)
    scorer = make_scorer(tmp_path, model="m.onnx")
    runs = count_runs(scorer)
    X = rows(3)
    np.testing.assert_allclose(scorer.score(X), X.mean(axis=1), rtol=1e-5)
    assert runs == [1, 1, 1]


def test_model_with_batch_dimension_fixed_above_one_is_refused(tmp_path: Path) -> None:
    write_linear_model(tmp_path / "m.onnx", F, batch_dim=8)
    message = load_error(tmp_path, model="m.onnx")
    assert "batch dimension fixed at 8" in message
    assert "dynamic batch dimension" in message


def test_nan_model_returns_nan_only_for_rows_whose_first_feature_is_above_0_9(
    tmp_path: Path,
) -> None:
    write_nan_above_model(tmp_path / "m.onnx", F)
    scorer = make_scorer(tmp_path, model="m.onnx")
    X = rows(200)
    X[::4, 0] = 0.95
    scores = scorer.score(X)
    high = X[:, 0] > 0.9
    assert np.isnan(scores[high]).all()
    np.testing.assert_allclose(scores[~high], X[~high].mean(axis=1), rtol=1e-5)


def test_run_options_are_passed_to_onnxruntime(linear_model: Path) -> None:
    scorer = make_scorer(linear_model.parent, model=linear_model.name)
    run_options = onnxruntime.RunOptions()
    scores = scorer.score(rows(2), run_options=run_options)
    np.testing.assert_allclose(scores, rows(2).mean(axis=1), rtol=1e-5)
    run_options.terminate = True
    with pytest.raises(Exception, match="terminate"):
        scorer.score(rows(2), run_options=run_options)


def test_scores_from_many_threads_at_once_match_single_thread(linear_model: Path) -> None:
    scorer = make_scorer(linear_model.parent, model=linear_model.name)
    batches = [rows(1 + i % 5, seed=i) for i in range(64)]
    expected = [scorer.score(X) for X in batches]
    results: dict[int, np.ndarray] = {}

    def work(start: int) -> None:
        for i in range(start, len(batches), 8):
            results[i] = scorer.score(batches[i])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, scores in enumerate(expected):
        np.testing.assert_array_equal(results[i], scores)


# -- the model file -----------------------------------------------------------------------


def test_missing_model_file_is_refused_naming_the_resolved_path(tmp_path: Path) -> None:
    message = load_error(tmp_path, model="models/absent.onnx")
    assert f"model file not found: {tmp_path / 'models' / 'absent.onnx'}" in message
    assert "YAML file's folder" in message


def test_directory_as_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.onnx").mkdir()
    assert "is not a regular file" in load_error(tmp_path, model="dir.onnx")


def test_truncated_model_file_is_refused(linear_model: Path) -> None:
    data = linear_model.read_bytes()
    linear_model.write_bytes(data[: len(data) // 2])
    message = load_error(linear_model.parent, model=linear_model.name)
    assert f"model file {linear_model} is not a valid ONNX model" in message
    assert "truncated" in message


def test_random_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    message = load_error(tmp_path, model="m.onnx")
    assert f"model file {path} is not a valid ONNX model" in message


def test_empty_model_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"")
    assert "is empty (0 bytes)" in load_error(tmp_path, model="m.onnx")


def test_model_file_bigger_than_max_model_bytes_is_refused(
    linear_model: Path, forbid_sessions: None
) -> None:
    size = linear_model.stat().st_size
    message = load_error(linear_model.parent, model=linear_model.name, max_model_bytes=size - 1)
    assert f"is {size} bytes, more than max_model_bytes={size - 1}" in message


def test_sha256_mismatch_is_refused_before_parsing_and_names_both_hashes(
    linear_model: Path, forbid_sessions: None
) -> None:
    actual = hashlib.sha256(linear_model.read_bytes()).hexdigest()
    pinned = "0" * 64
    message = load_error(linear_model.parent, model=linear_model.name, sha256=pinned)
    assert actual in message
    assert pinned in message


def test_sha256_match_loads_and_is_reported(linear_model: Path) -> None:
    actual = hashlib.sha256(linear_model.read_bytes()).hexdigest()
    scorer = make_scorer(linear_model.parent, model=linear_model.name, sha256=actual.upper())
    description = scorer.describe()
    assert description["sha256"] == actual
    assert description["sha256_pinned"] is True


# -- the signature and the feature names --------------------------------------------------


def test_model_with_40_inputs_is_refused_naming_40_and_39(tmp_path: Path) -> None:
    write_linear_model(tmp_path / "m.onnx", 40)
    message = load_error(tmp_path, model="m.onnx")
    assert "takes 40 features, the engine has 39" in message


def test_feature_names_in_another_order_are_refused_naming_the_first_differing_position(
    tmp_path: Path,
) -> None:
    swapped = list(NAMES)
    swapped[5], swapped[6] = swapped[6], swapped[5]
    write_linear_model(tmp_path / "m.onnx", F, feature_names=swapped)
    message = load_error(tmp_path, model="m.onnx")
    assert (
        f"at position 5 its metadata (scoring_core.feature_names) has {NAMES[6]!r} "
        f"where the engine has {NAMES[5]!r}"
    ) in message


def test_feature_names_of_another_length_are_refused_naming_the_difference(
    tmp_path: Path,
) -> None:
    write_linear_model(tmp_path / "m.onnx", F, feature_names=NAMES[:-1])
    message = load_error(tmp_path, model="m.onnx")
    assert "lists 38 feature names" in message
    assert "engine has 39 features" in message
    assert f"the engine goes on with {NAMES[-1]!r} at position 38" in message


def test_feature_names_that_are_not_a_json_array_are_refused(tmp_path: Path) -> None:
    path = write_linear_model(tmp_path / "m.onnx", F)
    import onnx

    model = onnx.load(path)
    entry = model.metadata_props.add()
    entry.key, entry.value = "scoring_core.feature_names", "user_a, user_b"
    onnx.save(model, path)
    assert "is not valid JSON" in load_error(tmp_path, model="m.onnx")


def test_model_with_matching_feature_names_is_served_with_names_checked(
    linear_model: Path,
) -> None:
    description = make_scorer(linear_model.parent, model=linear_model.name).describe()
    assert description["feature_names_checked"] is True
    assert description["model_version"] == "7"
    assert description["metadata"]["scoring_core.model_version"] == "7"


def test_model_without_feature_names_is_served_checked_by_shape_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_linear_model(tmp_path / "m.onnx", F)
    with caplog.at_level(logging.WARNING, logger=STEP_LOGGER):
        scorer = make_scorer(tmp_path, model="m.onnx")
    assert scorer.describe()["feature_names_checked"] is False
    assert scorer.describe()["model_version"] is None
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "does not name its features" in warning.getMessage()
    assert "scoring models annotate" in warning.getMessage()
    assert scorer.score(rows(3)).shape == (3,)


def test_model_with_two_inputs_is_refused(tmp_path: Path) -> None:
    write_two_input_model(tmp_path / "m.onnx", F)
    message = load_error(tmp_path, model="m.onnx")
    assert "has 2 inputs; input 'a' has shape ['batch', 39]" in message
    assert "an input per feature must be [batch, 1] or [batch]" in message


def test_model_with_int64_input_is_fed_whole_numbers_and_refuses_fractions(
    tmp_path: Path,
) -> None:
    write_int64_input_model(tmp_path / "m.onnx", F)
    scorer = make_scorer(tmp_path, model="m.onnx")
    assert scorer.input_dtype == np.float64  # int64 values beyond 2**24 stay exact
    X = np.ones((2, F), dtype=np.float64)
    assert scorer.score(X).tolist() == pytest.approx([1.0, 1.0])
    X[1, 3] = 0.5
    with pytest.raises(ValueError, match="input 'x' is int64: values must be whole numbers"):
        scorer.score(X)


def test_model_with_float16_input_is_fed_float16_and_refuses_what_float16_cannot_hold(
    tmp_path: Path,
) -> None:
    write_float16_input_model(tmp_path / "m.onnx", F)
    scorer = make_scorer(tmp_path, model="m.onnx")
    assert scorer.input_dtype == np.float32
    X = np.full((2, F), 0.5, dtype=np.float32)
    assert scorer.score(X).tolist() == pytest.approx([0.5, 0.5])
    X[0, 0] = 1e6  # float16 tops out at 65504
    with pytest.raises(ValueError, match="input 'x' is float16: a value is too large for it"):
        scorer.score(X)


# -- external data ------------------------------------------------------------------------


def escaping_model(tmp_path: Path, how: str) -> Path:
    outside = write_weights(tmp_path / "outside" / "weights.bin", F)
    folder = tmp_path / "model"
    if how == "dotdot":
        location = "../outside/weights.bin"
    elif how == "absolute":
        location = str(outside)
    else:
        folder.mkdir()
        (folder / "weights.bin").symlink_to(outside)
        location = "weights.bin"
    return write_external_data_model(folder / "m.onnx", F, location=location)


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_external_data_escaping_the_model_folder_is_refused_before_onnxruntime_reads_it(
    tmp_path: Path, forbid_sessions: None, how: str
) -> None:
    path = escaping_model(tmp_path, how)
    message = load_error(path.parent, model=path.name)
    assert f"model {path} refers to external data outside its folder" in message
    assert "tensor 'w'" in message


def test_external_data_escape_is_still_refused_by_onnxruntime_without_the_onnx_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = escaping_model(tmp_path, "dotdot")
    monkeypatch.setitem(sys.modules, "onnx", None)
    message = load_error(path.parent, model=path.name)
    assert "could not load model file" in message
    assert "escapes model directory" in message


def test_external_data_inside_the_model_folder_loads_and_counts_toward_the_size(
    tmp_path: Path,
) -> None:
    write_weights(tmp_path / "weights.bin", F)
    path = write_external_data_model(tmp_path / "m.onnx", F, location="weights.bin")
    scorer = make_scorer(tmp_path, model="m.onnx")
    X = rows(4)
    np.testing.assert_allclose(scorer.score(X), X @ mean_weights(F), rtol=1e-5)
    assert scorer.describe()["external_data_bytes"] == 4 * F
    limit = path.stat().st_size + 4 * F - 1
    assert "bytes of external data" in load_error(tmp_path, model="m.onnx", max_model_bytes=limit)


def test_missing_external_data_file_is_refused(tmp_path: Path) -> None:
    write_external_data_model(tmp_path / "m.onnx", F, location="weights.bin")
    message = load_error(tmp_path, model="m.onnx")
    assert "external data file 'weights.bin', which does not exist" in message


def test_shipped_config_loads_its_model_without_importing_onnx() -> None:
    pytest.importorskip("onnx")  # without it, "not imported" would hold whatever the code did
    # The shipped model says "location" only in its feature names (metadata_props).
    assert b"location" in SHIPPED_MODEL.read_bytes()
    code = (
        "import sys\n"
        "from scoring_core import Engine\n"
        "with Engine.from_yaml('scoring.yaml') as engine:\n"
        "    status = engine.diagnostics()['steps'][0]['status']\n"
        "print(status, 'onnx' in sys.modules)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "SCORING_LOAD_PLUGINS": "onnx,rules",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["ready", "False"]


def test_escaping_external_data_is_refused_when_the_metadata_also_says_location(
    tmp_path: Path, forbid_sessions: None
) -> None:
    import onnx

    path = escaping_model(tmp_path, "dotdot")
    model = onnx.ModelProto()
    model.ParseFromString(path.read_bytes())
    entry = model.metadata_props.add()
    entry.key, entry.value = "scoring_core.feature_names", json.dumps(list(NAMES))
    model.doc_string = "weights: see the tensor's location"
    path.write_bytes(model.SerializeToString())
    assert "location_proximity" in NAMES
    message = load_error(path.parent, model=path.name)
    assert f"model {path} refers to external data outside its folder" in message
    assert "tensor 'w'" in message


def test_malformed_bytes_saying_location_are_parsed_with_onnx_and_refused(
    linear_model: Path,
) -> None:
    data = linear_model.read_bytes()
    cut = data.rfind(b"location") + len(b"location")  # inside metadata_props
    for broken in (data[:cut], data + b"\x0blocation"):  # truncated; wire type 3 after it
        linear_model.write_bytes(broken)
        with pytest.raises(OnnxLoadError) as caught:
            check_model_file(linear_model, sha256=None, max_bytes=10**9)
        assert f"model file {linear_model} is not a valid ONNX model" in str(caught.value)


def test_text_field_spans_reads_the_top_level_and_cannot_tell_malformed_bytes() -> None:
    def field(number: int, payload: bytes) -> bytes:
        return bytes([number << 3 | 2, len(payload)]) + payload

    message = (
        bytes([1 << 3 | 0, 0x88, 0x01])  # ir_version, a two-byte varint
        + field(2, b"producer")
        + field(7, b"graph with a location")
        + bytes([9 << 3 | 1] + [0] * 8)  # fixed64
        + bytes([10 << 3 | 5] + [0] * 4)  # fixed32
        + field(14, field(1, b"key") + field(2, b"location_proximity"))
    )
    producer = message.index(b"producer")
    metadata = message.index(b"key") - 2
    assert _text_field_spans(message) == [
        (producer, producer + len(b"producer")),
        (metadata, len(message)),
    ]
    assert _text_field_spans(bytes([1 << 3 | 0, 0x88])) is None  # truncated varint
    assert _text_field_spans(bytes([2 << 3 | 3]) + b"location") is None  # wire type 3
    assert _text_field_spans(field(2, b"location")[:-1]) is None  # length past the end


# -- providers ----------------------------------------------------------------------------

ABSENT_PROVIDER = "TensorrtExecutionProvider"


def test_strict_providers_refuses_a_provider_onnxruntime_does_not_have(
    linear_model: Path,
) -> None:
    assert ABSENT_PROVIDER not in onnxruntime.get_available_providers()
    message = load_error(
        linear_model.parent,
        model=linear_model.name,
        providers=[ABSENT_PROVIDER, "CPUExecutionProvider"],
        strict_providers=True,
    )
    assert ABSENT_PROVIDER in message
    for available in onnxruntime.get_available_providers():
        assert available in message


def test_non_strict_providers_load_and_report_the_dropped_provider(
    linear_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=STEP_LOGGER):
        scorer = make_scorer(
            linear_model.parent,
            model=linear_model.name,
            providers=[ABSENT_PROVIDER, "CPUExecutionProvider"],
        )
    description = scorer.describe()
    assert description["providers_requested"] == [ABSENT_PROVIDER, "CPUExecutionProvider"]
    assert description["providers_active"] == ["CPUExecutionProvider"]
    assert description["providers_dropped"] == [ABSENT_PROVIDER]
    assert any(ABSENT_PROVIDER in r.getMessage() for r in caplog.records)
    assert scorer.score(rows(2)).shape == (2,)


# -- onnxruntime missing, describe, close -------------------------------------------------


def test_missing_onnxruntime_is_refused_with_the_reinstall_command(
    linear_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    message = load_error(linear_model.parent, model=linear_model.name)
    assert "although scoring-core depends on it" in message
    assert "pip install --force-reinstall scoring-core" in message
    assert "scoring-core[" not in message


def test_describe_is_json_serialisable_and_names_input_and_output(linear_model: Path) -> None:
    description = make_scorer(linear_model.parent, model=linear_model.name).describe()
    assert json.loads(json.dumps(description)) == description
    assert description["path"] == str(linear_model)
    assert description["input"] == {"name": "x", "type": "tensor(float)", "shape": ["batch", F]}
    assert description["output"] == {"name": "y", "type": "tensor(float)", "shape": ["batch", 1]}
    assert description["providers_active"] == ["CPUExecutionProvider"]
    assert description["providers_dropped"] == []


def test_close_is_idempotent_and_score_after_close_raises(linear_model: Path) -> None:
    scorer = make_scorer(linear_model.parent, model=linear_model.name)
    scorer.close()
    scorer.close()
    assert scorer.describe()["closed"] is True
    with pytest.raises(ScorerClosedError, match="'neural' is closed"):
        scorer.score(rows(1))


# -- through the engine -------------------------------------------------------------------


def test_engine_serves_the_onnx_step_and_reports_its_details(
    linear_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCORING_LOAD_PLUGINS", "")  # the plugin comes in code below
    chain = [{"name": "neural", "scorer": "onnx", "options": {"model": linear_model.name}}]
    with engine_for(
        chain, plugins=[scoring_onnx], features=list(NAMES), base_dir=linear_model.parent
    ) as engine:
        X = rows(3)
        result = engine.score_batch(X)
        assert list(result.scorers) == ["neural"] * 3
        np.testing.assert_allclose(result.scores, X.mean(axis=1), rtol=1e-5)
        step = engine.diagnostics()["steps"][0]
        assert step["status"] == "ready"
        assert step["details"]["feature_names_checked"] is True


def test_engine_reports_a_refused_model_as_an_unavailable_step_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCORING_LOAD_PLUGINS", "")
    write_linear_model(tmp_path / "m.onnx", 40)
    chain: list[dict[str, Any]] = [
        {"name": "neural", "scorer": "onnx", "options": {"model": "m.onnx"}}
    ]
    with engine_for(
        chain, plugins=[scoring_onnx], features=list(NAMES), base_dir=tmp_path
    ) as engine:
        step = engine.diagnostics()["steps"][0]
        assert step["status"] == "unavailable"
        assert "takes 40 features, the engine has 39" in step["reason"]


def test_engine_reports_a_misspelt_onnx_option_as_a_config_error_at_its_key(
    linear_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCORING_LOAD_PLUGINS", "")
    options = {"model": linear_model.name, "max_batch_row": 10}
    chain = [{"name": "neural", "scorer": "onnx", "options": options}]
    with pytest.raises(ConfigError) as caught:
        engine_for(
            chain, plugins=[scoring_onnx], features=list(NAMES), base_dir=linear_model.parent
        )
    assert "max_batch_row" in str(caught.value)
