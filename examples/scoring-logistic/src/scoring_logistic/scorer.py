"""The ``logistic`` scorer and its options."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from scoring_core import ScorerContext

from scoring_logistic.weights import read_weights

__all__ = ["LogisticOptions", "LogisticScorer"]


class LogisticOptions(BaseModel):
    """A chain step's ``options`` when its ``scorer`` is ``logistic``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: str = Field(
        min_length=1, description="The JSON weights file, relative to the YAML file's folder."
    )


class LogisticScorer:
    """``1 / (1 + exp(-(intercept + X . coefficients)))`` for each row of ``X``.

    Everything is read and checked when the step loads; ``score`` only reads arrays that
    never change, so it is safe from many threads at once and holds nothing to close.
    """

    def __init__(self, ctx: ScorerContext) -> None:
        options: LogisticOptions = ctx.options
        self._weights = read_weights(ctx.resolve_path(options.weights), ctx.feature_names)
        ctx.logger.info(
            "%s: logistic weights %s (version %s, sha256 %s)",
            ctx.name,
            self._weights.path,
            self._weights.model_version,
            self._weights.sha256[:12],
        )

    def score(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Probabilities in [0, 1] for a float32 batch of shape ``(n, features)``."""
        logit = X @ self._weights.coefficients + self._weights.intercept  # float64
        return 0.5 * (1.0 + np.tanh(0.5 * logit))  # the logistic function, no overflow

    def describe(self) -> dict[str, Any]:
        """Shown in ``engine.diagnostics()`` under the step's ``details``."""
        return {
            "weights": str(self._weights.path),
            "sha256": self._weights.sha256,
            "model_version": self._weights.model_version,
        }
