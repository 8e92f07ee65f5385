"""A canary by experiment: two variants of one chain config, each serving another version
of its model step (``versions: {neural: canary}``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from onnx_models import write_linear_model

from scoring_core import ConfigError, Experiment
from scoring_core.models import write_labels

FEATURES = ("a", "b", "c")
BIAS = {1: 0.0, 2: 0.25}
ROWS = np.random.default_rng(5).uniform(0, 1, (400, len(FEATURES))).astype(np.float32)


def project(tmp_path: Path, canary: str = "canary") -> Path:
    models = tmp_path / "m"
    for version, bias in BIAS.items():
        write_linear_model(
            models / str(version) / "model.onnx", 3, feature_names=FEATURES, bias=bias
        )
    write_labels(models, {"stable": 1, "canary": 2}, {})
    chain = {
        "name": "calling",
        "features": list(FEATURES),
        "chain": [
            {"name": "neural", "scorer": "onnx", "options": {"model": "m", "version": "stable"}}
        ],
    }
    (tmp_path / "scoring.yaml").write_text(yaml.safe_dump(chain))
    experiment = {
        "experiment": "model-canary",
        "unit": "user_id",
        "variants": [
            {"name": "stable", "config": "scoring.yaml", "weight": 0.8},
            {
                "name": "canary",
                "config": "scoring.yaml",
                "weight": 0.2,
                "versions": {"neural": canary},
            },
        ],
        "exposures": "exposures.jsonl",
    }
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump(experiment, sort_keys=False))
    return path


def test_each_variant_serves_its_version_of_the_step(tmp_path: Path) -> None:
    units = [f"u{i}" for i in range(len(ROWS))]
    with Experiment.from_yaml(project(tmp_path)) as experiment:
        result = experiment.score_batch(ROWS, units=units)
        variants = list(result.variants)
        for i, variant in enumerate(variants):
            version = 2 if variant == "canary" else 1
            expected = ROWS[i].astype(np.float64).mean() + BIAS[version]
            assert result.scores[i] == pytest.approx(expected, abs=1e-6)
        one = experiment.score(ROWS[0], unit=units[0])
        assert one.provenance.model_version == ("2" if one.variant == "canary" else "1")
        assert one.provenance.chain == ("calling.canary" if one.variant == "canary" else "calling")
    assert 0.1 < variants.count("canary") / len(variants) < 0.3


def test_a_version_the_step_does_not_have_is_a_config_error_naming_the_variant(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as caught:
        Experiment.from_yaml(project(tmp_path, canary="nightly"))
    assert "nightly" in str(caught.value)
