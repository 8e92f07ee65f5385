"""The example third-party plugin (examples/scoring-logistic) works as a separate distribution.

The slow test builds both wheels, installs them into a fresh, empty virtualenv (the
dependencies come from the configured package index) and drives that virtualenv's own
`scoring` command and Python, the way a user would after `pip install`.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "scoring-logistic"
ROW = {"tenure_years": 1, "support_tickets_90d": 4, "monthly_spend": 30, "logins_30d": 2}


def expected_churn_score(row: dict[str, float]) -> float:
    """The logistic model of example/churn_weights.json, computed by hand."""
    weights = json.loads((EXAMPLE / "example" / "churn_weights.json").read_text())
    logit = weights["intercept"]
    for name, w, m, s in zip(
        weights["feature_names"],
        weights["coefficients"],
        weights["mean"],
        weights["std"],
        strict=True,
    ):
        logit += w * (row[name] - m) / s
    return 1 / (1 + math.exp(-logit))


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without our suite's plugin switches, as a user's shell would have it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCORING_", "PYTHON"))}
    return {**env, **extra}


def run(*args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_example_plugins_own_tests_pass() -> None:
    """Its tests use scoring_core.testing only; they run against this checkout's engine."""
    out = run(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        cwd=EXAMPLE,
        env=clean_env(PYTHONPATH=str(EXAMPLE / "src"), SCORING_LOAD_PLUGINS="rules"),
    )
    assert " passed" in out
    assert "failed" not in out


@pytest.mark.slow
def test_installed_into_a_fresh_virtualenv_it_is_listed_and_scores_from_yaml(
    tmp_path: Path,
) -> None:
    started = time.perf_counter()
    wheels = tmp_path / "wheels"
    # Build both wheels here; without build isolation when hatchling is at hand (faster).
    no_isolation = ["--no-build-isolation"] if importlib.util.find_spec("hatchling") else []
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    run(*pip, "wheel", "-q", "--no-deps", *no_isolation, "-w", wheels, ROOT, EXAMPLE)
    core_wheel = next(wheels.glob("scoring_core-*.whl"))
    plugin_wheel = next(wheels.glob("scoring_logistic-*.whl"))
    with zipfile.ZipFile(core_wheel) as archive:
        assert not [n for n in archive.namelist() if "scoring_logistic" in n], "example leaked"

    # A fresh virtualenv: nothing from this one, no site-packages. Our pip installs into it
    # (`pip --python`), which saves bootstrapping a pip inside it.
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, clear=True).create(env_dir)
    python, scoring = env_dir / "bin" / "python", env_dir / "bin" / "scoring"
    run(*pip, "--python", python, "install", "-q", core_wheel, plugin_wheel)
    installed = time.perf_counter()

    listed = json.loads(run(scoring, "plugins", "--json"))["plugins"]
    by_name = {plugin["name"]: plugin for plugin in listed}
    assert by_name["logistic"] == {
        "name": "logistic",
        "source": "entry point",
        "distribution": "scoring-logistic",
        "version": "0.1.0",
        "scorers": ["logistic"],
        "hooks": ["scoring_register_scorers"],
        "error": None,
    }
    assert {"onnx", "rules"} <= set(by_name)

    checked = run(scoring, "check", "--config", "scoring.yaml", cwd=EXAMPLE / "example")
    assert "churn_model  ready" in checked
    assert "scorer=logistic (logistic 0.1.0)" in checked

    # Score one row from the YAML chain with the virtualenv's Python, from a folder of the
    # user's; and once more with the weights file gone, to see the fallback say why.
    work = tmp_path / "work"
    work.mkdir()
    config = (EXAMPLE / "example" / "scoring.yaml").read_text()
    (work / "scoring.yaml").write_text(config)
    (work / "churn_weights.json").write_text(
        (EXAMPLE / "example" / "churn_weights.json").read_text()
    )
    (work / "broken.yaml").write_text(config.replace("churn_weights.json", "gone.json"))
    script = f"""
import json, scoring_core, scoring_logistic
row = {ROW!r}
out = {{"plugin_file": scoring_logistic.__file__, "core_file": scoring_core.__file__}}
for name in ("scoring.yaml", "broken.yaml"):
    with scoring_core.Engine.from_yaml(name) as engine:
        r = engine.score(row)
        out[name] = {{"score": r.score, "scorer": r.scorer,
                      "fallbacks": [[f.step, f.reason] for f in r.fallbacks]}}
print(json.dumps(out))
"""
    result = json.loads(run(python, "-c", script, cwd=work))
    finished = time.perf_counter()

    assert Path(result["plugin_file"]).is_relative_to(env_dir)
    assert Path(result["core_file"]).is_relative_to(env_dir)
    good = result["scoring.yaml"]
    assert good["scorer"] == "churn_model"
    assert good["fallbacks"] == []
    assert good["score"] == pytest.approx(expected_churn_score(ROW), rel=1e-6)
    broken = result["broken.yaml"]
    assert broken["scorer"] == "churn_rule"
    assert broken["score"] == pytest.approx(0.2 + 0.1 * ROW["support_tickets_90d"])
    [(step, reason)] = broken["fallbacks"]
    assert step == "churn_model"
    assert f"weights file {work / 'gone.json'} does not exist" in reason

    print(
        f"fresh virtualenv: build + install {installed - started:.1f} s, "
        f"plugins/check/score {finished - installed:.1f} s, total {finished - started:.1f} s"
    )
