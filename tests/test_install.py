"""`pip install scoring-core` runs the main job, without extras.

The slow test builds this checkout's wheel, installs it without extras into a fresh
virtualenv (its dependencies come from the configured package index, as a user's would)
and runs that virtualenv's `scoring check` and `scoring score` on the shipped sample, then
`scoring init x && cd x && scoring check && scoring score sample.csv -o out.csv`.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

import scoring_core
from scoring_core.io import require_pyarrow

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "scoring.yaml"
SAMPLE = ROOT / "examples" / "calling_sample.csv"
SAMPLE_ROWS = 3000


def clean_env() -> dict[str, str]:
    """The environment without our suite's plugin switches, as a user's shell would have it."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SCORING_", "PYTHON"))}


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def run_ok(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = run(*args, cwd=cwd)
    assert done.returncode == 0, f"{args} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def step_statuses(check_output: str) -> dict[str, str]:
    """``scoring check``'s step lines, ``  neural   ready   scorer=...``: name -> status."""
    statuses = {}
    for line in check_output.splitlines():
        if line.startswith("  ") and len(line.split()) >= 2:
            name, status = line.split()[:2]
            statuses[name] = status
    return statuses


@pytest.mark.slow
def test_the_wheel_without_extras_checks_the_chain_ready_and_scores_the_sample_and_inits(
    tmp_path: Path,
) -> None:
    started = time.perf_counter()
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    # pip builds in the source tree; hatchling writes nothing there but the wheel to -w.
    run_ok(*pip, "wheel", "-q", "--no-deps", "-w", wheels, ROOT, cwd=tmp_path)
    [wheel] = wheels.glob("scoring_core-*.whl")
    built = time.perf_counter()

    env_dir = tmp_path / "venv"
    run_ok(sys.executable, "-m", "venv", env_dir, cwd=tmp_path)
    bin_dir = env_dir / "bin"
    run_ok(bin_dir / "python", "-m", "pip", "install", "-q", wheel, cwd=tmp_path)
    installed = time.perf_counter()

    # A folder of the user's, away from the checkout: the config names the model relative
    # to its own folder, so it works from anywhere.
    work = tmp_path / "work"
    work.mkdir()
    where = run_ok(
        bin_dir / "python", "-c", "import scoring_core; print(scoring_core.__file__)", cwd=work
    ).stdout.strip()
    assert Path(where).is_relative_to(env_dir)

    checked = run(bin_dir / "scoring", "check", "--config", CONFIG, cwd=work)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert step_statuses(checked.stdout) == {"neural": "ready", "formula": "ready"}, checked.stdout

    listed = run(bin_dir / "scoring", "models", "list", CONFIG, "--json", cwd=work)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    [neural] = json.loads(listed.stdout)["steps"]
    assert neural["serves"] == 1
    assert neural["labels"] == {"stable": 1}

    out = work / "out.csv"
    scored = run(bin_dir / "scoring", "score", SAMPLE, "-o", out, "--config", CONFIG, cwd=work)
    finished = time.perf_counter()
    assert scored.returncode == 0, scored.stdout + scored.stderr
    assert f"{SAMPLE_ROWS:,} scored" in scored.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == SAMPLE_ROWS + 1
    with out.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert {"score", "scorer"} <= set(rows[0])
    assert {row["scorer"] for row in rows} == {"neural"}  # onnxruntime ran every row
    assert all(0.0 <= float(row["score"]) <= 1.0 for row in rows)

    # `scoring init` writes a starter from the wheel's own data: it checks ready and scores.
    started_init = time.perf_counter()
    run_ok(bin_dir / "scoring", "init", "x", cwd=work)
    starter = work / "x"
    checked = run_ok(bin_dir / "scoring", "check", cwd=starter)
    assert step_statuses(checked.stdout) == {"neural": "ready", "formula": "ready"}, checked.stdout
    scored = run_ok(bin_dir / "scoring", "score", "sample.csv", "-o", "out.csv", cwd=starter)
    assert "20 scored" in scored.stderr
    with (starter / "out.csv").open(newline="") as file:
        assert {row["scorer"] for row in csv.DictReader(file)} == {"neural"}
    finished += time.perf_counter() - started_init

    print(
        f"fresh wheel: build {built - started:.1f} s, venv + install {installed - built:.1f} s, "
        f"check + score {finished - installed:.1f} s, total {finished - started:.1f} s"
    )


def test_the_former_extras_onnx_and_files_still_exist_and_hold_no_dependency() -> None:
    """`pip install 'scoring-core[onnx,files]'` keeps working; onnxruntime, onnx and pyarrow
    come without them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert extras["onnx"] == []
    assert extras["files"] == []
    base = {dep.split(">")[0].split("=")[0].split("[")[0] for dep in project["dependencies"]}
    assert {"onnxruntime", "onnx", "pyarrow"} <= base


def test_a_missing_pyarrow_is_reported_with_the_reinstall_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(scoring_core.ScoringError) as raised:
        require_pyarrow()
    message = str(raised.value)
    assert "although scoring-core depends on it" in message
    assert "pip install --force-reinstall scoring-core" in message
    assert "scoring-core[" not in message
