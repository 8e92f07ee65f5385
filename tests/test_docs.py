"""The docs say what the code does: hook signatures, config keys, examples that run.

- docs/hooks.md documents every hookspec with its real signature, every name of the scorer
  contract (scoring_core/scorer.py) with its real fields and method signatures, and its
  examples work;
- docs/configuration.md names every key of the config schema and every environment
  variable, and its complete example builds an engine;
- docs/tutorial-plugin.md's files, copied as they are, make a plugin whose tests pass and
  whose outputs are the ones the tutorial shows.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
import re
import subprocess
import sys
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from scoring_core import Engine, hookspecs, scorer
from scoring_core.config import EngineConfig
from scoring_core.plugins import LOAD_PLUGINS_ENV, STRICT_PLUGINS_ENV, TRACE_PLUGINS_ENV
from scoring_core.testing import engine_for

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
HOOKS_MD = (DOCS / "hooks.md").read_text()
CONFIGURATION_MD = (DOCS / "configuration.md").read_text()
TUTORIAL_MD = (DOCS / "tutorial-plugin.md").read_text()


# -- helpers ----------------------------------------------------------------------------------


def hookspec_functions() -> dict[str, Any]:
    """Every hook the engine defines: functions in hookspecs.py marked as hookspecs."""
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {
        name: fn
        for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and hasattr(fn, marker)
    }


class _Annotation:
    """Renders an annotation as written in the source (hookspecs.py defers annotations)."""

    def __init__(self, text: Any) -> None:
        self.text = text if isinstance(text, str) else inspect.formatannotation(text)

    def __repr__(self) -> str:
        return str(self.text)


def _as_written(parameter: inspect.Parameter) -> inspect.Parameter:
    if parameter.annotation is not inspect.Parameter.empty:
        parameter = parameter.replace(annotation=_Annotation(parameter.annotation))
    if parameter.default is Ellipsis:
        parameter = parameter.replace(default=_Annotation("..."))
    return parameter


def rendered_signature(fn: Any) -> str:
    """``def name(param: Type, ...) -> Return``, from inspect.signature."""
    signature = inspect.signature(fn)
    parameters = [_as_written(p) for p in signature.parameters.values()]
    returns = signature.return_annotation
    signature = signature.replace(
        parameters=parameters,
        return_annotation=(
            _Annotation(returns) if returns is not inspect.Signature.empty else returns
        ),
    )
    return f"def {fn.__name__}{signature}"


def sections(markdown: str, level: int) -> dict[str, str]:
    """Heading text -> the text under it, for headings of exactly ``level`` hashes."""
    marker = "#" * level
    parts = re.split(rf"^{marker} (.+)$", markdown, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def code_blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)


def module_from(source: str, name: str) -> types.ModuleType:
    """Run a documentation example as a module, as a user would save and import it."""
    module = types.ModuleType(name)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


# -- docs/hooks.md ----------------------------------------------------------------------------


def test_every_hookspec_is_documented_with_its_real_signature() -> None:
    documented = sections(HOOKS_MD, 2)
    problems = []
    for name, fn in hookspec_functions().items():
        if name not in documented:
            problems.append(f"{name} has no `## {name}` section in docs/hooks.md")
            continue
        blocks = code_blocks(documented[name], "python")
        shown = blocks[0].strip() if blocks else "(no python block)"
        expected = rendered_signature(fn)
        if shown != expected:
            problems.append(f"{name}: docs/hooks.md shows {shown!r}, the code is {expected!r}")
    assert not problems, "\n".join(problems)


def test_the_signature_check_notices_a_changed_hook() -> None:
    def scoring_engine_started(engine: Engine, reason: str = "start") -> None: ...

    shown = code_blocks(sections(HOOKS_MD, 2)["scoring_engine_started"], "python")[0].strip()
    assert rendered_signature(scoring_engine_started) != shown
    assert rendered_signature(scoring_engine_started) == (
        "def scoring_engine_started(engine: Engine, reason: str = 'start') -> None"
    )


def test_hooks_md_documents_no_hook_that_does_not_exist() -> None:
    documented = {name for name in sections(HOOKS_MD, 2) if name.startswith("scoring_")}
    assert documented == set(hookspec_functions())


@pytest.mark.parametrize("hook", sorted(hookspec_functions()))
def test_each_hook_section_says_when_parameters_returns_and_shows_an_example(hook: str) -> None:
    subsections = sections(sections(HOOKS_MD, 2)[hook], 3)
    for needed in ("When it is called", "Parameters", "Returns", "Example"):
        assert needed in subsections, f"docs/hooks.md, {hook}: no `### {needed}`"
    for parameter in inspect.signature(hookspec_functions()[hook]).parameters:
        assert f"`{parameter}`" in subsections["Parameters"], f"{hook}: {parameter} undocumented"
    assert code_blocks(subsections["Example"], "python"), f"{hook}: the example has no code"


# -- docs/hooks.md: the scorer contract -------------------------------------------------------


def contract_sections() -> dict[str, str]:
    """``### Name`` -> its text, under ``## The scorer contract``."""
    return sections(sections(HOOKS_MD, 2)["The scorer contract"], 3)


