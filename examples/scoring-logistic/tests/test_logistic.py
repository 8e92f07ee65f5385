"""The logistic scorer, tested with the kit scoring-core ships for plugin authors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scoring_core
from scoring_core import ConfigError, Engine
from scoring_core.testing import assert_conforms, engine_for, scorer_plugin

import scoring_logistic
from scoring_logistic import LogisticOptions, LogisticScorer

EXAMPLE = Path(__file__).resolve().parent.parent / "example"
FEATURES = ["tenure_years", "support_tickets_90d", "monthly_spend", "logins_30d"]
WEIGHTS: dict[str, Any] = json.loads((EXAMPLE / "churn_weights.json").read_text())


def write_weights(folder: Path, **changes: Any) -> Path:
    path = folder / "weights.json"
    path.write_text(json.dumps({**WEIGHTS, **changes}))
    return path


def engine(folder: Path, features: list[str] = FEATURES) -> Engine:
    """An engine whose only step is `model`, using the logistic scorer."""
    return engine_for(
        [{"name": "model", "scorer": "logistic", "options": {"weights": "weights.json"}}],
        plugins=[scorer_plugin("logistic", LogisticScorer, options=LogisticOptions)],
        features=[{"name": name} for name in features],
        base_dir=folder,
    )


def expected(row: list[float]) -> float:
    z = [(x - m) / s for x, m, s in zip(row, WEIGHTS["mean"], WEIGHTS["std"], strict=True)]
    terms = zip(WEIGHTS["coefficients"], z, strict=True)
    logit = WEIGHTS["intercept"] + sum(w * v for w, v in terms)
    return 1 / (1 + math.exp(-logit))


def test_the_scorer_conforms_to_the_engine_contract() -> None:
    assert_conforms(
        LogisticScorer,
        options={"weights": "churn_weights.json"},
        options_type=LogisticOptions,
        feature_names=FEATURES,
        base_dir=EXAMPLE,
        output_range=(0.0, 1.0),
    )


def test_scores_are_the_logistic_of_the_standardised_features(tmp_path: Path) -> None:
    write_weights(tmp_path)
    rows = [[1.0, 4.0, 30.0, 2.0], [10.0, 0.0, 80.0, 20.0], [3.1, 1.4, 52.0, 11.0]]
    with engine(tmp_path) as e:
        batch = e.score_batch(np.array(rows))
        single = e.score(dict(zip(FEATURES, rows[0], strict=True)))
    assert list(batch.scorers) == ["model"] * 3
    np.testing.assert_allclose(batch.scores, [expected(r) for r in rows], rtol=1e-6)
    assert single.score == pytest.approx(expected(rows[0]), rel=1e-6)
    # at the training mean the score is the logistic of the intercept alone
    assert batch.scores[2] == pytest.approx(1 / (1 + math.exp(0.2)), rel=1e-6)


def test_without_mean_and_std_the_features_are_used_as_they_are(tmp_path: Path) -> None:
    write_weights(tmp_path, mean=None, std=None, coefficients=[1.0, 0.0, 0.0, 0.0], intercept=0.0)
    with engine(tmp_path) as e:
        assert e.score([2.0, 5.0, 5.0, 5.0]).score == pytest.approx(1 / (1 + math.exp(-2.0)))


def test_extreme_rows_give_0_or_1_not_nan(tmp_path: Path) -> None:
    write_weights(tmp_path)
    with engine(tmp_path) as e:
        result = e.score_batch(np.array([[0.0, 1e6, 0.0, 0.0], [1e6, 0.0, 1e6, 1e6]]))
    assert result.scores.tolist() == [1.0, 0.0]
    assert list(result.scorers) == ["model", "model"]


def test_the_example_yaml_scores_through_the_model() -> None:
    with Engine.from_yaml(EXAMPLE / "scoring.yaml", plugins=[scoring_logistic]) as e:
        result = e.score(
            {"tenure_years": 1, "support_tickets_90d": 4, "monthly_spend": 30, "logins_30d": 2}
        )
        details = e.diagnostics()["steps"][0]["details"]
    assert result.scorer == "churn_model"
    assert result.score == pytest.approx(expected([1, 4, 30, 2]), rel=1e-6)
    assert details["model_version"] == "2026-01"


def reason(folder: Path, features: list[str] = FEATURES) -> str:
    """Why the step is unavailable (the engine starts anyway, on the steps after it)."""
    with engine(folder, features) as e:
        step = e.diagnostics()["steps"][0]
    assert step["status"] == "unavailable"
    return str(step["reason"])


def test_features_in_another_order_are_refused_naming_the_position(tmp_path: Path) -> None:
    write_weights(tmp_path)
    swapped = [FEATURES[1], FEATURES[0], *FEATURES[2:]]
    message = reason(tmp_path, swapped)
    assert message.startswith("WeightsError: weights file ")
    assert (
        "lists the engine's features in another order: position 0 is 'tenure_years' in the "
        "file but 'support_tickets_90d' in the engine's `features:`" in message
    )


def test_missing_and_extra_features_are_named(tmp_path: Path) -> None:
    write_weights(tmp_path)
    message = reason(tmp_path, [*FEATURES[:3], "days_since_login"])
    assert "the engine's features 'days_since_login' are not in the file" in message
    assert "the file has features the engine does not: 'logins_30d'" in message


def test_a_missing_weights_file_names_the_resolved_path(tmp_path: Path) -> None:
    assert f"weights file {tmp_path / 'weights.json'} does not exist" in reason(tmp_path)


def test_malformed_json_says_where(tmp_path: Path) -> None:
    (tmp_path / "weights.json").write_text('{"feature_names": ["a",]}')
    assert "not valid JSON (" in reason(tmp_path)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"coefficients": [1.0, 2.0]}, "coefficients has 2 values for 4 feature_names"),
        ({"std": [1.0, 0.0, 1.0, 1.0]}, "every std must be greater than 0"),
        ({"intercept": "0.5"}, "intercept: Input should be a valid number"),
        ({"bias": 0.1}, "unknown key 'bias'"),
    ],
)
def test_bad_weights_files_are_refused_with_the_reason(
    tmp_path: Path, changes: dict[str, Any], says: str
) -> None:
    write_weights(tmp_path, **changes)
    assert says in reason(tmp_path)


def test_a_missing_key_is_named(tmp_path: Path) -> None:
    weights = {k: v for k, v in WEIGHTS.items() if k != "intercept"}
    (tmp_path / "weights.json").write_text(json.dumps(weights))
    assert "missing key 'intercept'" in reason(tmp_path)


def test_a_misspelt_option_is_a_config_error_when_the_engine_is_built(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"options\.wieghts: unknown option; did you mean"):
        engine_for(
            [{"name": "model", "scorer": "logistic", "options": {"wieghts": "w.json"}}],
            plugins=[scorer_plugin("logistic", LogisticScorer, options=LogisticOptions)],
            features=FEATURES,
        )


def test_the_package_registers_the_logistic_scorer() -> None:
    with engine_for(
        [{"name": "m", "scorer": "logistic", "options": {"weights": "churn_weights.json"}}],
        plugins=[scoring_logistic],
        features=FEATURES,
        base_dir=EXAMPLE,
    ) as e:
        plugin = next(p for p in e.diagnostics()["plugins"] if p["scorers"] == ["logistic"])
    assert plugin["hooks"] == ["scoring_register_scorers"]
    assert scoring_core.ScorerContext  # the public names the plugin relies on exist
