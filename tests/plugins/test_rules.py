"""The ``rules`` scorer (plugins/scoring_rules): the formula language, its checks, scoring."""

from __future__ import annotations

import copy
import json
import logging
import re
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
import scoring_rules
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scoring_rules import FormulaError, RulesOptions, RulesScorer
from scoring_rules.formula import CHUNK_ROWS
from scoring_rules.resolve import resolve

from scoring_core import ConfigError, Engine, ScorerContext
from scoring_core.testing import assert_conforms, engine_for

REPO = Path(__file__).resolve().parents[2]
FEATURES_FILE = REPO / "models" / "calling_score_features.yaml"
NAMES: tuple[str, ...] = tuple(entry["name"] for entry in yaml.safe_load(FEATURES_FILE.read_text()))

DIMENSIONS = (
    "exploration_eagerness",
    "community_orientation",
    "location_adventurousness",
    "authenticity_preference",
    "trust_network_reliance",
    "temporal_flexibility",
    "energy_preference",
    "novelty_seeking",
    "value_orientation",
    "crowd_tolerance",
    "social_preference",
    "overall_energy",
)
CONTEXT = (
    "location_proximity",
    "journey_alignment",
    "user_receptivity",
    "opportunity_availability",
    "network_effects",
    "community_patterns",
    "vibe_compatibility",
    "energy_match",
    "community_match",
    "novelty_match",
)
TIMING = (
    "optimal_time_of_day",
    "optimal_day_of_week",
    "user_patterns",
    "opportunity_timing",
    "timing_alignment",
)

# The calling-score formula, as the docs and the package docstring give it.
FORMULA: dict[str, Any] = {
    "groups": {
        "user_vibe": [f"user_{d}" for d in DIMENSIONS],
        "spot_vibe": [f"spot_{d}" for d in DIMENSIONS],
        "context": list(CONTEXT),
        "timing": list(TIMING),
    },
    "terms": [
        {"similarity": ["user_vibe", "spot_vibe"], "weight": 0.5},
        {"mean": "context", "weight": 0.3},
        {"mean": "timing", "weight": 0.2},
    ],
    "clamp": [0, 1],
}


def reference_score(row: dict[str, float]) -> float:
    """The original app's formula, written out plainly."""
    vibe = sum(1 - abs(row[f"user_{d}"] - row[f"spot_{d}"]) for d in DIMENSIONS) / len(DIMENSIONS)
    context = sum(row[name] for name in CONTEXT) / len(CONTEXT)
    timing = sum(row[name] for name in TIMING) / len(TIMING)
    return min(max(0.5 * vibe + 0.3 * context + 0.2 * timing, 0.0), 1.0)


def reference_scores(X: np.ndarray) -> np.ndarray:
    return np.array([reference_score(dict(zip(NAMES, map(float, row), strict=True))) for row in X])


def rows(n: int, *, low: float = 0.0, high: float = 1.0, seed: int = 0) -> np.ndarray:
    values = np.random.default_rng(seed).uniform(low, high, size=(n, len(NAMES)))
    return np.ascontiguousarray(values, dtype=np.float32)


def validate(options: dict[str, Any], names: tuple[str, ...] = NAMES) -> RulesOptions:
    return RulesOptions.model_validate(options, context={"feature_names": names})


def make_scorer(
    options: dict[str, Any] | RulesOptions = FORMULA,
    names: tuple[str, ...] = NAMES,
    output_range: tuple[float, float] | None = None,
) -> RulesScorer:
    validated = options if isinstance(options, RulesOptions) else validate(options, names)
    ctx = ScorerContext(
        name="formula",
        scorer="rules",
        options=validated,
        feature_names=names,
        base_dir=REPO,
        output_range=output_range,
        logger=logging.getLogger("scoring_core.step.formula"),
    )
    return RulesScorer(ctx)


def errors_of(options: dict[str, Any], names: tuple[str, ...] = NAMES) -> list[Any]:
    with pytest.raises(pydantic.ValidationError) as caught:
        validate(options, names)
    return list(caught.value.errors())


def formula_with(**changes: Any) -> dict[str, Any]:
    """A deep copy of FORMULA with top-level keys replaced."""
    return {**copy.deepcopy(FORMULA), **changes}


