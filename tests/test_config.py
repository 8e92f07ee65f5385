"""Config: safe YAML, schema errors with key path and file:line, did-you-mean, paths."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict
from scorers import ConstantScorer, MeanScorer

from scoring_core import ConfigError, Engine
from scoring_core.config.yaml import load_yaml_text
from scoring_core.testing import scorer_plugin


class ConstantOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: float = 0.25
    model: str | None = None


PLUGIN = scorer_plugin("mean", MeanScorer, constant=(ConstantScorer, ConstantOptions))

VALID = """\
features:
  - {name: a, min: 0, max: 1}
  - {name: b, min: 0, max: 1}
output_range: [0, 1]
chain:
  - name: first
    scorer: constant
    options: {value: 0.75}
  - name: second
    scorer: mean
"""


def write(tmp_path: Path, text: str, name: str = "scoring.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def build(tmp_path: Path, text: str) -> Engine:
    return Engine.from_yaml(write(tmp_path, text), plugins=[PLUGIN])


def test_valid_yaml_builds_an_engine(tmp_path: Path) -> None:
    with build(tmp_path, VALID) as engine:
        assert engine.feature_names == ("a", "b")
        assert engine.score({"a": 0.1, "b": 0.2}).score == 0.75


def test_duplicate_key_names_the_line_of_the_second(tmp_path: Path) -> None:
    text = VALID.replace("output_range: [0, 1]\n", "output_range: [0, 1]\noutput_range: [0, 2]\n")
    with pytest.raises(ConfigError) as info:
        build(tmp_path, text)
    assert info.value.line == 5
    assert "duplicate key output_range" in str(info.value)
    assert "first defined on line 4" in str(info.value)
    assert str(info.value).startswith(f"{tmp_path / 'scoring.yaml'}:5:")


def test_python_tags_are_refused(tmp_path: Path) -> None:
    text = VALID + "plugins: !!python/object/apply:os.system ['echo hacked']\n"
    with pytest.raises(
        ConfigError, match=r"scoring.yaml:11: the tag .*python/object.* not allowed"
    ):
        build(tmp_path, text)


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="alias"):
        load_yaml_text("\n".join(lines))
    assert time.perf_counter() - started < 1.0


def test_many_aliases_are_refused() -> None:
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 150) + "]\n"
    with pytest.raises(ConfigError, match="more than 100 YAML aliases"):
        load_yaml_text(text)


def test_a_few_aliases_are_fine() -> None:
    loaded = load_yaml_text("base: &b {min: 0, max: 1}\nother: *b\n")
    assert loaded.data["other"] == {"min": 0, "max": 1}


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "#" * (2 * 1024 * 1024))
    with pytest.raises(ConfigError, match="limit"):
        Engine.from_yaml(path, plugins=[PLUGIN])


def test_unknown_top_level_key_suggests_the_right_one(tmp_path: Path) -> None:
    text = VALID.replace("output_range", "output_rnge")
    with pytest.raises(ConfigError) as info:
        build(tmp_path, text)
    assert info.value.key_path == "output_rnge"
    assert info.value.line == 4
    assert "did you mean 'output_range'" in str(info.value)


def test_misspelt_scorer_lists_known_ones_with_did_you_mean(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build(tmp_path, VALID.replace("scorer: constant", "scorer: constnt"))
    message = str(info.value)
    assert info.value.key_path == "chain[0].scorer"
    assert info.value.line == 7
    assert "did you mean 'constant'" in message
    assert "mean" in message.split("known scorers:")[1]


def test_misspelt_option_is_a_config_error_at_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build(tmp_path, VALID.replace("{value: 0.75}", "{valeu: 0.75}"))
    assert info.value.key_path == "chain[0].options.valeu"
    assert info.value.line == 8
    assert "did you mean 'value'" in str(info.value)


def test_badly_typed_option_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build(tmp_path, VALID.replace("{value: 0.75}", "{value: lots}"))
    assert info.value.key_path == "chain[0].options.value"
    assert "is 'lots' (text); expected a number" in str(info.value)


def test_missing_required_key_is_named(tmp_path: Path) -> None:
    text = VALID.replace("    scorer: mean\n", "")
    with pytest.raises(ConfigError) as info:
        build(tmp_path, text)
    assert info.value.key_path == "chain[1].scorer"
    assert "required" in str(info.value)
    assert info.value.line == 9


def test_duplicate_step_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unique"):
        build(tmp_path, VALID.replace("name: second", "name: first"))


def test_require_must_name_a_step(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'first'"):
        build(tmp_path, VALID + "require: [firts]\n")


@pytest.mark.parametrize(
    ("change", "key_path", "line", "message"),
    [
        (
            ("name: second", "name: first"),
            "chain[1].name",
            9,
            "'first' is repeated (first at line 6)",
        ),
        (("output_range: [0, 1]", "output_range: [1, 0]"), "output_range", 4, "low > high"),
        (("name: second", "name: on_exhausted"), "chain[1].name", 9, "cannot name a step"),
        ((VALID, VALID + "require: [first, scond]\n"), "require[1]", 11, "did you mean 'second'"),
        ((VALID, VALID + "on_exhausted: {score: 2}\n"), "on_exhausted.score", 11, "outside"),
        (
            ("  - {name: b, min: 0, max: 1}", "  - {name: a}"),
            "features[1].name",
            3,
            "(first at line 2)",
        ),
        (
            ("    scorer: mean\n", "    scorer: mean\n    circuit_breaker: {}\n"),
            "chain[1].circuit_breaker",
            11,
            "cannot have a circuit_breaker",
        ),
    ],
    ids=[
        "repeated step",
        "output_range",
        "on_exhausted step",
        "require",
        "default",
        "feature",
        "breaker",
    ],
)
def test_a_check_across_keys_names_the_key_at_fault_and_its_line(
    tmp_path: Path, change: tuple[str, str], key_path: str, line: int, message: str
) -> None:
    assert change[0] in VALID
    with pytest.raises(ConfigError) as info:
        build(tmp_path, VALID.replace(*change))
    assert (info.value.key_path, info.value.line) == (key_path, line)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("name: second", "name: my second"), "chain[1].name: is 'my second'; expected letters"),
        ((VALID, VALID + "on_exhausted: rase\n"), "or `{score: X}` to serve X when every step"),
        ((VALID, VALID + "on_exhausted: rase\n"), "did you mean 'raise'?"),
        (
            (VALID.split("chain:")[1], " []\n"),
            "chain: is []; expected a list of steps, at least one",
        ),
        (
            ("    scorer: mean", "    scorrer: mean"),
            "chain[1].scorrer: unknown key; did you mean 'scorer'? (and 1 more: chain[1].scorer",
        ),
    ],
    ids=["step name", "on_exhausted form", "on_exhausted typo", "empty chain", "typo first"],
)
def test_config_errors_say_what_the_key_takes_in_plain_words(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    assert change[0] in VALID
    with pytest.raises(ConfigError) as info:
        build(tmp_path, VALID.replace(*change))
    assert message in str(info.value)
    assert "should" not in str(info.value)  # no pydantic wording left


class SizedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["small", "large"] = "small"
    chain: list[int] = []


def test_a_plugins_options_keep_their_own_wording(tmp_path: Path) -> None:
    plugin = scorer_plugin("sized", ConstantScorer, options=SizedOptions)
    text = (
        "features:\n  - {name: a}\nchain:\n  - {name: s, scorer: sized, options: {name: medium}}\n"
    )
    with pytest.raises(ConfigError) as info:
        Engine.from_yaml(write(tmp_path, text), plugins=[plugin])
    assert "'small' or 'large'" in str(info.value)  # not the words for a step's name
    assert "letters, digits" not in str(info.value)


def test_a_feature_listed_twice_in_a_feature_file_gives_both_lines(tmp_path: Path) -> None:
    (tmp_path / "features.yaml").write_text(
        "- {name: x, min: 0, max: 1}\n- {name: y}\n- {name: x, min: 0, max: 1}\n"
    )
    with pytest.raises(ConfigError) as info:
        build(tmp_path, "features: features.yaml\nchain:\n  - {name: m, scorer: mean}\n")
    assert (info.value.file, info.value.line) == (str(tmp_path / "features.yaml"), 3)
    assert "feature 'x' is listed twice (first at line 1)" in str(info.value)


def test_feature_range_must_be_ordered(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build(tmp_path, VALID.replace("{name: b, min: 0, max: 1}", "{name: b, min: 2, max: 1}"))
    assert info.value.key_path == "features[1]"
    assert info.value.line == 3


def test_features_can_live_in_their_own_file_relative_to_the_yaml(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "features.yaml").write_text("- {name: x, min: 0, max: 1}\n")
    text = (
        VALID.split("output_range")[0].replace(
            "features:\n  - {name: a, min: 0, max: 1}\n  - {name: b, min: 0, max: 1}\n",
            "features: features.yaml\n",
        )
        + "chain:\n  - {name: m, scorer: mean}\n"
    )
    path = write(tmp_path / "conf", text)
    with Engine.from_yaml(path, plugins=[PLUGIN]) as engine:
        assert engine.feature_names == ("x",)


def test_a_bad_feature_file_names_that_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "features.yaml").write_text("- {name: x, min: 0, max: 1}\n- {name: y, mni: 0}\n")
    with pytest.raises(ConfigError) as info:
        build(tmp_path, "features: features.yaml\nchain:\n  - {name: m, scorer: mean}\n")
    assert info.value.file == str(tmp_path / "features.yaml")
    assert info.value.line == 2
    assert "did you mean 'min'" in str(info.value)


def test_missing_feature_file_points_at_the_features_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build(tmp_path, "features: nowhere.yaml\nchain:\n  - {name: m, scorer: mean}\n")
    assert info.value.line == 1
    assert "nowhere.yaml" in str(info.value)


def test_a_missing_feature_file_from_config_names_base_dir(tmp_path: Path) -> None:
    chain = [{"name": "m", "scorer": "mean"}]
    with pytest.raises(ConfigError) as info:
        Engine.from_config(
            {"features": "nowhere.yaml", "chain": chain}, base_dir=tmp_path, plugins=[PLUGIN]
        )
    assert f"resolves against base_dir ({tmp_path})" in str(info.value)


def test_from_config_takes_the_same_schema_without_lines(tmp_path: Path) -> None:
    mapping = {
        "features": [{"name": "a"}],
        "chain": [{"name": "m", "scorer": "mean"}],
        "outputrange": [0, 1],
    }
    with pytest.raises(ConfigError) as info:
        Engine.from_config(mapping, base_dir=tmp_path, plugins=[PLUGIN])
    assert info.value.line is None
    assert info.value.key_path == "outputrange"


def test_context_resolves_paths_against_the_yaml_folder(tmp_path: Path) -> None:
    sub = tmp_path / "deploy"
    sub.mkdir()
    path = write(sub, VALID)
    with Engine.from_yaml(path, plugins=[PLUGIN]) as engine:
        ctx = engine._chain.steps[0].context
        assert ctx.resolve_path("models/m.onnx") == sub.resolve() / "models" / "m.onnx"
        assert ctx.resolve_path("/abs/m.onnx") == Path("/abs/m.onnx")


def test_empty_file_says_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="features"):
        build(tmp_path, "")


def test_invalid_yaml_syntax_gives_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build(tmp_path, VALID + "chain: [unclosed\n")
    assert info.value.line is not None
    assert "invalid YAML" in str(info.value)


def test_exponent_floats_without_a_dot_are_numbers() -> None:
    data = load_yaml_text("a: 1e-3\nb: -2E+4\nc: 1.5e2\nd: 1e3x\n").data
    assert data == {"a": 0.001, "b": -20000.0, "c": 150.0, "d": "1e3x"}


# -- every error of a file at once, in the user's words (issue 14 point 10, issue 20 point 10)


def test_every_error_of_a_file_is_reported_at_once_in_plain_words(tmp_path: Path) -> None:
    text = (
        "features:\n"
        "  - {name: age, min: 0, max: 1}\n"
        "  - 5\n"
        "  - {name: age, min: 0, max: 1}\n"
        "chain:\n"
        "  - {name: formula, scorer: rules, timout_ms: 5}\n"
    )
    path = tmp_path / "scoring.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Engine.from_yaml(path)
    message = str(info.value)
    assert message.startswith(f"{path}:6: chain[0].timout_ms: unknown key; did you mean")
    assert "features[1] (line 3): is 5 (a number); expected a feature name, or a mapping" in message
    assert "features[2].name (line 4): feature 'age' is listed twice (first at line 2)" in message
    assert "Input should be" not in message
    assert "FeatureSpec" not in message
    assert "features: " not in message  # no noise from the other members of the union


def test_sixty_thousand_unknown_keys_are_refused_within_a_second_with_a_capped_list() -> None:
    text = VALID + "".join(f"unknown_{i}: 1\n" for i in range(60_000))
    assert len(text.encode()) < 1024 * 1024  # under the size cap
    started = time.thread_time()  # CPU time of this thread: a busy machine does not count
    with pytest.raises(ConfigError) as info:
        Engine.from_config(load_yaml_text(text, file="big.yaml").data)
    assert time.thread_time() - started < 1.0
    message = str(info.value)
    assert "unknown_0: unknown key" in message
    assert message.count("unknown key") == 20
    assert "(and 59999 more: " in message
    assert "59980 more not listed" in message