def rendered_members(cls: type) -> list[str]:
    """What the docs must show of ``cls``: its fields (``name: type``), then ``def ...: ...``.

    The methods are the ones the class itself defines, public ones and ``__call__``.
    """
    members = []
    if dataclasses.is_dataclass(cls):
        members += [f"{field.name}: {field.type}" for field in dataclasses.fields(cls)]
    elif getattr(cls, "_is_protocol", False):  # a protocol's attributes: annotations only
        members += [
            f"{name}: {kind}" for name, kind in vars(cls).get("__annotations__", {}).items()
        ]
    for name, member in vars(cls).items():
        if inspect.isfunction(member) and (not name.startswith("_") or name == "__call__"):
            members.append(f"{rendered_signature(member)}: ...")
    return members


def shown_members(block: str) -> list[str]:
    """A docs block's field lines (defaults left out) and ``def`` lines, in order."""
    shown = []
    signature: list[str] = []  # a ``def`` written over several lines, as black writes it
    for line in block.splitlines():
        text = line.strip()
        if signature or text.startswith("def "):
            signature.append(text)
            if text.endswith("..."):
                joined = " ".join(signature).replace("( ", "(").replace(", )", ")")
                shown.append(joined)
                signature = []
        elif re.match(r"\w+: ", text):
            shown.append(text.split(" = ")[0])
    return shown


def test_every_protocol_of_the_scorer_module_is_part_of_the_contract() -> None:
    protocols = {
        name
        for name, value in vars(scorer).items()
        if inspect.isclass(value)
        and value.__module__ == scorer.__name__
        and getattr(value, "_is_protocol", False)
    }
    assert {"Scorer", "SupportsClose", "RegisterScorer"} <= protocols
    assert protocols <= set(scorer.__all__)


def test_every_name_of_the_scorer_contract_is_documented_with_its_real_signatures() -> None:
    documented = contract_sections()
    problems = []
    for name in scorer.__all__:
        if name not in documented:
            problems.append(f"{name} has no `### {name}` under `## The scorer contract`")
            continue
        blocks = code_blocks(documented[name], "python")
        block = blocks[0] if blocks else ""
        if not re.search(rf"^class {name}\b", block, flags=re.MULTILINE):
            problems.append(f"{name}: its first python block does not show `class {name}`")
        shown, expected = shown_members(block), rendered_members(getattr(scorer, name))
        if shown != expected:
            problems.append(f"{name}: docs/hooks.md shows {shown}, the code is {expected}")
    assert not problems, "\n".join(problems)


def test_the_contract_check_notices_a_changed_method() -> None:
    class SupportsClose(typing.Protocol):
        def close(self, wait_s: float = ..., /) -> None: ...

    shown = shown_members(code_blocks(contract_sections()["SupportsClose"], "python")[0])
    assert shown == ["def close(self) -> None: ..."]
    assert rendered_members(SupportsClose) == [
        "def close(self, wait_s: float = ..., /) -> None: ..."
    ]


def test_hooks_md_documents_no_contract_name_that_does_not_exist() -> None:
    assert set(contract_sections()) == set(scorer.__all__)


def test_the_contract_example_is_a_plugin_that_scores() -> None:
    example = code_blocks(sections(HOOKS_MD, 2)["The scorer contract"], "python")[0]
    plugin = module_from(example, "hooks_md_contract")
    with engine_for([{"name": "m", "scorer": "mean"}], plugins=[plugin]) as engine:
        result = engine.score([0.1, 0.2, 0.3, 0.4, 0.5])
    assert (result.scorer, result.score) == ("m", pytest.approx(0.3))


