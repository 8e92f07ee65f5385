"""Plugin loading: entry points one by one, strict mode, env switches, local modules.

Hook calls go through pluggy, wrappers included, and one plugin's failure is its own.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pluggy
import pytest
from scorers import ConstantScorer, MeanScorer

import scoring_core
import scoring_core.scorer
from scoring_core import PluginError
from scoring_core.plugins import PluginHost
from scoring_core.testing import engine_for, scorer_plugin

ROOT = Path(__file__).resolve().parent.parent

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


# -- the scorer contract is public ------------------------------------------------------------


def test_the_scorer_contract_is_exported_from_scoring_core() -> None:
    for name in scoring_core.scorer.__all__:
        assert name in scoring_core.__all__, name
        assert getattr(scoring_core, name) is getattr(scoring_core.scorer, name)
    assert {"RegisterScorer", "ScorerContext", "SupportsClose", "WatchesFiles"} <= set(
        scoring_core.scorer.__all__
    )


def test_register_scorer_is_still_importable_from_where_plugins_found_it() -> None:
    from scoring_core.plugins import RegisterScorer

    assert RegisterScorer is scoring_core.RegisterScorer


def scoring_core_imports(path: Path) -> list[str]:
    """``scoring_core...`` modules imported by one file (``from x import y``: ``x``)."""
    modules = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.append(node.module)
    return [m for m in modules if m.partition(".")[0] == "scoring_core"]


@pytest.mark.parametrize(
    "folder",
    ["plugins/scoring_onnx", "plugins/scoring_rules", "examples/scoring-logistic/src"],
)
def test_first_party_and_example_plugins_use_only_public_names(folder: str) -> None:
    """Built-in plugins go through the same door as third-party ones: ``scoring_core``."""
    internal = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted((ROOT / folder).rglob("*.py"))
        for module in scoring_core_imports(path)
        # scoring_core.models: the versions layout and labels file, public for any scorer
        # that serves model versions (docs/models.md)
        if module not in {"scoring_core", "scoring_core.testing", "scoring_core.models"}
    ]
    assert internal == []


# -- hook calls: through pluggy, one plugin's failure its own --------------------------------


class Recorder:
    """A plugin object with a readable name and a shared list of what happened."""

    def __init__(self, name: str, events: list[str]) -> None:
        self.__name__ = name
        self.events = events


class PlainStarted(Recorder):
    @scoring_core.hookimpl
    def scoring_engine_started(self, engine: Any) -> None:
        self.events.append(f"{self.__name__} started")


class RaisingStarted(Recorder):
    @scoring_core.hookimpl
    def scoring_engine_started(self) -> None:
        self.events.append(f"{self.__name__} raises")
        raise RuntimeError(f"{self.__name__} cannot start")


class NewStyleWrapper(Recorder):
    @scoring_core.hookimpl(wrapper=True)
    def scoring_engine_started(self, engine: Any) -> Generator[None, Any, Any]:
        self.events.append("before")
        result = yield
        self.events.append("after")
        return result

    @scoring_core.hookimpl(wrapper=True)
    def scoring_engine_closed(self) -> Generator[None, Any, Any]:
        self.events.append("before close")
        try:
            return (yield)
        finally:
            self.events.append("after close")


class OldStyleWrapper(Recorder):
    @scoring_core.hookimpl(hookwrapper=True)
    def scoring_engine_started(self, engine: Any) -> Generator[None, pluggy.Result[Any], None]:
        self.events.append("old before")
        outcome = yield
        self.events.append(f"old after, exception={outcome.exception!r}")


class FailsBeforeYield(Recorder):
    @scoring_core.hookimpl(wrapper=True)
    def scoring_engine_started(self) -> Generator[None, Any, Any]:
        raise RuntimeError("wrapper cannot start")
        yield  # a generator, as pluggy requires of a wrapper


class FailsAfterYield(Recorder):
    @scoring_core.hookimpl(wrapper=True)
    def scoring_engine_closed(self) -> Generator[None, Any, Any]:
        yield
        raise RuntimeError("wrapper cannot clean up")


MEAN_STEP = [{"name": "m", "scorer": "mean"}]


def start_and_close(*plugins: Any) -> None:
    with engine_for(MEAN_STEP, plugins=[scorer_plugin("mean", MeanScorer), *plugins]):
        pass


def test_a_new_style_wrapper_on_engine_started_runs_around_the_plain_implementations() -> None:
    events: list[str] = []
    start_and_close(PlainStarted("plain", events), NewStyleWrapper("wrapping", events))
    assert events == ["before", "plain started", "after", "before close", "after close"]


def test_an_old_style_hookwrapper_on_engine_started_runs_and_gets_the_outcome() -> None:
    events: list[str] = []
    start_and_close(PlainStarted("plain", events), OldStyleWrapper("old", events))
    assert events == ["old before", "plain started", "old after, exception=None"]


@pytest.mark.parametrize("raising_first", [True, False])
def test_a_raising_implementation_does_not_stop_another_plugins_or_the_wrappers(
    raising_first: bool, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[str] = []
    plain = [RaisingStarted("raising", events), PlainStarted("plain", events)]
    start_and_close(*(plain if raising_first else plain[::-1]), NewStyleWrapper("w", events))
    assert sorted(events[1:3]) == ["plain started", "raising raises"]
    assert (events[0], events[3]) == ("before", "after")  # the wrapper saw no exception
    assert "scoring_engine_started failed: raising cannot start" in caplog.text


def test_a_wrapper_that_raises_before_its_yield_does_not_stop_the_plain_implementations(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []
    start_and_close(PlainStarted("plain", events), FailsBeforeYield("broken", events))
    assert events == ["plain started"]
    assert "scoring_engine_started failed: wrapper cannot start" in caplog.text


def test_cleanup_errors_of_wrappers_and_plain_implementations_are_raised_with_the_plugin() -> None:
    class RaisingClosed(Recorder):
        @scoring_core.hookimpl
        def scoring_engine_closed(self) -> None:
            raise RuntimeError("plain cannot clean up")

    events: list[str] = []
    engine = engine_for(
        MEAN_STEP,
        plugins=[
            scorer_plugin("mean", MeanScorer),
            RaisingClosed("raising", events),
            FailsAfterYield("broken", events),
            NewStyleWrapper("w", events),
        ],
    )
    with pytest.raises(ExceptionGroup) as info:
        engine.close()
    assert events == ["before", "after", "before close", "after close"]
    notes = {str(e): e.__notes__ for e in info.value.exceptions}
    assert notes == {
        "plain cannot clean up": ["in plugin 'raising', hook scoring_engine_closed"],
        "wrapper cannot clean up": ["in plugin 'broken', hook scoring_engine_closed"],
    }


def test_a_wrapper_on_register_scorers_registers_in_its_own_plugins_name() -> None:
    class RegistersAroundTheOthers:
        __name__ = "wrapping"

        @scoring_core.hookimpl(wrapper=True)
        def scoring_register_scorers(self, register: Any) -> Generator[None, Any, Any]:
            result = yield
            register("constant", ConstantScorer)
            return result

    host = PluginHost(code_plugins=[scorer_plugin("mean", MeanScorer), RegistersAroundTheOthers()])
    assert (host.scorers["constant"].plugin, host.scorers["mean"].plugin) == (
        "wrapping",
        "test-plugin:mean",
    )


def test_a_register_hook_that_raises_is_recorded_on_its_plugin_and_the_others_register() -> None:
    class Broken:
        __name__ = "broken"

        @scoring_core.hookimpl
        def scoring_register_scorers(self, register: Any) -> None:
            register("half-done", ConstantScorer)
            raise ValueError("no backend")

    host = PluginHost(code_plugins=[Broken(), scorer_plugin("mean", MeanScorer)])
    broken = next(p for p in host.plugins if p.name == "broken")
    assert broken.error == "scoring_register_scorers raised ValueError: no backend"
    assert {"half-done", "mean", "onnx", "rules"} == set(host.scorers)


def test_a_clash_raised_by_register_still_stops_the_engine_under_a_wrapper() -> None:
    events: list[str] = []
    first = scorer_plugin("mean", MeanScorer)
    second = scorer_plugin("mean", MeanScorer)
    with pytest.raises(PluginError, match="registered twice"):
        engine_for(MEAN_STEP, plugins=[first, second, NewStyleWrapper("w", events)])


def test_trace_plugins_logs_wrappers_and_raising_implementations(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SCORING_TRACE_PLUGINS", "1")
    events: list[str] = []
    start_and_close(
        RaisingStarted("raising", events),
        NewStyleWrapper("wrapping", events),
        OldStyleWrapper("old", events),
    )
    calls = re.findall(
        r"hook (\w+) in plugin '([^']+)' (returned|raised \w+) after [\d.]+ ms", caplog.text
    )
    assert ("scoring_engine_started", "raising", "raised RuntimeError") in calls
    assert ("scoring_engine_started", "wrapping", "returned") in calls
    assert ("scoring_engine_started", "old", "returned") in calls
    assert ("scoring_engine_closed", "wrapping", "returned") in calls
    assert ("scoring_register_scorers", "test-plugin:mean", "returned") in calls


def test_a_hook_called_straight_through_pluggy_raises_as_pluggy_would() -> None:
    events: list[str] = []
    host = PluginHost(code_plugins=[RaisingStarted("raising", events)])
    with pytest.raises(RuntimeError, match="raising cannot start"):
        host.pm.hook.scoring_engine_started(engine=None)


def test_without_trace_plugins_nothing_is_logged_per_call(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="scoring_core")
    start_and_close(NewStyleWrapper("wrapping", []))
    assert "in plugin 'wrapping'" not in caplog.text