# -- the package, its hook and its documentation ----------------------------------------------


def test_plugin_registers_rules_scorer_with_its_options() -> None:
    registered: list[tuple[str, Any, Any]] = []

    def register(name: str, factory: Any, *, options: Any = None) -> None:
        registered.append((name, factory, options))

    scoring_rules.scoring_register_scorers(register=register)
    assert registered == [("rules", RulesScorer, RulesOptions)]


def yaml_step_in(text: str) -> dict[str, Any]:
    """The ``formula`` step of the first YAML example in ``text`` that has one."""
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    if not blocks:  # a docstring: the indented block after "::"
        blocks = [textwrap.dedent(text.split("chain:``::")[1].split("\n\n", 2)[1])]
    for block in blocks:
        data = yaml.safe_load(block)
        steps = data.get("chain", []) if isinstance(data, dict) else data
        for step in steps or []:
            if isinstance(step, dict) and step.get("name") == "formula":
                return step
    raise AssertionError("no `formula` step found")


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(lambda: scoring_rules.__doc__, id="package docstring"),
        pytest.param(
            lambda: (REPO / "docs/scorers/rules.md").read_text(encoding="utf-8"), id="docs page"
        ),
    ],
)
def test_documented_calling_score_step_is_the_reference_formula(source: Any) -> None:
    step = yaml_step_in(source())
    assert step["scorer"] == "rules"
    assert validate(step["options"]) == validate(FORMULA)


# -- scoring ----------------------------------------------------------------------------------


def test_formula_equals_reference_on_random_rows() -> None:
    X = rows(2000)
    np.testing.assert_allclose(make_scorer().score(X), reference_scores(X), rtol=0, atol=1e-6)


def test_formula_equals_reference_where_clamp_applies() -> None:
    X = rows(3000, low=-1.0, high=2.0, seed=1)
    X[::3, len(DIMENSIONS) * 2 :] += 2.0  # context and timing far above 1: the sum tops 1
    expected = reference_scores(X)
    assert (expected == 0.0).any()  # both bounds are reached
    assert (expected == 1.0).any()
    np.testing.assert_allclose(make_scorer().score(X), expected, rtol=0, atol=1e-6)


def test_formula_equals_reference_across_chunk_boundaries() -> None:
    X = rows(2 * CHUNK_ROWS + 3, seed=2)
    np.testing.assert_allclose(make_scorer().score(X), reference_scores(X), rtol=0, atol=1e-6)


def test_batch_of_zero_rows_returns_shape_0() -> None:
    scores = make_scorer().score(np.empty((0, len(NAMES)), dtype=np.float32))
    assert scores.shape == (0,)


def test_single_row_returns_shape_1_equal_to_reference() -> None:
    X = rows(1, seed=3)
    scores = make_scorer().score(X)
    assert scores.shape == (1,)
    assert scores[0] == pytest.approx(reference_scores(X)[0], abs=1e-6)


def test_scores_are_float64_and_the_input_is_left_alone() -> None:
    X = rows(10)
    before = X.copy()
    scores = make_scorer().score(X)
    assert scores.dtype == np.float64
    np.testing.assert_array_equal(X, before)


def test_a_row_score_does_not_depend_on_other_rows_even_when_they_hold_nan() -> None:
    X = rows(3, seed=4)
    expected = make_scorer().score(X)
    X[1, :] = np.nan  # the scorer's shifted subtraction reads across row ends
    scores = make_scorer().score(X)
    assert scores[0] == expected[0]
    assert scores[2] == expected[2]


def test_rows_of_the_wrong_width_are_refused() -> None:
    with pytest.raises(ValueError, match="expects rows of 39 features"):
        make_scorer().score(np.zeros((2, 38), dtype=np.float32))


