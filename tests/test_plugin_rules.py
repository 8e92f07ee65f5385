"""Which plugins load: filtering that says what it filtered and why, local plugins that
stay inside the config's folder and load once, and plugins that print without corrupting
an output on stdout (issue 14 point 9, issue 20 point 12)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from cli_helpers import MEAN_CLASS, plugin_source, run_cli, run_process, write_project

from scoring_core import ConfigError, Engine

RULES_CONFIG = """\
features: [{name: tenure, min: 0, max: 1}]
chain:
  - name: formula
    scorer: rules
    options: {terms: [{feature: tenure}]}
"""


def test_a_scorer_filtered_out_by_the_environment_is_reported_as_filtered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "scoring.yaml"
    config.write_text(RULES_CONFIG)
    monkeypatch.setenv("SCORING_LOAD_PLUGINS", "rulez")
    with pytest.raises(ConfigError) as info:
        Engine.from_yaml(config)
    message = str(info.value)
    assert "scorer 'rules' is installed (entry point 'rules' (scoring-core" in message
    assert "filtered out: SCORING_LOAD_PLUGINS='rulez' does not list it" in message
    assert "SCORING_LOAD_PLUGINS='rulez' names 'rulez', which no installed plugin is " in message
    assert "did you mean 'rules'?" in message
    assert "unknown scorer" not in message
    assert info.value.line == 4


def test_a_scorer_disabled_by_the_config_is_reported_as_filtered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SCORING_LOAD_PLUGINS", raising=False)
    config = tmp_path / "scoring.yaml"
    config.write_text(RULES_CONFIG + "disable_plugins: [rules]\n")
    with pytest.raises(ConfigError, match=r"filtered out: the config's `disable_plugins` lists it"):
        Engine.from_yaml(config)


@pytest.mark.parametrize("ref", ["../outside.py", "sub/../../outside.py", "/tmp/outside.py"])
def test_a_local_plugin_outside_the_configs_folder_is_refused(tmp_path: Path, ref: str) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (tmp_path / "outside.py").write_text("raise SystemExit('must never run')\n")
    config = folder / "scoring.yaml"
    config.write_text(RULES_CONFIG + f"plugins: [ok_module, '{ref}']\n")
    with pytest.raises(ConfigError) as info:
        Engine.from_yaml(config)
    assert info.value.key_path == "plugins[1]"
    assert info.value.line == 6
    assert "module names or .py files inside" in str(info.value)


def test_a_local_plugin_listed_twice_is_loaded_once(tmp_path: Path) -> None:
    runs = tmp_path / "runs.txt"
    plugin = plugin_source(MEAN_CLASS, register={"mean": "Mean"}) + (
        f"\nwith open({str(runs)!r}, 'a') as log:\n    log.write('ran\\n')\n"
    )
    config = write_project(tmp_path, plugin, ["a"], "  - {name: m, scorer: mean}\n")
    config.write_text(
        config.read_text().replace(
            "plugins: [myplugin.py]", "plugins: [myplugin.py, ./myplugin.py]"
        )
    )
    with Engine.from_yaml(config) as engine:
        assert engine.score([0.5]).score == 0.5
        plugins = [p for p in engine.diagnostics()["plugins"] if p["source"] == "config"]
    assert runs.read_text() == "ran\n"
    assert [p["scorers"] for p in plugins] == [["mean"]]


def test_a_plugin_that_prints_cannot_corrupt_output_on_stdout(tmp_path: Path) -> None:
    chatty = """
print("imported!")


class Chatty:
    def __init__(self, ctx):
        print("loaded!")

    def score(self, X):
        print("scoring", len(X))
        return X.mean(axis=1)
"""
    config = write_project(
        tmp_path,
        plugin_source(chatty, register={"chatty": "Chatty"}),
        ["a", "b"],
        "  - {name: talk, scorer: chatty}\n",
    )
    (tmp_path / "in.csv").write_text("a,b\n0.25,0.75\n0.5,0.5\n")
    done = run_process(tmp_path, "score", "in.csv", "-o", "-", "--config", str(config))
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [(r["score"], r["scorer"]) for r in rows] == [("0.5", "talk"), ("0.5", "talk")]
    for text in ("imported!", "loaded!", "scoring 2"):
        assert text in done.stderr
        assert text not in done.stdout


def test_scoring_plugins_names_what_was_filtered_and_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORING_LOAD_PLUGINS", "rulez")
    result = run_cli("plugins")
    assert "rules  filtered out: SCORING_LOAD_PLUGINS='rulez' does not list it" in result.output
    assert "is SCORING_LOAD_PLUGINS set to ''?" not in result.output
    listed = json.loads(run_cli("plugins", "--json").output)
    assert {"name": "rules", "distribution": "scoring-core"}.items() <= listed["filtered"][
        1
    ].items()
