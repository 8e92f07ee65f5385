"""A bad experiment file is a ConfigError naming the key and its line; nothing is guessed."""

from __future__ import annotations

from pathlib import Path

import pytest
from experiment_kit import PLUGIN, chain_file, experiment_file, step

from scoring_core import ConfigError, Experiment

HEAD = "experiment: test-ab\nunit: user_id\n"


def load(tmp_path: Path, text: str) -> Experiment:
    chain_file(tmp_path, "control", step("low", "constant", value=0.25))
    chain_file(tmp_path, "treatment", step("high", "constant", value=0.75))
    return Experiment.from_yaml(experiment_file(tmp_path, text), plugins=[PLUGIN])


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return str(caught.value)


def test_weights_that_do_not_sum_to_1_are_an_error_not_equalised(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        HEAD + "variants:\n"
        "  - {name: control, config: control.yaml, weight: 0.5}\n"
        "  - {name: treatment, config: treatment.yaml, weight: 0.4}\n",
    )
    assert message.endswith(
        "experiment.yaml:3: variants: the weights must sum to 1, they sum to 0.9 (0.5 + 0.4); "
        "nothing is equalised"
    )


def test_a_negative_weight_names_its_key_and_line(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        HEAD + "variants:\n"
        "  - {name: control, config: control.yaml, weight: 1}\n"
        "  - {name: treatment, config: treatment.yaml, weight: -0.5}\n",
    )
    assert "experiment.yaml:5: variants[1].weight: a weight cannot be negative, got -0.5" in message


def test_a_wrong_count_of_weights_is_an_error(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        HEAD + "weights: [0.2, 0.3, 0.5]\nvariants:\n"
        "  - {name: control, config: control.yaml}\n"
        "  - {name: treatment, config: treatment.yaml}\n",
    )
    assert (
        "experiment.yaml:3: weights: needs one weight per variant: 2 variants, 3 weights" in message
    )


def test_one_variant_is_not_an_experiment(tmp_path: Path) -> None:
    message = error_of(
        tmp_path, HEAD + "variants:\n  - {name: control, config: control.yaml, weight: 1}\n"
    )
    assert (
        "variants: needs a list of at least 2 variants (the first is the control), got 1" in message
    )


def test_a_missing_weight_is_never_guessed(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        HEAD + "variants:\n  - {name: control, config: control.yaml}\n"
        "  - {name: treatment, config: treatment.yaml}\n",
    )
    assert (
        "experiment.yaml:4: variants[0]: the key 'weight' is missing; weights are never guessed"
        in message
    )


def test_an_empty_unit_field_is_an_error(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        "experiment: test-ab\nunit: ''\nvariants:\n"
        "  - {name: control, config: control.yaml, weight: 0.5}\n"
        "  - {name: treatment, config: treatment.yaml, weight: 0.5}\n",
    )
    assert "experiment.yaml:2: unit: must be a non-empty string" in message


def test_a_misspelt_key_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        HEAD + "coverag: 0.5\nvariants:\n"
        "  - {name: control, config: control.yaml, weight: 0.5}\n"
        "  - {name: treatment, config: treatment.yaml, weight: 0.5}\n",
    )
    assert "experiment.yaml:3: coverag: unknown key; did you mean 'coverage'?" in message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hash_version: 3", "hash_version: must be 1 or 2 (GrowthBook's), not 3"),
        ("coverage: 1.5", "coverage: must be between 0 and 1, not 1.5"),
    ],
)
def test_a_bad_setting_names_its_key(tmp_path: Path, line: str, expected: str) -> None:
    message = error_of(
        tmp_path,
        HEAD + line + "\nvariants:\n"
        "  - {name: control, config: control.yaml, weight: 0.5}\n"
        "  - {name: treatment, config: treatment.yaml, weight: 0.5}\n",
    )
    assert f"experiment.yaml:3: {expected}" in message


def test_two_variants_of_one_name_are_an_error(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        HEAD + "variants:\n  - {name: a, config: control.yaml, weight: 0.5}\n"
        "  - {name: a, config: treatment.yaml, weight: 0.5}\n",
    )
    assert "variants[1].name: a second variant named 'a'; names are unique" in message


def test_variants_with_other_features_are_an_error(tmp_path: Path) -> None:
    chain_file(tmp_path, "control", step("low", "constant", value=0.25))
    other = tmp_path / "other.yaml"
    other.write_text(
        "features: [{name: g0, min: 0, max: 1}]\nchain: [{name: x, scorer: constant}]\n"
    )
    path = experiment_file(
        tmp_path,
        HEAD + "variants:\n  - {name: a, config: control.yaml, weight: 0.5}\n"
        "  - {name: b, config: other.yaml, weight: 0.5}\n",
    )
    with pytest.raises(
        ConfigError,
        match=r"experiment.yaml:5: variants\[1\].config: .*other.yaml "
        r"takes other features than the control",
    ):
        Experiment.from_yaml(path, plugins=[PLUGIN])
