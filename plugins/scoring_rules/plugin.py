"""The plugin hook that registers the ``rules`` scorer with the engine."""

from __future__ import annotations

from scoring_core import RegisterScorer, hookimpl
from scoring_rules.options import RulesOptions
from scoring_rules.scorer import RulesScorer

__all__ = ["scoring_register_scorers"]


@hookimpl
def scoring_register_scorers(register: RegisterScorer) -> None:
    """Register ``rules``: :class:`RulesScorer`, configured by :class:`RulesOptions`."""
    register("rules", RulesScorer, options=RulesOptions)