def test_feature_constant_bias_and_weights_add_up() -> None:
    options = {
        "terms": [
            {"feature": "location_proximity", "weight": 2.0},
            {"feature": "energy_match"},  # weight 1
            {"constant": 0.25, "weight": 4.0},
            {"mean": "user_patterns", "weight": -1.0},  # the mean of one feature
        ],
        "bias": -0.5,
    }
    X = rows(50, seed=5)
    row = {name: X[:, i].astype(np.float64) for i, name in enumerate(NAMES)}
    expected = 2 * row["location_proximity"] + row["energy_match"] + 1.0 - row["user_patterns"]
    np.testing.assert_allclose(make_scorer(options).score(X), expected - 0.5, atol=1e-6)


def test_similarity_of_single_features_in_either_order_and_at_any_distance() -> None:
    options = {
        "terms": [
            {"similarity": ["novelty_match", "user_overall_energy"], "weight": 1.0},
            {"similarity": ["user_overall_energy", "spot_overall_energy"], "weight": 2.0},
            {"similarity": ["spot_overall_energy", "user_overall_energy"], "weight": 3.0},
        ]
    }
    X = rows(100, seed=6).astype(np.float64)
    col = {name: X[:, i] for i, name in enumerate(NAMES)}
    near = 1 - np.abs(col["user_overall_energy"] - col["spot_overall_energy"])
    expected = (1 - np.abs(col["novelty_match"] - col["user_overall_energy"])) + 5 * near
    scores = make_scorer(options).score(X.astype(np.float32))
    np.testing.assert_allclose(scores, expected, atol=1e-6)


def test_clamp_bounds_are_met_exactly() -> None:
    options = formula_with(clamp=[0.3, 0.7])
    scores = make_scorer(options).score(rows(5000, low=-1.0, high=2.0, seed=7))
    assert scores.min() == 0.3
    assert scores.max() == 0.7


def test_zero_weights_leave_only_the_bias() -> None:
    options = {"terms": [{"mean": "energy_match", "weight": 0.0}], "bias": 0.125}
    np.testing.assert_array_equal(make_scorer(options).score(rows(4)), [0.125] * 4)


def test_scores_from_many_threads_at_once_match_single_thread() -> None:
    scorer = make_scorer()
    batches = [rows(3000 + i, seed=i) for i in range(8)]
    expected = [scorer.score(X) for X in batches]
    results: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(len(batches))

    def work(index: int) -> None:
        barrier.wait()
        for _ in range(5):
            results[index] = scorer.score(batches[index])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, scores in enumerate(expected):
        np.testing.assert_array_equal(results[index], scores)


def test_scorer_conforms_to_the_engine_contract() -> None:
    assert_conforms(
        RulesScorer,
        options=FORMULA,
        options_type=RulesOptions,
        feature_names=NAMES,
        output_range=(0.0, 1.0),
    )


def test_describe_is_json_serialisable_and_shows_the_folded_formula() -> None:
    details = json.loads(json.dumps(make_scorer().describe()))
    assert details["features_used"] == 39
    assert details["offset"] == pytest.approx(0.5)
    assert details["clamp"] == [0.0, 1.0]
    assert details["weights"]["user_receptivity"] == pytest.approx(0.03)
    assert details["weights"]["user_patterns"] == pytest.approx(0.04)
    pairs = [(p["a"], p["b"]) for p in details["similarity"]]
    assert pairs == [(f"user_{d}", f"spot_{d}") for d in DIMENSIONS]


def test_clamp_reaching_outside_output_range_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    make_scorer(formula_with(clamp=[-1, 1]), output_range=(0.0, 1.0))
    assert "reaches outside output_range" in caplog.text


# -- groups and the pattern trap -----------------------------------------------------------


def test_pattern_groups_resolve_in_feature_order() -> None:
    options = validate(
        {"groups": {"matches": {"pattern": "*_match"}}, "terms": [{"mean": "matches"}]}
    )
    columns = resolve(options, NAMES).groups["matches"]
    assert [NAMES[c] for c in columns] == ["energy_match", "community_match", "novelty_match"]
    assert list(columns) == sorted(columns)


def test_pattern_groups_follow_the_engine_feature_order_not_the_alphabet() -> None:
    names = ("b_2", "a_1", "b_1")
    options = validate({"groups": {"b": {"pattern": "b_*"}}, "terms": [{"mean": "b"}]}, names)
    assert resolve(options, names).groups["b"] == (0, 2)


