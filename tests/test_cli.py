"""`scoring check` and `scoring plugins`, run through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import MEAN_CLASS, PLUGIN_FILE, plugin_source, run_cli, write_project

BROKEN_CLASS = """
class Broken:
    def __init__(self, ctx):
        raise FileNotFoundError("models/missing.onnx does not exist")
"""
LOCAL_PLUGIN = plugin_source(
    MEAN_CLASS, BROKEN_CLASS, register={"mean": "Mean", "broken": "Broken"}
)


def project(tmp_path: Path, chain: str) -> Path:
    return write_project(tmp_path, LOCAL_PLUGIN, ("a", "b"), chain)


def test_check_reports_ready_steps_and_exits_0(tmp_path: Path) -> None:
    config = project(tmp_path, "  - {name: formula, scorer: mean}\n")
    result = run_cli("check", str(config))
    assert result.exit_code == 0, result.output
    assert "formula" in result.output
    assert "ready" in result.output


def test_check_exits_1_and_gives_the_reason_when_a_step_is_unavailable(tmp_path: Path) -> None:
    config = project(
        tmp_path, "  - {name: model, scorer: broken}\n  - {name: formula, scorer: mean}\n"
    )
    result = run_cli("check", "--config", str(config))
    assert result.exit_code == 1
    assert "unavailable" in result.output
    assert "models/missing.onnx does not exist" in result.output


def test_check_json_is_the_diagnostics(tmp_path: Path) -> None:
    config = project(tmp_path, "  - {name: formula, scorer: mean}\n")
    result = run_cli("check", str(config), "--json")
    data = json.loads(result.output)
    assert data["steps"][0]["status"] == "ready"


def test_check_with_a_bad_config_exits_2_without_a_traceback(tmp_path: Path) -> None:
    config = project(tmp_path, "  - {name: formula, scorer: maen}\n")
    result = run_cli("check", str(config))
    assert result.exit_code == 2
    assert "did you mean 'mean'" in result.output
    assert "Traceback" not in result.output


def test_check_without_a_config_says_how_to_pass_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("check")
    assert result.exit_code == 2
    assert "--config" in result.output


def test_plugins_lists_first_party_plugins_with_distribution_and_scorers() -> None:
    result = run_cli("plugins", "--json")
    assert result.exit_code == 0, result.output
    plugins = {p["name"]: p for p in json.loads(result.output)["plugins"]}
    assert plugins["onnx"]["distribution"] == "scoring-core"
    assert plugins["onnx"]["scorers"] == ["onnx"]
    assert plugins["rules"]["scorers"] == ["rules"]
    assert "scoring_register_scorers" in plugins["rules"]["hooks"]


def test_plugins_shows_import_errors(tmp_path: Path) -> None:
    config = project(tmp_path, "  - {name: formula, scorer: mean}\n")
    text = config.read_text().replace(f"[{PLUGIN_FILE}]", f"[{PLUGIN_FILE}, nowhere.py]")
    config.write_text(text)
    result = run_cli("plugins", "--config", str(config))
    assert result.exit_code == 0
    assert "nowhere.py" in result.output
    assert "ERROR" in result.output
    assert "scorers: mean, broken" in result.output
