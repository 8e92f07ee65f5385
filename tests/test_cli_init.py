"""`scoring init [DIR]`: a starter project that checks ready and scores its sample, never
written over files already there without --force. (The fresh-wheel test in
tests/test_install.py runs it from an installed wheel.)"""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import yaml
from cli_helpers import run_process

from scoring_core.cli.init import STARTER_FILES, starter_file

ROOT = Path(__file__).resolve().parent.parent


def test_init_writes_a_starter_that_checks_ready_and_scores_its_sample(tmp_path: Path) -> None:
    done = run_process(tmp_path, "init", "x")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == sorted(STARTER_FILES)
    assert "next: cd x && scoring check && scoring score sample.csv -o scored.csv" in done.stdout
    folder = tmp_path / "x"
    checked = _scoring(folder, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "neural   ready" in checked.stdout
    assert "formula  ready" in checked.stdout
    scored = _scoring(folder, "score", "sample.csv", "-o", "out.csv")
    assert scored.returncode == 0, scored.stderr
    with (folder / "out.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 20
    assert {row["scorer"] for row in rows} == {"neural"}


def test_init_refuses_to_overwrite_files_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "scoring.yaml").write_text("# mine\n")
    refused = run_process(tmp_path, "init")
    assert refused.returncode == 2
    assert "error: not overwriting scoring.yaml: pass --force to replace it" in refused.stderr
    assert (tmp_path / "scoring.yaml").read_text() == "# mine\n"
    assert not (tmp_path / "sample.csv").exists()  # nothing written at all
    forced = run_process(tmp_path, "init", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "A starter chain, written by `scoring init`" in (tmp_path / "scoring.yaml").read_text()


def test_the_starter_pins_the_model_it_ships_and_matches_the_default_chain() -> None:
    starter = yaml.safe_load(starter_file("scoring.yaml").read_text())
    default = yaml.safe_load((ROOT / "scoring.yaml").read_text())
    model = hashlib.sha256(starter_file("calling_score_model.onnx").read_bytes()).hexdigest()
    assert starter["chain"][0]["options"]["sha256"] == model
    assert default["chain"][0]["options"]["sha256"] == {1: model}  # version 1 of the folder
    assert starter["chain"][1] == default["chain"][1]  # the same formula


def _scoring(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m scoring_core *args`` with the installed first-party plugins, as a user's."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SCORING_")}
    return subprocess.run(
        [sys.executable, "-m", "scoring_core", *args],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
