"""Shared pieces of the fault-injection suite: the calling-score chain and row checks.

The ONNX faults run the real ``onnx`` scorer on the 39 calling-score features, with the
real ``rules`` step of ``scoring.yaml`` (the original app's formula) as the fallback, so
a row that falls back must get exactly what the formula gives it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from scoring_core import BatchResult, Engine
from scoring_core.testing import read_feature_names

REPO = Path(__file__).resolve().parents[2]
SHIPPED_MODEL = REPO / "models" / "calling_score" / "1" / "model.onnx"
FEATURE_FILE = REPO / "models" / "calling_score_features.yaml"
FEATURES: tuple[str, ...] = read_feature_names(FEATURE_FILE)
_DEFAULT_CHAIN = yaml.safe_load((REPO / "scoring.yaml").read_text(encoding="utf-8"))["chain"]
FORMULA_STEP: dict[str, Any] = next(s for s in _DEFAULT_CHAIN if s["scorer"] == "rules")
VIBE_DIMS = 12


def calling_config(
    model: Path | str, *, neural: dict[str, Any] | None = None, **top: Any
) -> dict[str, Any]:
    """The default chain (``neural`` ONNX step, then ``formula``) with another model file."""
    step: dict[str, Any] = {"name": "neural", "scorer": "onnx", "options": {"model": str(model)}}
    step.update(neural or {})
    return {
        "features": str(FEATURE_FILE),
        "output_range": [0, 1],
        "chain": [step, copy.deepcopy(FORMULA_STEP)],
        **top,
    }


def calling_engine(
    model: Path | str, *, neural: dict[str, Any] | None = None, **top: Any
) -> Engine:
    return Engine.from_config(calling_config(model, neural=neural, **top))


def calling_rows(n: int, seed: int = 0) -> npt.NDArray[np.float32]:
    """Rows drawn as the model was trained: Beta(2, 2) users, spots near them."""
    rng = np.random.default_rng(seed)
    user = rng.beta(2, 2, (n, VIBE_DIMS))
    spot = np.clip(user + rng.normal(0, 0.2, (n, VIBE_DIMS)), 0, 1)
    rest = rng.beta(2, 2, (n, len(FEATURES) - 2 * VIBE_DIMS))
    return np.ascontiguousarray(np.hstack([user, spot, rest]), dtype=np.float32)


def formula(X: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The original app's formula, written out from the design (the reference)."""
    X = np.asarray(X, dtype=np.float64).reshape(-1, len(FEATURES))
    vibe = (1 - np.abs(X[:, :VIBE_DIMS] - X[:, VIBE_DIMS : 2 * VIBE_DIMS])).mean(axis=1)
    context = X[:, 24:34].mean(axis=1)
    timing = X[:, 34:39].mean(axis=1)
    result: npt.NDArray[np.float64] = np.clip(0.5 * vibe + 0.3 * context + 0.2 * timing, 0, 1)
    return result


def step_of(engine: Engine, name: str) -> dict[str, Any]:
    """The diagnostics entry of one step."""
    steps: list[dict[str, Any]] = engine.diagnostics()["steps"]
    return next(step for step in steps if step["name"] == name)


def assert_rows_served(
    batch: BatchResult,
    n: int,
    expected_scorers: Sequence[str] | npt.NDArray[Any],
    expected_scores: npt.ArrayLike,
    *,
    atol: float = 1e-6,
) -> None:
    """No row lost, each row served by the step expected, with that step's value."""
    assert len(batch) == n
    assert batch.scores.shape == (n,)
    assert len(batch.scorers) == n
    assert list(batch.scorers) == list(expected_scorers)
    assert np.isfinite(batch.scores).all()
    np.testing.assert_allclose(batch.scores, np.asarray(expected_scores), rtol=0, atol=atol)
