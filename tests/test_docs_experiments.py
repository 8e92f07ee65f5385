"""docs/experiments.md says what the code does: its keys, its records, its worked example."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scoring_core.experiments.config import TOP_LEVEL_KEYS
from scoring_core.experiments.exposures import EXPOSURE_FIELDS

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / "docs" / "experiments.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", TEXT, flags=re.MULTILINE | re.DOTALL)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The files the worked example uses, laid out as in the repository."""
    for name in (
        "scoring.yaml",
        "models/calling_score_features.yaml",
        "models/calling_score/labels.yaml",
        "models/calling_score/1/model.onnx",
        "examples/calling_sample.csv",
        "examples/experiment/calling-ab.yaml",
        "examples/experiment/formula.yaml",
        "examples/experiment/simulate_outcomes.py",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    words = shlex.split(command)
    if words[0] == "scoring":
        words = [sys.executable, "-m", "scoring_core", *words[1:]]
    elif words[0] == "python":
        words = [sys.executable, *words[1:]]
    env = {**os.environ, "SCORING_LOAD_PLUGINS": "onnx,rules", "COLUMNS": "200"}
    return subprocess.run(
        words, cwd=cwd, capture_output=True, text=True, env=env, timeout=300, check=False
    )


def test_the_worked_example_runs_and_prints_the_report_shown(checkout: Path) -> None:
    (console,) = blocks("console")
    lines = console.splitlines()
    commands = [line[2:] for line in lines if line.startswith("$ ")]
    shown = lines[len(commands) :]
    assert len(commands) == 3
    for command in commands[:-1]:
        done = run(command, checkout)
        assert done.returncode == 0, done.stderr
    report = run(commands[-1], checkout)
    assert report.returncode == 0, report.stderr
    assert report.stdout.splitlines() == shown
    scored = (checkout / "scored.csv").read_text().splitlines()[0]
    assert scored == '"id","score","scorer","fallback_reason","variant"'


def test_the_python_example_runs(checkout: Path) -> None:
    source = next(b for b in blocks("python") if "Experiment.from_yaml" in b)
    done = subprocess.run(
        [sys.executable, "-c", source], cwd=checkout, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_the_experiment_file_shown_is_the_shipped_one_and_every_key_is_documented() -> None:
    shown = yaml.safe_load(blocks("yaml")[0])
    shipped = yaml.safe_load((ROOT / "examples/experiment/calling-ab.yaml").read_text())
    assert shown == shipped
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", TEXT, flags=re.MULTILINE))
    assert documented == set(TOP_LEVEL_KEYS)


def test_the_exposure_record_shown_has_every_field_in_order() -> None:
    record = json.loads(blocks("json")[0])
    assert tuple(record) == EXPOSURE_FIELDS