def hook_example(hook: str) -> types.ModuleType:
    example = sections(sections(HOOKS_MD, 2)[hook], 3)["Example"]
    return module_from(code_blocks(example, "python")[0], f"hooks_md_{hook}")


def test_the_register_example_scores_from_its_yaml_step() -> None:
    plugin = hook_example("scoring_register_scorers")
    example = sections(sections(HOOKS_MD, 2)["scoring_register_scorers"], 3)["Example"]
    chain = yaml.safe_load(code_blocks(example, "yaml")[0])["chain"]
    with engine_for(chain, plugins=[plugin]) as engine:
        result = engine.score([0.1] * 5)
    assert (result.scorer, result.score) == ("placeholder", 0.25)


def test_the_started_example_warns_about_steps_that_did_not_load(
    caplog: pytest.LogCaptureFixture,
) -> None:
    plugin = hook_example("scoring_engine_started")
    caplog.set_level(logging.WARNING, logger="my_plugin")
    chain = [{"name": "neural", "scorer": "onnx", "options": {"model": "missing.onnx"}}]
    with engine_for(chain, plugins=[plugin], base_dir=ROOT):
        pass
    assert "engine started without neural" in caplog.text


def test_the_closed_example_reports_rows_served(capsys: pytest.CaptureFixture[str]) -> None:
    plugin = hook_example("scoring_engine_closed")
    register = hook_example("scoring_register_scorers")
    chain = [{"name": "placeholder", "scorer": "constant"}]
    with engine_for(chain, plugins=[plugin, register]) as engine:
        engine.score_batch([[0.5] * 5] * 3)
    assert json.loads(capsys.readouterr().err) == {"rows_served": {"placeholder": 3}}


