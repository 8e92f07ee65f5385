"""The ``rules`` scorer: :class:`RulesScorer`."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from scoring_core import ScorerContext
from scoring_rules.formula import LinearFormula, build_formula
from scoring_rules.options import RulesOptions

__all__ = ["RulesScorer"]


class RulesScorer:
    """Scores rows with a declarative formula (see :class:`~scoring_rules.RulesOptions`).

    Built by the engine as ``RulesScorer(ctx)``. The formula is resolved against
    ``ctx.feature_names`` and folded into arrays here, once; a name that does not resolve
    raises :class:`~scoring_rules.FormulaError`, whose message is the step's reason.
    ``score`` keeps no state between calls, so it is safe from many threads at once.
    """

    def __init__(self, ctx: ScorerContext) -> None:
        options = ctx.options
        if not isinstance(options, RulesOptions):
            options = RulesOptions.model_validate(
                options, context={"feature_names": ctx.feature_names}
            )
        self.name = ctx.name
        self.formula: LinearFormula = build_formula(options, ctx.feature_names)
        self._width = len(ctx.feature_names)
        clamp, output_range = options.clamp, ctx.output_range
        if (
            clamp is not None
            and output_range is not None
            and (clamp[0] < output_range[0] or clamp[1] > output_range[1])
        ):
            ctx.logger.warning(
                "step %r: clamp [%s, %s] reaches outside output_range [%s, %s]; scores "
                "outside the range count as failures of the step",
                ctx.name,
                *clamp,
                *output_range,
            )

    def score(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Score a batch of shape ``(n, len(feature_names))``; returns float64 ``(n,)``."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self._width:
            raise ValueError(
                f"rules step {self.name!r} expects rows of {self._width} features, "
                f"got an array of shape {list(X.shape)}"
            )
        return self.formula.evaluate(X)

    def describe(self) -> dict[str, Any]:
        """The folded formula, for the engine's diagnostics."""
        return self.formula.describe()