def test_user_star_pattern_also_matches_user_receptivity_and_user_patterns() -> None:
    """The trap from DESIGN.md: `user_*` is not the 12 user vibe dimensions."""
    options = validate({"groups": {"user": {"pattern": "user_*"}}, "terms": [{"mean": "user"}]})
    matched = [NAMES[c] for c in resolve(options, NAMES).groups["user"]]
    assert len(matched) == 14
    assert matched == [f"user_{d}" for d in DIMENSIONS] + ["user_receptivity", "user_patterns"]


def test_user_star_similarity_against_spot_star_is_refused_naming_the_extra_matches() -> None:
    options = formula_with(
        groups={
            **FORMULA["groups"],
            "user_vibe": {"pattern": "user_*"},
            "spot_vibe": {"pattern": "spot_*"},
        }
    )
    [error] = errors_of(options)
    assert error["loc"] == ("terms", 0, "similarity")
    assert "'user_vibe' has 14 and 'spot_vibe' has 12" in error["msg"]
    assert "also matches user_receptivity, user_patterns" in error["msg"]
    assert "add `exclude: [user_receptivity, user_patterns]`" in error["msg"]


def test_exclude_removes_features_from_a_pattern_group() -> None:
    user_vibe = {"pattern": "user_*", "exclude": ["user_receptivity", "user_patterns"]}
    groups = {**FORMULA["groups"], "user_vibe": user_vibe, "spot_vibe": {"pattern": "spot_*"}}
    options = formula_with(groups=groups)
    X = rows(500, seed=8)
    np.testing.assert_allclose(make_scorer(options).score(X), reference_scores(X), atol=1e-6)


def test_groups_may_overlap() -> None:
    groups = {**FORMULA["groups"], "everything_user": {"pattern": "user_*"}}
    options = formula_with(groups=groups)
    options["terms"].append({"mean": "everything_user", "weight": 0.0})
    make_scorer(options)


# -- validation: every mistake is a ValidationError at its key ---------------------------------


def with_group(name: str, spec: Any) -> dict[str, Any]:
    return formula_with(groups={**FORMULA["groups"], name: spec})


def with_term(index: int, term: Any) -> dict[str, Any]:
    options = formula_with()
    options["terms"][index] = term
    return options


MISSPELT_USER_FEATURE = [f"user_{d}" for d in DIMENSIONS]
MISSPELT_USER_FEATURE[3] = "user_authenticty_preference"