def test_trace_plugins_logs_every_hook_call_of_every_plugin(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """As hooks.md and configuration.md say, including hooks that take no arguments."""

    class Lifecycle:
        __name__ = "lifecycle"

        @hookspecs.hookimpl
        def scoring_engine_started(self) -> None:
            pass

        @hookspecs.hookimpl
        def scoring_engine_closed(self, engine: Engine) -> None:
            pass

    monkeypatch.setenv(TRACE_PLUGINS_ENV, "1")
    register = hook_example("scoring_register_scorers")
    with engine_for(
        [{"name": "placeholder", "scorer": "constant"}], plugins=[Lifecycle(), register]
    ):
        pass
    calls = re.findall(r"hook (\w+) in plugin '([^']+)' returned after [\d.]+ ms", caplog.text)
    assert ("scoring_register_scorers", "onnx") in calls
    assert ("scoring_register_scorers", "rules") in calls
    assert ("scoring_register_scorers", register.__name__) in calls
    assert ("scoring_engine_started", "lifecycle") in calls
    assert ("scoring_engine_closed", "lifecycle") in calls


def test_without_trace_plugins_hook_calls_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with engine_for([{"name": "r", "scorer": "rules", "options": {"terms": [{"constant": 1}]}}]):
        pass
    assert "hook scoring_register_scorers" not in caplog.text


# -- docs/configuration.md --------------------------------------------------------------------


def schema_keys(model: type[pydantic.BaseModel], seen: set[type] | None = None) -> set[str]:
    """Every key of the config schema, following nested models."""
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        keys.add(field.alias or name)
        stack = [field.annotation]
        while stack:
            tp = stack.pop()
            if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
                keys |= schema_keys(tp, seen)
            stack.extend(typing.get_args(tp))
    return keys


def test_configuration_md_documents_every_key_of_the_schema() -> None:
    keys = schema_keys(EngineConfig)
    assert {"features", "chain", "options", "clip", "on_exhausted", "disable_plugins"} <= keys
    missing = sorted(key for key in keys if f"`{key}`" not in CONFIGURATION_MD)
    assert not missing, f"docs/configuration.md does not mention: {', '.join(missing)}"


def test_configuration_md_documents_every_top_level_key_in_its_own_section() -> None:
    headings = sections(CONFIGURATION_MD, 2)
    missing = [key for key in EngineConfig.model_fields if f"`{key}`" not in headings]
    assert not missing, f"no `## \\`key\\`` section for: {', '.join(missing)}"


def test_configuration_md_documents_the_environment_variables() -> None:
    table = sections(CONFIGURATION_MD, 2)["Environment variables"]
    for variable in (LOAD_PLUGINS_ENV, STRICT_PLUGINS_ENV, TRACE_PLUGINS_ENV):
        assert f"`{variable}`" in table


def test_the_complete_example_in_configuration_md_builds_with_every_step_ready() -> None:
    blocks = code_blocks(CONFIGURATION_MD, "yaml")
    [complete] = [b for b in blocks if b.startswith("features:") and "\nchain:" in b]
    mapping = yaml.safe_load(complete)
    assert set(mapping) == set(EngineConfig.model_fields), "the example misses a top-level key"
    with Engine.from_config(mapping, base_dir=ROOT) as engine:
        steps = engine.diagnostics()["steps"]
        result = engine.score([0.5] * len(engine.feature_names))
    assert [(s["name"], s["status"]) for s in steps] == [("neural", "ready"), ("formula", "ready")]
    assert result.scorer == "neural"


def test_the_inline_features_example_is_valid() -> None:
    [inline] = [b for b in code_blocks(CONFIGURATION_MD, "yaml") if "age_years" in b]
    features = yaml.safe_load(inline)["features"]
    chain = [{"name": "r", "scorer": "rules", "options": {"terms": [{"feature": "income"}]}}]
    with engine_for(chain, features=features) as engine:
        result = engine.score({"age_years": 40, "income": -5})  # clipped to 0; visits default
    assert result.score == 0.0


# -- docs/tutorial-plugin.md ------------------------------------------------------------------


def tutorial_files() -> dict[str, str]:
    """The files the tutorial asks you to create: code blocks starting ``# <path>``."""
    files = {}
    for block in re.findall(r"^```\w+\n(.*?)^```", TUTORIAL_MD, flags=re.MULTILINE | re.DOTALL):
        first = block.split("\n", 1)[0]
        match = re.fullmatch(r"# (\S+\.(?:toml|py|yaml))", first)
        if match:
            files[match.group(1)] = block
    return files


def console_after(text: str) -> str:
    """The first ``console`` block after ``text`` in the tutorial."""
    start = TUTORIAL_MD.index(text)
    return code_blocks(TUTORIAL_MD[start:], "console")[0]


@pytest.fixture
def tutorial_plugin(tmp_path: Path) -> Path:
    """The tutorial's folder, written as it says, and 'installed' through a dist-info."""
    files = tutorial_files()
    assert set(files) == {
        "pyproject.toml",
        "scoring_weighted/__init__.py",
        "scoring.yaml",
        "tests/conftest.py",
        "tests/test_weighted.py",
    }
    folder = tmp_path / "scoring-weighted"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    project = tomllib.loads(files["pyproject.toml"])["project"]
    dist_info = folder / f"scoring_weighted-{project['version']}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    points = project["entry-points"]["scoring_core"]
    lines = "".join(f"{name} = {value}\n" for name, value in points.items())
    (dist_info / "entry_points.txt").write_text(f"[scoring_core]\n{lines}")
    return folder


def run_in(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SCORING_")}
    environment.update(PYTHONPATH=str(folder), PYTHONUNBUFFERED="1", **env)
    return subprocess.run(
        [sys.executable, *args],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_tutorial_pyproject_registers_the_entry_point_in_our_group() -> None:
    project = tomllib.loads(tutorial_files()["pyproject.toml"])["project"]
    assert project["entry-points"] == {"scoring_core": {"weighted": "scoring_weighted"}}
    assert "scoring-core" in project["dependencies"]


def test_scoring_plugins_lists_the_tutorial_plugin_as_the_tutorial_shows(
    tutorial_plugin: Path,
) -> None:
    installed = run_in(
        tutorial_plugin, "-m", "scoring_core", "plugins", SCORING_LOAD_PLUGINS="onnx,rules,weighted"
    )
    assert installed.stdout == console_after("## 3. Install it and see it listed")


def test_the_tutorial_chain_checks_and_scores_as_shown(tutorial_plugin: Path) -> None:
    check = run_in(tutorial_plugin, "-m", "scoring_core", "check")
    shown = console_after("scoring check\n```")
    strip_ms = re.compile(r"loaded in [\d.]+ ms")
    assert check.returncode == 0, check.stderr
    assert strip_ms.sub("", check.stdout) == strip_ms.sub("", shown)

    command = code_blocks(TUTORIAL_MD[TUTORIAL_MD.index("Score a row from Python") :], "sh")[0]
    program = re.search(r'python -c "\n(.*)"\n', command, flags=re.DOTALL)
    assert program is not None
    scored = run_in(tutorial_plugin, "-c", program.group(1))
    assert scored.returncode == 0, scored.stderr
    assert scored.stdout == console_after("Score a row from Python")


def test_the_tutorial_tests_pass(tutorial_plugin: Path) -> None:
    done = run_in(tutorial_plugin, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 passed" in done.stdout


@pytest.mark.parametrize(
    ("change", "heading"),
    [
        (("scorer: weighted", "scorer: wieghted"), "**`unknown scorer 'wieghted'"),
        (("      weights: {rating", "      wieghts: {rating"), "**`unknown option;"),
    ],
)
def test_the_tutorials_config_errors_are_the_real_messages(
    tutorial_plugin: Path, change: tuple[str, str], heading: str
) -> None:
    config = tutorial_plugin / "scoring.yaml"
    config.write_text(config.read_text().replace(*change))
    done = run_in(tutorial_plugin, "-m", "scoring_core", "check")
    assert done.returncode == 2
    assert done.stderr == console_after(heading)


def test_the_tutorials_unavailable_step_output_is_real(tutorial_plugin: Path) -> None:
    config = tutorial_plugin / "scoring.yaml"
    config.write_text(config.read_text().replace("weights: {rating: 3", "weights: {ratin: 3"))
    done = run_in(tutorial_plugin, "-m", "scoring_core", "check")
    assert done.returncode == 1
    shown = console_after("**`scoring check` says the step is `unavailable`.**")
    strip_ms = re.compile(r"loaded in [\d.]+ ms")
    for line in strip_ms.sub("", shown).splitlines():
        assert line in strip_ms.sub("", done.stdout + done.stderr)


def test_importing_the_tutorial_module_registers_weighted() -> None:
    module = module_from(tutorial_files()["scoring_weighted/__init__.py"], "scoring_weighted")
    chain = [{"name": "blend", "scorer": "weighted", "options": {"weights": {"f0": 1}}}]
    with engine_for(chain, plugins=[module]) as engine:
        assert engine.score([0.3, 0, 0, 0, 0]).score == pytest.approx(0.3)


def console_blocks_after(text: str) -> list[str]:
    start = TUTORIAL_MD.index(text)
    end = TUTORIAL_MD.find("\n**", start + len(text))
    return code_blocks(TUTORIAL_MD[start:end], "console")


def test_the_tutorials_import_error_output_is_real(tutorial_plugin: Path) -> None:
    module = tutorial_plugin / "scoring_weighted" / "__init__.py"
    module.write_text(module.read_text().replace("import numpy as np", "import numpyy as np"))
    listing, check = console_blocks_after("**`scoring plugins` lists it with an error.**")
    env = {"SCORING_LOAD_PLUGINS": "onnx,rules,weighted"}
    plugins = run_in(tutorial_plugin, "-m", "scoring_core", "plugins", **env)
    assert plugins.stdout.endswith(listing)
    checked = run_in(tutorial_plugin, "-m", "scoring_core", "check", **env)
    assert checked.returncode == 2
    assert "$ scoring check\n" + checked.stderr == check


def test_the_tutorials_misspelt_hook_output_is_real(tutorial_plugin: Path) -> None:
    module = tutorial_plugin / "scoring_weighted" / "__init__.py"
    module.write_text(
        module.read_text().replace("def scoring_register_scorers(", "def scoring_register_scorer(")
    )
    [listing] = console_blocks_after("**`unknown hook 'scoring_register_scorer'`.**")
    env = {"SCORING_LOAD_PLUGINS": "onnx,rules,weighted"}
    plugins = run_in(tutorial_plugin, "-m", "scoring_core", "plugins", **env)
    assert plugins.returncode == 1  # a plugin failed to load
    assert plugins.stderr.endswith("\n1 plugin(s) failed to load: weighted\n")
    shown = listing.replace("/home/you/scoring-weighted", str(tutorial_plugin))
    assert plugins.stdout.endswith(shown)
