"""What the onnx scorer serves is exactly what it checked: no swap between the sha256
check and the load, for the model, its external data and custom-op libraries."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx_models import mean_weights, write_external_data_model, write_linear_model, write_weights
from scoring_onnx import OnnxLoadError, OnnxOptions, OnnxScorer

from scoring_core import ScorerContext

F = 4
NAMES = tuple(f"f{i}" for i in range(F))
ROW = np.full((1, F), 0.5, dtype=np.float32)


def build(base_dir: Path, **options: Any) -> OnnxScorer:
    validated = OnnxOptions.model_validate(options, context={"feature_names": NAMES})
    return OnnxScorer(
        ScorerContext(
            name="neural", scorer="onnx", options=validated, feature_names=NAMES, base_dir=base_dir
        )
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_model_swapped_while_it_loads_is_never_served_under_the_pinned_sha256(
    tmp_path: Path,
) -> None:
    """A writer flips the model file between the pinned model (scores 0.5) and another
    (scores 100.5) as fast as it can; every load either refuses the other file or serves
    the pinned one."""
    pinned = write_linear_model(tmp_path / "pinned.onnx", F)
    other = write_linear_model(tmp_path / "other.onnx", F, bias=100.0)
    pin = sha256(pinned)
    live = tmp_path / "model.onnx"
    live.write_bytes(pinned.read_bytes())
    stop = threading.Event()

    def swap() -> None:
        sources = [pinned.read_bytes(), other.read_bytes()]
        flip = 0
        while not stop.is_set():
            staging = tmp_path / f"staging-{flip}.onnx"
            staging.write_bytes(sources[flip % 2])
            os.replace(staging, live)
            flip += 1

    writer = threading.Thread(target=swap)
    writer.start()
    served = refused = 0
    refusals: list[str] = []
    try:
        for _ in range(300):
            try:
                scorer = build(tmp_path, model="model.onnx", sha256=pin)
            except OnnxLoadError as exc:
                refusals.append(str(exc))
                refused += 1
                continue
            assert scorer.score(ROW).tolist() == pytest.approx([0.5])
            assert scorer.describe()["sha256"] == pin
            served += 1
    finally:
        stop.set()
        writer.join()
    assert served > 0  # the race was run both ways
    assert refused > 0
    assert all("is not the pinned model" in reason for reason in refusals)


def test_a_model_with_external_data_loads_from_a_private_copy_that_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    folder = tmp_path / "model"
    write_weights(folder / "weights.bin", F)
    path = write_external_data_model(folder / "m.onnx", F, location="weights.bin")
    scorer = build(folder, model="m.onnx", sha256=sha256(path))
    # the weights are read at load: replacing them afterwards changes nothing served
    (folder / "weights.bin").write_bytes(np.full(F, 9.0, dtype=np.float32).tobytes())
    X = np.random.default_rng(1).random((3, F), dtype=np.float32)
    np.testing.assert_allclose(scorer.score(X), X @ mean_weights(F), rtol=1e-6)
    assert list(scratch.iterdir()) == []


def test_external_data_bigger_than_the_limit_when_copied_is_refused(tmp_path: Path) -> None:
    write_weights(tmp_path / "weights.bin", F)
    path = write_external_data_model(tmp_path / "m.onnx", F, location="weights.bin")
    limit = path.stat().st_size + 4 * F - 1
    with pytest.raises(OnnxLoadError, match="max_model_bytes"):
        build(tmp_path, model="m.onnx", max_model_bytes=limit)


def test_a_pinned_custom_op_library_is_loaded_from_the_bytes_that_matched(tmp_path: Path) -> None:
    extensions = pytest.importorskip("onnxruntime_extensions")
    library = Path(extensions.get_library_path())
    copy = tmp_path / library.name
    copy.write_bytes(library.read_bytes())
    write_linear_model(tmp_path / "m.onnx", F)
    scorer = build(
        tmp_path,
        model="m.onnx",
        custom_op_libraries=[{"path": copy.name, "sha256": sha256(copy)}],
    )
    assert scorer.score(ROW).tolist() == pytest.approx([0.5])
    copy.write_bytes(b"not the library")  # what was loaded was read before this
    assert scorer.score(ROW).tolist() == pytest.approx([0.5])
    with pytest.raises(OnnxLoadError, match="native code is loaded only when"):
        build(
            tmp_path,
            model="m.onnx",
            custom_op_libraries=[{"path": copy.name, "sha256": sha256(library)}],
        )
