"""Experiments for the tests: small chains of fake scorers, written as YAML files."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from scoring_core import Experiment, ScorerContext
from scoring_core.testing import scorer_plugin

FEATURES = [{"name": f"f{i}", "min": 0, "max": 1} for i in range(3)]


class Constant:
    def __init__(self, ctx: ScorerContext) -> None:
        self.value = float(ctx.option("value", 0.5))

    def score(self, X: np.ndarray) -> np.ndarray:
        return np.full(X.shape[0], self.value)


class Mean:
    def __init__(self, ctx: ScorerContext) -> None:
        pass

    def score(self, X: np.ndarray) -> np.ndarray:
        return X.mean(axis=1)


class Raises:
    def __init__(self, ctx: ScorerContext) -> None:
        pass

    def score(self, X: np.ndarray) -> np.ndarray:
        raise RuntimeError("the shadow is broken")


RELEASE = threading.Event()  # a hanging scorer waits for it (set at the end of a test)


class Hangs:
    def __init__(self, ctx: ScorerContext) -> None:
        pass

    def score(self, X: np.ndarray) -> np.ndarray:
        RELEASE.wait(60)
        return np.full(X.shape[0], 0.5)


PLUGIN = scorer_plugin("constant", Constant, mean=Mean, raises=Raises, hangs=Hangs)


def chain_file(folder: Path, name: str, *steps: dict[str, Any]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"features": FEATURES, "chain": list(steps)}))
    return path


def step(name: str, scorer: str, **options: Any) -> dict[str, Any]:
    return (
        {"name": name, "scorer": scorer, "options": options}
        if options
        else {
            "name": name,
            "scorer": scorer,
        }
    )


def experiment_file(folder: Path, text: str) -> Path:
    path = folder / "experiment.yaml"
    path.write_text(text)
    return path


def ab_experiment(
    folder: Path,
    *,
    weights: tuple[float, float] = (0.5, 0.5),
    coverage: float = 1.0,
    shadow: str | None = None,
    percent: float = 100,
    extra: str = "",
    plugins: tuple[Any, ...] = (),
) -> Experiment:
    """``control`` (constant 0.25) against ``treatment`` (constant 0.75)."""
    chain_file(folder, "control", step("low", "constant", value=0.25))
    chain_file(folder, "treatment", step("high", "constant", value=0.75))
    text = f"""\
experiment: test-ab
unit: user_id
coverage: {coverage}
variants:
  - {{name: control, config: control.yaml, weight: {weights[0]}}}
  - {{name: treatment, config: treatment.yaml, weight: {weights[1]}}}
exposures: exposures.jsonl
"""
    if shadow is not None:
        chain_file(folder, "candidate", step("candidate", shadow))
        text += f"shadow: {{config: candidate.yaml, percent: {percent}}}\n"
    path = experiment_file(folder, text + extra)
    return Experiment.from_yaml(path, plugins=[PLUGIN, *plugins])


ROW = np.array([0.2, 0.4, 0.6], dtype=np.float32)