@pytest.mark.parametrize(
    ("options", "loc", "message"),
    [
        pytest.param(
            with_group("user_vibe", MISSPELT_USER_FEATURE),
            ("groups", "user_vibe", 3),
            "unknown feature 'user_authenticty_preference'; "
            "did you mean 'user_authenticity_preference'?",
            id="misspelt feature in a group",
        ),
        pytest.param(
            with_term(1, {"mean": "contxt", "weight": 0.3}),
            ("terms", 1, "mean"),
            "unknown group or feature 'contxt'; did you mean 'context'?",
            id="misspelt group in mean",
        ),
        pytest.param(
            with_term(1, {"mean": "location_proximty"}),
            ("terms", 1, "mean"),
            "did you mean 'location_proximity'?",
            id="misspelt feature in mean",
        ),
        pytest.param(
            with_term(0, {"similarity": ["user_vibe", "spot_vibes"]}),
            ("terms", 0, "similarity", 1),
            "unknown group or feature 'spot_vibes'; did you mean 'spot_vibe'?",
            id="misspelt group in similarity",
        ),
        pytest.param(
            with_term(0, {"feature": "energy_mach"}),
            ("terms", 0, "feature"),
            "unknown feature 'energy_mach'; did you mean 'energy_match'?",
            id="misspelt feature in feature",
        ),
        pytest.param(
            with_term(0, {"feature": "context"}),
            ("terms", 0, "feature"),
            "'context' is a group, and `feature` takes one feature; write `mean: context`",
            id="group in feature",
        ),
        pytest.param(
            with_group("timing", []),
            ("groups", "timing"),
            "group 'timing' is empty; list at least one feature",
            id="empty group",
        ),
        pytest.param(
            with_group("extra", {"pattern": "venue_*"}),
            ("groups", "extra", "pattern"),
            "pattern 'venue_*' matches no feature",
            id="pattern matching nothing",
        ),
        pytest.param(
            with_group("extra", {"pattern": "user_*", "exclude": ["user_receptivty"]}),
            ("groups", "extra", "exclude", 0),
            "unknown feature 'user_receptivty'; did you mean 'user_receptivity'?",
            id="misspelt feature in exclude",
        ),
        pytest.param(
            with_group("extra", {"pattern": "user_*", "exclude": ["novelty_match"]}),
            ("groups", "extra", "exclude", 0),
            "'novelty_match' is not matched by pattern 'user_*', so excluding it does nothing",
            id="exclude of a feature the pattern does not match",
        ),
        pytest.param(
            with_group("extra", {"pattern": "*_match", "exclude": list(CONTEXT[-3:])}),
            ("groups", "extra"),
            "`exclude` removes every feature pattern '*_match' matches",
            id="exclude leaving nothing",
        ),
        pytest.param(
            with_group("extra", ["energy_match", "novelty_match", "energy_match"]),
            ("groups", "extra", 2),
            "feature 'energy_match' is listed twice in group 'extra'",
            id="feature twice in a group",
        ),
        pytest.param(
            with_group("energy_match", ["novelty_match"]),
            ("groups", "energy_match"),
            "group 'energy_match' has the name of a feature",
            id="group named like a feature",
        ),
        pytest.param(
            with_term(0, {"similarity": ["user_vibe", "context"], "weight": 0.5}),
            ("terms", 0, "similarity"),
            "'user_vibe' has 12 and 'context' has 10",
            id="similarity of groups of different length",
        ),
        pytest.param(
            {
                "groups": {**FORMULA["groups"], "few": {"pattern": "spot_*_energy"}},
                "terms": [{"similarity": ["user_vibe", "few"]}],
            },
            ("terms", 0, "similarity"),
            "pattern 'spot_*_energy' of 'few' matches spot_overall_energy",
            id="similarity against a pattern group that matches too few",
        ),
        pytest.param(
            with_term(0, {"similarity": ["user_vibe", "user_vibe"]}),
            ("terms", 0, "similarity"),
            "pairs feature 'user_exploration_eagerness' with itself",
            id="similarity of a group with itself",
        ),
        pytest.param(
            with_group("spot_vibe", [f"spot_{d}" for d in reversed(DIMENSIONS)]),
            ("terms", 0, "similarity"),
            "list the same dimensions in different orders, so similarity would pair "
            "'user_exploration_eagerness' with 'spot_overall_energy'",
            id="similarity of groups in different orders",
        ),
        pytest.param(
            with_term(2, {"weight": 0.2}),
            ("terms", 2),
            "a term needs exactly one of `feature`, `mean`, `similarity`, `constant`",
            id="term with no kind",
        ),
        pytest.param(
            with_term(2, {"mean": "timing", "feature": "user_patterns", "weight": 0.2}),
            ("terms", 2),
            "this one has `feature` and `mean`",
            id="term with two kinds",
        ),
        pytest.param(
            with_term(1, {"mean": "context", "weight": float("nan")}),
            ("terms", 1, "weight"),
            "finite",
            id="nan weight",
        ),
        pytest.param(
            with_term(1, {"mean": "context", "weight": float("inf")}),
            ("terms", 1, "weight"),
            "finite",
            id="infinite weight",
        ),
        pytest.param(
            with_term(1, {"constant": float("-inf")}),
            ("terms", 1, "constant"),
            "finite",
            id="infinite constant",
        ),
        pytest.param(formula_with(bias=float("nan")), ("bias",), "finite", id="nan bias"),
        pytest.param(
            formula_with(clamp=[1, 0]),
            ("clamp",),
            "clamp is [low, high]; 1.0 > 0.0: write [0.0, 1.0]",
            id="clamp low above high",
        ),
        pytest.param(
            formula_with(clamp=[0, float("inf")]), ("clamp", 1), "finite", id="infinite clamp"
        ),
        pytest.param(formula_with(terms=[]), ("terms",), "terms is empty", id="no terms"),
        pytest.param(
            formula_with(terms={"mean": "context"}),
            ("terms",),
            "terms is a list of terms, e.g. [{mean: context, weight: 0.3}]; got dict",
            id="terms not a list",
        ),
        pytest.param(
            formula_with(clamp=[1]),
            ("clamp",),
            "clamp is [low, high], e.g. [0, 1]; got 1 item",
            id="clamp with one bound",
        ),
        pytest.param(
            with_term(1, {"mean": "context", "weight": "0.3"}),
            ("terms", 1, "weight"),
            "'0.3' is text, not a number; write it without quotes",
            id="weight written as text",
        ),
        pytest.param(
            with_term(1, {"mean": "context", "weight": "3e-1"}),
            ("terms", 1, "weight"),
            "YAML reads an exponent without a dot, like 1e-3, as text; write 1.0e-3 or 0.001",
            id="weight with an exponent YAML reads as text",
        ),
        pytest.param(
            with_term(1, {"mean": "context", "weight": "heavy"}),
            ("terms", 1, "weight"),
            "Input should be a valid number",
            id="weight that is a word",
        ),
        pytest.param(
            with_term(1, {"mean": "context", "wieght": 0.3}),
            ("terms", 1, "wieght"),
            "Extra inputs are not permitted",
            id="misspelt term key",
        ),
        pytest.param(
            formula_with(weights=[0.5, 0.3, 0.2]),
            ("weights",),
            "Extra inputs are not permitted",
            id="unknown option",
        ),
        pytest.param(
            with_group("extra", "energy_match"),
            ("groups", "extra"),
            "a group is a list of feature names, or a mapping",
            id="group that is neither a list nor a mapping",
        ),
        pytest.param(
            with_term(0, {"similarity": ["user_vibe"]}),
            ("terms", 0, "similarity"),
            "similarity takes two groups or features, e.g. [user_vibe, spot_vibe]; got 1 item",
            id="similarity of one group",
        ),
    ],
)
def test_mistake_is_a_validation_error_at_its_key(
    options: dict[str, Any], loc: tuple[Any, ...], message: str
) -> None:
    errors = errors_of(options)
    assert [error["loc"] for error in errors] == [loc]
    assert message in errors[0]["msg"]


