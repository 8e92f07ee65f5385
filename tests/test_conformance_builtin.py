"""Our own scorers pass the conformance check we ship to plugin authors.

They are looked up by name, through the entry points, exactly as the engine finds them,
and driven with the shipped model and the calling-score features.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from scoring_core.testing import assert_conforms, check_scorer, read_feature_names

ROOT = Path(__file__).resolve().parent.parent
NAMES = read_feature_names(ROOT / "models" / "calling_score_features.yaml")
MODEL = "models/calling_score/1/model.onnx"


def calling_rows(n: int = 64, seed: int = 7) -> np.ndarray:
    """Rows drawn like the training data: spot dims near the user's, context and timing Beta."""
    rng = np.random.default_rng(seed)
    user = rng.beta(2, 2, (n, 12))
    spot = np.clip(user + rng.normal(0, 0.2, (n, 12)), 0, 1)
    rest = rng.beta(2, 2, (n, 15))
    return np.hstack([user, spot, rest]).astype(np.float32)


def documented_rules_formula() -> dict[str, Any]:
    """The calling-score formula exactly as docs/scorers/rules.md shows it."""
    text = (ROOT / "docs" / "scorers" / "rules.md").read_text()
    block = re.search(r"```yaml\n(chain:\n.*?scorer: rules.*?)```", text, re.DOTALL)
    assert block is not None, "docs/scorers/rules.md lost its calling-score example"
    step = yaml.safe_load(block.group(1))["chain"][0]
    assert step["scorer"] == "rules"
    options: dict[str, Any] = step["options"]
    return options


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"model": MODEL}, id="defaults"),
        pytest.param({"model": MODEL, "max_batch_rows": 16}, id="batches-split-in-chunks"),
        pytest.param(
            {"model": MODEL, "intra_op_threads": 1, "graph_optimization_level": "disable"},
            id="one-thread-no-optimisation",
        ),
    ],
)
def test_onnx_scorer_with_the_shipped_model_conforms(options: dict[str, Any]) -> None:
    report = assert_conforms(
        "onnx",
        options=options,
        feature_names=NAMES,
        base_dir=ROOT,
        rows=calling_rows(),
        output_range=(0.0, 1.0),
    )
    assert "threads" in report.passed
    assert "close" in report.passed


def test_onnx_scorer_with_a_pinned_sha256_conforms() -> None:
    import hashlib

    digest = hashlib.sha256((ROOT / MODEL).read_bytes()).hexdigest()
    assert_conforms(
        "onnx", options={"model": MODEL, "sha256": digest}, feature_names=NAMES, base_dir=ROOT
    )


def test_onnx_scorer_with_a_misspelt_option_is_refused_with_a_did_you_mean() -> None:
    report = check_scorer("onnx", options={"modle": MODEL}, feature_names=NAMES, base_dir=ROOT)
    assert report.checks_failed() == ("options",)
    assert "options.modle: unknown option; did you mean 'model'?" in report.format()


def test_onnx_scorer_refuses_features_in_another_order() -> None:
    shuffled = (NAMES[1], NAMES[0], *NAMES[2:])
    report = check_scorer("onnx", options={"model": MODEL}, feature_names=shuffled, base_dir=ROOT)
    assert report.checks_failed() == ("construct",)
    assert NAMES[0] in report.violations[0].message


def test_rules_scorer_with_the_documented_calling_score_formula_conforms() -> None:
    report = assert_conforms(
        "rules",
        options=documented_rules_formula(),
        feature_names=NAMES,
        rows=calling_rows(),
        output_range=(0.0, 1.0),
    )
    assert "close" not in report.passed  # the rules scorer holds nothing to release


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(
            {
                "groups": {"xs": {"pattern": "f*", "exclude": ["f2"]}},
                "terms": [{"mean": "xs", "weight": 2.0}, {"feature": "f2", "weight": -1.0}],
                "bias": 0.25,
            },
            id="pattern-group-no-clamp",
        ),
        pytest.param(
            {
                "groups": {"a": ["f0", "f1"], "b": ["f3", "f4"]},
                "terms": [{"similarity": ["a", "b"]}, {"constant": 0.1}],
                "clamp": [0, 1],
            },
            id="similarity-constant-clamp",
        ),
    ],
)
def test_rules_scorer_conforms_on_small_formulas(options: dict[str, Any]) -> None:
    assert_conforms("rules", options=options, feature_names=5)


def test_rules_scorer_with_an_unknown_group_is_refused_before_it_loads() -> None:
    report = check_scorer("rules", options={"terms": [{"mean": "contxt"}]}, feature_names=NAMES)
    assert report.checks_failed() == ("options",)
    assert "contxt" in report.format()
