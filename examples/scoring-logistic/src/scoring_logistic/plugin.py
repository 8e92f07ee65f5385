"""The hook that registers the ``logistic`` scorer with scoring-core."""

from __future__ import annotations

import scoring_core

from scoring_logistic.scorer import LogisticOptions, LogisticScorer


@scoring_core.hookimpl
def scoring_register_scorers(register: scoring_core.RegisterScorer) -> None:
    """Register ``logistic``: :class:`LogisticScorer`, configured by :class:`LogisticOptions`."""
    register("logistic", LogisticScorer, options=LogisticOptions)
