"""Model versions in Triton's layout, labels, pins and provenance, with real ONNX models.

A model folder ``m/<N>/model.onnx``; version N of the test models scores the row mean
plus ``BIAS[N]``, so a score tells which version produced it, and its provenance must say
the same: across a reload, under 8 threads, for one row and for batches.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx_models import write_linear_model

import scoring_core
from scoring_core import Engine
from scoring_core.models import LABELS_FILE, write_labels

FEATURES = ("a", "b", "c")
BIAS = {1: 0.0, 2: 0.25, 3: 0.5, 4: 0.125}
ROWS = np.random.default_rng(3).uniform(0, 1, (64, len(FEATURES))).astype(np.float32)


def write_version(folder: Path, version: int, **kwargs: object) -> Path:
    """Version ``version`` of the model in ``folder``: the row mean plus BIAS[version]."""
    options = {"feature_names": FEATURES, "bias": BIAS[version], **kwargs}
    return write_linear_model(folder / str(version) / "model.onnx", len(FEATURES), **options)  # type: ignore[arg-type]


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def with_failing_self_test(path: Path) -> None:
    """Embed golden rows whose expected scores the model does not give."""
    model = onnx.load(path)
    entry = model.metadata_props.add()
    entry.key = "scoring_core.self_test"
    entry.value = json.dumps({"rows": [[0.5, 0.5, 0.5]], "expected": [0.9], "tolerance": 1e-6})
    onnx.save(model, path)


def config(folder: Path, **options: object) -> dict[str, object]:
    return {
        "name": "calling",
        "features": list(FEATURES),
        "chain": [
            {"name": "neural", "scorer": "onnx", "options": {"model": str(folder), **options}}
        ],
    }


def served_version(engine: Engine) -> int:
    return int(engine.diagnostics()["steps"][0]["details"]["version"])


def expected(rows: np.ndarray, version: int) -> np.ndarray:
    return rows.astype(np.float64).mean(axis=1) + BIAS[version]


# -- latest: the newest version that passes ----------------------------------------------------


def test_a_good_version_2_is_served_after_reload_with_its_provenance(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    write_version(folder, 1)
    (folder / "notes").mkdir()  # a folder whose name is not a number is ignored
    with Engine.from_config(config(folder)) as engine:
        first = engine.score(ROWS[0])
        write_version(folder, 2)
        outcome = engine.reload()
        second = engine.score(ROWS[0])
        batch = engine.score_batch(ROWS)
        steps = engine.diagnostics()["steps"]

    assert outcome == {"neural": "reloaded"}
    assert first.provenance is not None
    assert first.provenance.model_version == "1"
    assert second.provenance is not None
    assert second.provenance.model_version == "2"
    assert second.score == pytest.approx(expected(ROWS[:1], 2)[0], abs=1e-6)
    provenance = second.provenance
    assert (provenance.chain, provenance.step, provenance.scorer) == ("calling", "neural", "onnx")
    assert provenance.model_sha256 == steps[0]["details"]["sha256"]
    assert provenance.config_sha256 == engine.config_sha256
    assert batch.provenance == {"neural": provenance}
    assert steps[0]["provenance"] == provenance.as_dict()
    assert steps[0]["details"]["versions_available"] == [1, 2]
    assert steps[0]["details"]["version_failures"] == []


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (truncate, "not a valid ONNX model"),
        ("wrong features", "feature"),
        (with_failing_self_test, "failed its self-test"),
        ("pinned", "the file is not the pinned model"),
    ],
    ids=["truncated", "wrong-features", "failing-self-test", "sha256-pin-differs"],
)
def test_a_bad_version_3_leaves_2_serving_and_says_why(
    tmp_path: Path, damage: object, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "m"
    write_version(folder, 1)
    write_version(folder, 2)
    options: dict[str, object] = {}
    with Engine.from_config(config(folder, **options)) as engine:
        assert served_version(engine) == 2
        if damage == "wrong features":
            write_version(folder, 3, feature_names=("c", "b", "a"))
        elif damage == "pinned":
            good = write_version(folder, 3)
            write_labels(folder, {}, {3: "0" * 64})  # version 3 pinned to other bytes
            assert good.exists()
        else:
            damage(write_version(folder, 3))  # type: ignore[operator]
        caplog.clear()
        outcome = engine.reload()
        result = engine.score(ROWS[0])
        details = engine.diagnostics()["steps"][0]["details"]

    assert served_version_of(details) == 2
    said = "reloaded, serving version 2; newer version(s) failed: version 3: "
    assert outcome["neural"].startswith(said), outcome
    assert reason in outcome["neural"]
    assert result.provenance is not None
    assert result.provenance.model_version == "2"
    assert result.score == pytest.approx(expected(ROWS[:1], 2)[0], abs=1e-6)
    [failure] = details["version_failures"]
    assert failure["version"] == 3
    assert reason in failure["reason"]
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("version 3" in text and reason in text for text in logged), logged


def served_version_of(details: dict[str, object]) -> object:
    return details["version"]


def test_with_every_version_bad_the_step_is_unavailable_and_names_each(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    truncate(write_version(folder, 1))
    write_version(folder, 2, feature_names=("x", "y", "z"))
    with Engine.from_config(config(folder)) as engine:
        step = engine.diagnostics()["steps"][0]
    assert step["status"] == "unavailable"
    assert "version 2:" in step["reason"]
    assert "version 1:" in step["reason"]


def test_a_step_self_test_chooses_among_versions(tmp_path: Path) -> None:
    """`self_test:` of the step is a check of every version: latest serves one that passes."""
    folder = tmp_path / "m"
    write_version(folder, 1)
    write_version(folder, 2)
    data = config(folder)
    data["chain"][0]["self_test"] = {  # type: ignore[index]
        "rows": [[0.5, 0.5, 0.5]],
        "expected": [0.5],  # version 1's answer, not version 2's (0.75)
        "tolerance": 1e-5,
    }
    with Engine.from_config(data) as engine:
        details = engine.diagnostics()["steps"][0]["details"]
    assert details["version"] == 1
    assert "self_test failed" in details["version_failures"][0]["reason"]


# -- a number, a label, pins ----------------------------------------------------------------


def test_a_version_number_or_a_label_serves_that_version(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    for version in (1, 2, 3):
        write_version(folder, version)
    write_labels(folder, {"stable": 2, "canary": 3}, {})
    with Engine.from_config(config(folder, version=1)) as engine:
        assert served_version(engine) == 1
    with Engine.from_config(config(folder, version="stable")) as engine:
        assert served_version(engine) == 2
        assert engine.diagnostics()["steps"][0]["details"]["label"] == "stable"
    # labels in the YAML win over the labels file
    with Engine.from_config(config(folder, version="stable", labels={"stable": 3})) as engine:
        assert served_version(engine) == 3


def test_a_label_move_is_served_after_reload_and_a_bad_target_keeps_the_old(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "m"
    write_version(folder, 1)
    write_version(folder, 2)
    truncate(write_version(folder, 3))
    write_labels(folder, {"stable": 1}, {})
    with Engine.from_config(config(folder, version="stable")) as engine:
        write_labels(folder, {"stable": 2}, {})
        assert engine.reload() == {"neural": "reloaded"}
        assert served_version(engine) == 2
        write_labels(folder, {"stable": 3}, {})
        outcome = engine.reload()["neural"]
        assert outcome.startswith("kept old: ")
        assert "not a valid ONNX model" in outcome
        assert served_version(engine) == 2
        assert engine.score(ROWS[0]).provenance.model_version == "2"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"version": 7}, "has no folder 7/"),
        ({"version": "canary"}, "label 'canary' names no version"),
    ],
)
def test_an_unknown_version_or_label_says_what_there_is(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    folder = tmp_path / "m"
    write_version(folder, 1)
    with Engine.from_config(config(folder, **options)) as engine:
        step = engine.diagnostics()["steps"][0]
    assert step["status"] == "unavailable"
    assert message in step["reason"]


def test_a_pinned_version_whose_bytes_differ_is_refused_never_served(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    one = write_version(folder, 1)
    import hashlib

    pin = hashlib.sha256(one.read_bytes()).hexdigest()
    with Engine.from_config(config(folder, version=1, sha256={1: pin})) as engine:
        assert engine.diagnostics()["steps"][0]["details"]["sha256_pinned"] is True
        write_version(folder, 1, bias=0.5)  # other bytes under the same number
        outcome = engine.reload()["neural"]
        assert "pin" in outcome
        assert served_version(engine) == 1
        assert engine.score(ROWS[0]).score == pytest.approx(expected(ROWS[:1], 1)[0], abs=1e-6)


def test_versions_options_with_a_single_file_model_are_a_config_error(tmp_path: Path) -> None:
    model = write_version(tmp_path, 1)
    with pytest.raises(scoring_core.ConfigError, match="folder of versions"):
        Engine.from_config(config(model, version="stable"))


def test_the_watch_picks_up_a_new_version_folder_and_a_label_move(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    write_version(folder, 1)
    data = config(folder)
    data["watch"] = {"interval_s": 3600}  # checked by hand below
    with Engine.from_config(data) as engine:
        watcher = engine._watcher
        assert watcher is not None
        (folder / "2").mkdir()  # the folder first, the file later, as a copy would
        assert watcher.check_now() == ["neural"]
        assert served_version(engine) == 1
        write_version(folder, 2)
        assert watcher.check_now() == ["neural"]
        assert served_version(engine) == 2
        assert watcher.check_now() == []
    labelled = config(folder, version="stable")
    labelled["watch"] = {"interval_s": 3600}
    write_labels(folder, {"stable": 1}, {})
    with Engine.from_config(labelled) as engine:
        watcher = engine._watcher
        assert watcher is not None
        write_labels(folder, {"stable": 2}, {})
        assert (folder / LABELS_FILE).exists()
        assert watcher.check_now() == ["neural"]
        assert served_version(engine) == 2


# -- provenance is exact under threads --------------------------------------------------------


def test_scores_carry_the_version_that_produced_them_across_reloads_under_8_threads(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "m"
    write_version(folder, 1)
    write_version(folder, 2)
    write_labels(folder, {"stable": 1}, {})
    stop = threading.Event()
    problems: list[str] = []
    seen: set[str] = set()
    counted = [0]
    lock = threading.Lock()

    def score(engine: Engine, seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not stop.is_set():
            if rng.random() < 0.5:
                i = int(rng.integers(len(ROWS)))
                r = engine.score(ROWS[i])
                version = int(r.provenance.model_version)  # type: ignore[union-attr,arg-type]
                if abs(r.score - expected(ROWS[i : i + 1], version)[0]) > 1e-5:
                    problems.append(f"row {i}: {r.score} stamped version {version}")
                found = {str(version)}
            else:
                b = engine.score_batch(ROWS)
                [(_step, provenance)] = b.provenance.items()
                version = int(provenance.model_version)  # type: ignore[arg-type]
                if not np.allclose(b.scores, expected(ROWS, version), atol=1e-5):
                    problems.append(f"batch stamped version {version}")
                if b.provenance_of(0) is not provenance:
                    problems.append("provenance_of(0) differs from the step's")
                found = {str(version)}
            with lock:
                seen.update(found)
                counted[0] += 1

    with Engine.from_config(config(folder, version="stable")) as engine:
        threads = [threading.Thread(target=score, args=(engine, s)) for s in range(8)]
        for thread in threads:
            thread.start()
        try:
            for move in range(40):
                write_labels(folder, {"stable": 2 if move % 2 == 0 else 1}, {})
                assert engine.reload() == {"neural": "reloaded"}
        finally:
            stop.set()
            for thread in threads:
                thread.join()

    assert problems == []
    assert seen == {"1", "2"}
    assert counted[0] > 100


def test_provenance_of_a_default_and_of_a_step_without_a_model(tmp_path: Path) -> None:
    data = {
        "features": list(FEATURES),
        "chain": [
            {"name": "missing", "scorer": "onnx", "options": {"model": str(tmp_path / "none")}},
            {"name": "formula", "scorer": "rules", "options": {"terms": [{"feature": "a"}]}},
        ],
    }
    with Engine.from_config(data) as engine:
        r = engine.score(ROWS[0])
        b = engine.score_batch(ROWS)
    assert r.provenance is not None
    assert r.provenance.as_dict() == {
        "chain": "default",
        "step": "formula",
        "scorer": "rules",
        "model_version": None,
        "model_sha256": None,
        "config_sha256": engine.config_sha256,
    }
    assert set(b.provenance) == {"formula"}
    assert r.as_dict()["provenance"] == r.provenance.as_dict()


def test_features_left_out_come_from_the_newest_version_that_opens(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    write_version(folder, 1)
    truncate(write_version(folder, 2))
    data = config(folder)
    del data["features"]
    with Engine.from_config(data) as engine:
        assert engine.feature_names == FEATURES
        assert served_version(engine) == 1


def test_with_step_version_names_another_version_of_one_step(tmp_path: Path) -> None:
    """The building block of a canary: the same config, one step on another version."""
    from scoring_core.models import with_step_version

    folder = tmp_path / "m"
    write_version(folder, 1)
    write_version(folder, 2)
    write_labels(folder, {"stable": 1, "canary": 2}, {})
    base = config(folder, version="stable")
    canary = with_step_version(base, "neural", "canary")
    assert base["chain"][0]["options"]["version"] == "stable"  # type: ignore[index]
    with Engine.from_config(base) as stable, Engine.from_config(canary) as candidate:
        assert stable.score(ROWS[0]).provenance.model_version == "1"  # type: ignore[union-attr]
        assert candidate.score(ROWS[0]).provenance.model_version == "2"  # type: ignore[union-attr]
    with pytest.raises(scoring_core.ConfigError, match="no step 'other'"):
        with_step_version(base, "other", 2)
