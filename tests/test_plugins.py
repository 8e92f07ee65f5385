"""Plugin loading: entry points one by one, strict mode, env switches, local modules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scorers import MeanScorer

import scoring_core
from scoring_core import PluginError
from scoring_core.plugins import PluginHost
from scoring_core.testing import engine_for, scorer_plugin

GOOD_PLUGIN = """
import numpy as np
import scoring_core

class Half:
    def __init__(self, ctx):
        pass
    def score(self, X):
        return np.full(X.shape[0], 0.5)

@scoring_core.hookimpl
def scoring_register_scorers(register):
    register("half", Half)
"""


def install_fake_distribution(
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    modules: dict[str, str],
    entry_points: dict[str, str],
    version: str = "1.2.3",
) -> None:
    """Make a distribution with entry points importable from ``root`` (no pip needed)."""
    root.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)
    dist_info = root / f"{name}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[scoring_core]\n{lines}\n")
    monkeypatch.syspath_prepend(str(root))


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_distribution(
        tmp_path / "site",
        monkeypatch,
        "scoring-half",
        {"scoring_half": GOOD_PLUGIN, "scoring_broken": "raise ImportError('no such backend')"},
        {"half": "scoring_half", "broken": "scoring_broken"},
    )
    monkeypatch.setenv("SCORING_LOAD_PLUGINS", "half,broken")


def test_entry_point_plugin_is_loaded_with_its_distribution(third_party: None) -> None:
    host = PluginHost()
    half = next(p for p in host.plugins if p.name == "half")
    assert (half.distribution, half.version) == ("scoring-half", "1.2.3")
    assert half.scorers == ["half"]
    assert half.hooks == ["scoring_register_scorers"]
    assert host.scorers["half"].distribution == "scoring-half"


def test_a_plugin_that_fails_to_import_is_recorded_and_others_keep_working(
    third_party: None,
) -> None:
    with engine_for([{"name": "h", "scorer": "half"}]) as engine:
        assert engine.score([0.1] * 5).score == 0.5
        plugins = {p["name"]: p for p in engine.diagnostics()["plugins"]}
    assert "ImportError: no such backend" in plugins["broken"]["error"]
    assert plugins["broken"]["distribution"] == "scoring-half"
    assert plugins["half"]["error"] is None


def test_strict_plugins_makes_an_import_failure_fatal(
    third_party: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCORING_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"'broken' failed to load.*no such backend"):
        PluginHost()


def test_load_plugins_env_limits_autoloading(
    third_party: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCORING_LOAD_PLUGINS", "half")
    assert [p.name for p in PluginHost().plugins] == ["half"]
    monkeypatch.setenv("SCORING_LOAD_PLUGINS", "")
    assert PluginHost().plugins == []


def test_yaml_can_disable_a_plugin_by_name(third_party: None) -> None:
    host = PluginHost(disabled=["broken"])
    assert [p.name for p in host.plugins] == ["half"]


def test_local_module_named_in_yaml_is_registered(tmp_path: Path) -> None:
    (tmp_path / "local_half.py").write_text(GOOD_PLUGIN)
    (tmp_path / "scoring.yaml").write_text(
        "features: [{name: a}]\nplugins: [local_half.py]\nchain: [{name: h, scorer: half}]\n"
    )
    with scoring_core.Engine.from_yaml(tmp_path / "scoring.yaml") as engine:
        assert engine.score([3.0]).scorer == "h"
        plugin = next(p for p in engine.diagnostics()["plugins"] if p["source"] == "config")
    assert plugin["scorers"] == ["half"]


def test_local_module_that_does_not_exist_is_recorded(tmp_path: Path) -> None:
    host = PluginHost(config_plugins=["missing_module_xyz"], base_dir=tmp_path)
    (info,) = [p for p in host.plugins if p.source == "config"]
    assert "ModuleNotFoundError" in (info.error or "")


class Misspelt:
    @scoring_core.hookimpl
    def scoring_register_scorer(self, register):  # type: ignore[no-untyped-def]
        """Missing the final s: must not be silently ignored."""


def test_misspelt_hook_name_is_caught() -> None:
    with pytest.raises(PluginError, match=r"scoring_register_scorer.*scoring_register_scorers"):
        engine_for([{"name": "m", "scorer": "mean"}], plugins=[Misspelt()])


def test_two_plugins_registering_one_name_is_an_error_naming_both() -> None:
    first = scorer_plugin("mean", MeanScorer)
    second = scorer_plugin("mean", MeanScorer)
    with pytest.raises(PluginError) as info:
        engine_for([{"name": "m", "scorer": "mean"}], plugins=[first, second])
    assert str(info.value).count("test-plugin:mean") == 2


def test_each_engine_has_its_own_plugin_manager() -> None:
    plugin = scorer_plugin("mean", MeanScorer)
    one = engine_for([{"name": "m", "scorer": "mean"}], plugins=[plugin])
    two = engine_for([{"name": "m", "scorer": "mean"}], plugins=[plugin])
    try:
        assert one._host.pm is not two._host.pm
    finally:
        one.close()
        two.close()


def test_first_party_plugins_come_through_entry_points() -> None:
    host = PluginHost()
    names = {p.name: p for p in host.plugins}
    assert set(names) == {"onnx", "rules"}
    assert {p.distribution for p in names.values()} == {"scoring-core"}
    assert set(host.scorers) == {"onnx", "rules"}
    assert json.dumps([p.as_dict() for p in host.plugins])  # JSON-serialisable