def test_unknown_name_without_a_close_match_lists_the_groups_and_features() -> None:
    [error] = errors_of(with_term(1, {"mean": "weather"}))
    assert "groups: user_vibe, spot_vibe, context, timing" in error["msg"]
    assert "features: user_exploration_eagerness, " in error["msg"]
    assert "timing_alignment" in error["msg"]


def test_every_unresolved_name_is_reported_at_once() -> None:
    options = with_group("user_vibe", MISSPELT_USER_FEATURE)
    options["terms"][1] = {"mean": "contxt", "weight": 0.3}
    options["terms"][2] = {"feature": "timng", "weight": 0.2}
    locs = [error["loc"] for error in errors_of(options)]
    assert locs == [("groups", "user_vibe", 3), ("terms", 1, "mean"), ("terms", 2, "feature")]


def test_a_broken_group_is_reported_once_not_again_where_it_is_used() -> None:
    locs = [e["loc"] for e in errors_of(with_group("timing", ["optimal_tme_of_day"]))]
    assert locs == [("groups", "timing", 0)]


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('touch /tmp/pwned')",
        "context + 1",
        "lambda: 0",
        "{location_proximity}",
    ],
)
def test_text_is_never_evaluated_only_looked_up_as_a_name(text: str) -> None:
    for options, loc in [
        (with_term(1, {"mean": text}), ("terms", 1, "mean")),
        (with_term(1, {"feature": text}), ("terms", 1, "feature")),
        (with_group("extra", [text]), ("groups", "extra", 0)),
    ]:
        [error] = errors_of(options)
        assert error["loc"] == loc
        assert f"unknown {'group or ' if loc[-1] == 'mean' else ''}feature {text!r}" in error["msg"]
    assert not Path("/tmp/pwned").exists()


