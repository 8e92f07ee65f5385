"""`scoring models list`, `promote` and `rollback`, and `scoring score --provenance`,
through the real command line on real ONNX models in a folder of versions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from cli_helpers import run_cli
from onnx_models import write_linear_model

from scoring_core import Engine
from scoring_core.models import HISTORY_FILE, read_history, read_labels

FEATURES = ("a", "b", "c")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A config serving `version: stable` of m/ (versions 1 and 2 good, 3 truncated)."""
    folder = tmp_path / "m"
    for version in (1, 2, 3):
        write_linear_model(
            folder / str(version) / "model.onnx",
            len(FEATURES),
            feature_names=FEATURES,
            bias=version / 10,
        )
    broken = folder / "3" / "model.onnx"
    broken.write_bytes(broken.read_bytes()[:40])
    (folder / "labels.yaml").write_text("labels:\n  stable: 1\n")
    config = tmp_path / "scoring.yaml"
    config.write_text(
        "features: [a, b, c]\n"
        "chain:\n"
        "  - name: neural\n"
        "    scorer: onnx\n"
        "    options: {model: m, version: stable}\n"
        "  - {name: formula, scorer: rules, options: {terms: [{feature: a}]}}\n"
    )
    return config


def test_models_list_shows_versions_checks_and_labels(project: Path) -> None:
    shown = run_cli("models", "list", str(project))
    listed = run_cli("models", "list", str(project), "--json")

    assert shown.exit_code == 0, shown.output
    assert "step neural:" in shown.output
    assert "version: stable -> 1; serves 1" in shown.output
    assert "FAILED: OnnxLoadError" in shown.output
    assert "not a valid ONNX model" in shown.output
    [step] = json.loads(listed.output)["steps"]
    assert step["serves"] == 1
    assert step["labels"] == {"stable": 1}
    by_version = {v["version"]: v for v in step["versions"]}
    assert [by_version[v]["checks_passed"] for v in (1, 2, 3)] == [True, True, False]
    assert by_version[1]["labels"] == ["stable"]
    assert len(by_version[2]["sha256"]) == 64


def test_promote_refuses_a_version_that_fails_and_moves_nothing(project: Path) -> None:
    done = run_cli("models", "promote", str(project), "neural", "stable", "3", "--by", "ana")

    assert done.exit_code == 1
    assert "refused: version 3 of step 'neural'" in done.output
    assert "stays at 1" in done.output
    assert "not a valid ONNX model" in done.output
    assert read_labels(project.parent / "m").labels == {"stable": 1}
    assert not (project.parent / "m" / HISTORY_FILE).exists()


def test_promote_then_rollback_restores_the_label_and_the_history_shows_both(
    project: Path,
) -> None:
    folder = project.parent / "m"
    promoted = run_cli("models", "promote", str(project), "neural", "stable", "2", "--by", "ana")
    assert promoted.exit_code == 0, promoted.output
    assert "promote: label stable of step neural: 1 -> 2 (by ana" in promoted.output
    with Engine.from_yaml(project) as engine:
        assert engine.score([0.5, 0.5, 0.5]).provenance.model_version == "2"  # type: ignore[union-attr]

    rolled = run_cli("models", "rollback", str(project), "neural", "stable", "--by", "bo")
    assert rolled.exit_code == 0, rolled.output
    assert "rollback: label stable of step neural: 2 -> 1 (by bo" in rolled.output
    assert read_labels(folder).labels == {"stable": 1}
    moves = [(m.action, m.from_version, m.to_version, m.by) for m in read_history(folder)]
    assert moves == [("promote", 1, 2, "ana"), ("rollback", 2, 1, "bo")]
    lines = [json.loads(line) for line in (folder / HISTORY_FILE).read_text().splitlines()]
    assert all({"ts", "step", "label", "from", "to", "by", "action"} <= set(x) for x in lines)

    again = run_cli("models", "rollback", str(project), "neural", "stable")
    assert again.exit_code == 1
    assert "no earlier version to go back to" in again.output


def test_rollback_refuses_a_previous_version_that_no_longer_loads(project: Path) -> None:
    folder = project.parent / "m"
    assert run_cli("models", "promote", str(project), "neural", "stable", "2").exit_code == 0
    (folder / "1" / "model.onnx").write_bytes(b"broken")
    done = run_cli("models", "rollback", str(project), "neural", "stable")
    assert done.exit_code == 1
    assert "version 1" in done.output
    assert "stays at 2" in done.output
    assert read_labels(folder).labels == {"stable": 2}


def test_a_label_set_in_the_config_is_not_moved_by_promote(project: Path) -> None:
    text = project.read_text().replace("version: stable}", "version: stable, labels: {stable: 2}}")
    project.write_text(text)
    done = run_cli("models", "promote", str(project), "neural", "stable", "1")
    assert done.exit_code == 1
    assert "is set in" in done.output
    assert "edit it there" in done.output


def test_promote_of_an_unknown_step_names_the_steps_that_have_versions(project: Path) -> None:
    done = run_cli("models", "promote", str(project), "formula", "stable", "1")
    assert done.exit_code == 2
    assert "step 'formula' has no folder of model versions (steps with one: neural)" in done.output


def test_score_with_provenance_writes_what_produced_each_score(project: Path) -> None:
    rows = project.parent / "in.csv"
    rows.write_text("a,b,c\n0.1,0.2,0.3\n0.5,0.5,0.5\n")
    out = project.parent / "out.csv"
    done = run_cli("score", str(rows), "-o", str(out), "--config", str(project), "--provenance")
    assert done.exit_code == 0, done.output
    with out.open(newline="") as file:
        scored = list(csv.DictReader(file))
    with Engine.from_yaml(project) as engine:
        expected = engine.score([0.5, 0.5, 0.5]).provenance
    assert expected is not None
    for row in scored:
        assert row["scorer"] == "neural"
        assert row["chain"] == "scoring"
        assert row["step_scorer"] == "onnx"
        assert row["model_version"] == "1"
        assert row["model_sha256"] == expected.model_sha256
        assert row["config_sha256"] == expected.config_sha256
    plain = run_cli("score", str(rows), "-o", str(out), "--config", str(project))
    assert plain.exit_code == 0
    assert "model_version" not in out.read_text().splitlines()[0]