def test_options_are_frozen_and_keep_sequences_as_tuples() -> None:
    options = validate(FORMULA)
    assert options.clamp == (0.0, 1.0)
    assert options.terms[0].similarity == ("user_vibe", "spot_vibe")
    with pytest.raises(pydantic.ValidationError):
        setattr(options, "bias", 1.0)  # noqa: B010 - what a caller would do


def test_without_feature_names_only_the_shape_is_checked_and_the_scorer_checks_names() -> None:
    options = RulesOptions.model_validate(with_term(1, {"mean": "contxt"}))  # no context
    with pytest.raises(FormulaError) as caught:
        make_scorer(options)
    assert str(caught.value).startswith("terms[1].mean: unknown group or feature 'contxt'")
    assert caught.value.problems[0].loc == ("terms", 1, "mean")


def test_scorer_accepts_options_as_a_plain_mapping() -> None:
    ctx = ScorerContext(
        name="formula", scorer="rules", options=FORMULA, feature_names=NAMES, base_dir=REPO
    )
    X = rows(20)
    np.testing.assert_allclose(RulesScorer(ctx).score(X), reference_scores(X), atol=1e-6)


# -- through the engine ---------------------------------------------------------------------


def test_engine_serves_the_formula_step_from_the_entry_point() -> None:
    with engine_for(
        [{"name": "formula", "scorer": "rules", "options": FORMULA}], features=list(NAMES)
    ) as engine:
        X = rows(5, seed=9)
        result = engine.score_batch(X)
        assert list(result.scorers) == ["formula"] * 5
        np.testing.assert_allclose(result.scores, reference_scores(X), atol=1e-6)
        assert engine.diagnostics()["steps"][0]["details"]["features_used"] == 39


def test_engine_reports_a_misspelt_feature_as_a_config_error_at_its_yaml_line(
    tmp_path: Path,
) -> None:
    options = with_term(1, {"mean": "contxt", "weight": 0.3})
    step = {"name": "formula", "scorer": "rules", "options": options}
    config = {"features": str(FEATURES_FILE), "chain": [step]}
    text = yaml.safe_dump(config, sort_keys=False)
    path = tmp_path / "scoring.yaml"
    path.write_text(text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "mean: contxt" in s)
    with pytest.raises(ConfigError) as caught:
        Engine.from_yaml(path)
    assert caught.value.key_path == "chain[0].options.terms[1].mean"
    assert caught.value.line == line
    assert "did you mean 'context'?" in str(caught.value)


# -- a row's score does not depend on its batch (issue 20, point 14) ---------------------------

_FEATURE_VALUES = st.floats(0.0, 1.0, width=32, allow_subnormal=False)


@settings(max_examples=60)
@given(
    batch=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 300), st.just(len(NAMES))),
        elements=_FEATURE_VALUES,
    ),
    data=st.data(),
)
def test_each_row_scored_alone_equals_the_same_row_inside_any_batch_exactly(
    batch: np.ndarray, data: st.DataObject
) -> None:
    scorer = make_scorer()
    together = scorer.score(batch)
    index = data.draw(st.integers(0, batch.shape[0] - 1))
    alone = scorer.score(np.ascontiguousarray(batch[index : index + 1]))
    assert alone[0] == together[index]  # exactly, not within a tolerance
    sub_start = data.draw(st.integers(0, index))
    part = scorer.score(np.ascontiguousarray(batch[sub_start : index + 1]))
    assert part[-1] == together[index]


def test_engine_score_equals_score_batch_for_every_row_across_chunks() -> None:
    X = rows(2 * CHUNK_ROWS + 5, seed=7)
    with engine_for(
        [{"name": "formula", "scorer": "rules", "options": FORMULA}], features=list(NAMES)
    ) as engine:
        batch = engine.score_batch(X).scores
        picks = [0, 1, 2, 999, CHUNK_ROWS - 1, CHUNK_ROWS, 2 * CHUNK_ROWS + 4]
        picks += list(range(0, X.shape[0], 97))
        alone = np.array([engine.score(X[i]).score for i in picks])
        np.testing.assert_array_equal(alone, batch[picks])
        # and the same rows in a batch of another size (another BLAS kernel, before)
        np.testing.assert_array_equal(engine.score_batch(X[:3]).scores, batch[:3])
